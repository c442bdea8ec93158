"""Labels per segment interval of full videos: a CSV or the CMU SDK's labels ``.csd``.

A CSV has a video id column (``video_id``, ``video`` or ``id``), ``start`` and ``end`` in seconds,
an optional ``split`` column, and the labels in one of the two styles of a clip labels CSV
(:mod:`pipeline.build`): one column per label (0/1 or an intensity, > 0 means present), or one
``labels`` column holding the names of the labels present, separated by ``;`` or ``,`` (empty:
none present). A labels ``.csd`` (MOSEI's "All Labels") has one entry per video id with
``intervals [n, 2]`` and ``features [n, 7]`` = [sentiment, happy, sad, anger, surprise, disgust,
fear] (or the six emotions alone); an emotion is present when its intensity is > 0.

A row that cannot be used (a start that is not before its end, a negative start, an interval
overlapping an earlier one of the same video, an unknown label name, a value that is not a
number) is left out with one line naming the file and the row or entry, and the rest is read.
Problems with the file as a whole (missing columns) raise :class:`PipelineError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from carat.data.formats import MOSEI_LABELS
from pipeline.errors import PipelineError

VIDEO_COLUMNS = ("video_id", "video", "id", "clip_id")
START_COLUMN, END_COLUMN, SPLIT_COLUMN, LIST_COLUMN = "start", "end", "split", "labels"
OVERLAP_TOLERANCE_S = 1e-3  # touching intervals (one ends where the next starts) are fine
_LIST_SEPARATORS = re.compile(r"[;,]")


@dataclass(frozen=True)
class LabelledInterval:
    """One labelled segment of a video. ``ref`` names it in messages ("labels.csv row 7")."""

    video_id: str
    start: float
    end: float
    labels: tuple[float, ...]  # 0/1 per label name
    split: str | None
    ref: str


@dataclass
class IntervalTable:
    """The usable rows of an interval labels file and one line per row left out."""

    path: Path
    label_names: list[str]
    rows: list[LabelledInterval] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def videos(self) -> list[str]:
        """Video ids in order of first appearance."""
        return list(dict.fromkeys(row.video_id for row in self.rows))


def is_interval_labels(path: str | Path) -> bool:
    """True for a ``.csd`` file or a CSV whose header has ``start`` and ``end`` columns."""
    path = Path(path)
    if path.suffix.lower() == ".csd":
        return True
    try:
        with open(path, encoding="utf-8-sig") as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    names = {name.strip().lower() for name in header.split(",")}
    return START_COLUMN in names and END_COLUMN in names


def read_interval_labels(
    path: str | Path, label_names: Sequence[str] | None = None
) -> IntervalTable:
    """Read a CSV or ``.csd`` of interval labels (see the module docstring).

    ``label_names`` fixes the labels and their order: names outside it are unknown (the row is
    left out), and for a CSV with one column per label it picks those columns.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: labels file not found")
    if path.suffix.lower() == ".csd":
        table = _read_csd(path, label_names)
    else:
        table = _read_csv(path, label_names)
    _drop_overlaps(table)
    if not table.rows:
        first = f"; first: {table.problems[0]}" if table.problems else ""
        raise PipelineError(
            f"{path}: no usable labelled interval ({len(table.problems)} left out{first}); "
            "expected one row per segment of a video"
        )
    return table


# --- CSV --------------------------------------------------------------------------------------


def _read_csv(path: Path, label_names: Sequence[str] | None) -> IntervalTable:
    from pipeline.build import SPLIT_ALIASES

    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: not a readable CSV file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    column = {c.lower(): c for c in frame.columns}
    video = next((column[c] for c in VIDEO_COLUMNS if c in column), None)
    if video is None or START_COLUMN not in column or END_COLUMN not in column:
        raise PipelineError(
            f"{path}: interval labels need columns 'video_id', 'start' and 'end' (seconds) "
            f"besides the labels (found: {', '.join(frame.columns)})"
        )
    start, end = column[START_COLUMN], column[END_COLUMN]
    split = column.get(SPLIT_COLUMN)
    rest = [c for c in frame.columns if c not in (video, start, end, split)]
    if column.get(LIST_COLUMN) in rest and len(rest) == 1:
        names, read_row = list_labels(path, frame, column[LIST_COLUMN], label_names)
    else:
        names, read_row = _column_style(path, frame, rest, label_names)
    table = IntervalTable(path, names)
    for index in range(len(frame)):
        ref = f"{path.name} row {index + 2}"
        row = frame.iloc[index]
        try:
            video_id = row[video].strip()
            if not video_id:
                raise ValueError("has no video id")
            times = _times(row[start], row[end])
            labels = read_row(row)
            split_name = None
            if split is not None:
                split_name = SPLIT_ALIASES.get(row[split].strip().lower())
                if split_name is None:
                    raise ValueError(
                        f"has split {row[split]!r}; expected train, valid or test "
                        "(or leave the column out and give --split)"
                    )
        except ValueError as exc:
            table.problems.append(f"{path}: row {index + 2} {exc}; the row is left out")
            continue
        table.rows.append(LabelledInterval(video_id, *times, labels, split_name, ref))
    return table


def _times(start_text: str, end_text: str) -> tuple[float, float]:
    try:
        start, end = float(start_text), float(end_text)
    except ValueError:
        raise ValueError(
            f"has start {start_text!r} and end {end_text!r}; expected seconds, e.g. 12.5"
        ) from None
    return _checked_times(start, end)


def _checked_times(start: float, end: float) -> tuple[float, float]:
    if not (np.isfinite(start) and np.isfinite(end)):
        raise ValueError(f"has start {start} and end {end}; expected finite seconds")
    if start < 0:
        raise ValueError(f"starts at {start:g} s, before the video; expected start >= 0")
    if start >= end:
        raise ValueError(f"has start {start:g} s not before end {end:g} s; expected start < end")
    return start, end


def list_labels(
    path: Path, frame: pd.DataFrame, column: str, label_names: Sequence[str] | None
) -> tuple[list[str], Callable[[pd.Series], tuple[float, ...]]]:
    """Labels as names in one column: the vocabulary is ``label_names`` or every name seen.
    Returns the names and a row reader that raises ValueError (one phrase) for a bad row."""
    lists = [[n.strip() for n in _LIST_SEPARATORS.split(v) if n.strip()] for v in frame[column]]
    names = list(label_names) if label_names else sorted({n for names in lists for n in names})
    if not names:
        raise PipelineError(
            f"{path}: column '{column}' names no label in any row; give the label names present "
            "in each row (separated by ';'), or --label-names"
        )
    position = {name: i for i, name in enumerate(names)}

    def read_row(row: pd.Series) -> tuple[float, ...]:
        present = [n.strip() for n in _LIST_SEPARATORS.split(row[column]) if n.strip()]
        unknown = [n for n in present if n not in position]
        if unknown:
            raise ValueError(
                f"names unknown label {', '.join(map(repr, unknown))}; expected one of "
                f"{', '.join(names)}"
            )
        values = [0.0] * len(names)
        for name in present:
            values[position[name]] = 1.0
        return tuple(values)

    return names, read_row


def _column_style(
    path: Path, frame: pd.DataFrame, columns: list[str], label_names: Sequence[str] | None
) -> tuple[list[str], Callable[[pd.Series], tuple[float, ...]]]:
    """One column per label (0/1 or an intensity), as in a clip labels CSV."""
    if label_names:
        missing = [n for n in label_names if n not in columns]
        if missing:
            raise PipelineError(
                f"{path}: no column for label {', '.join(missing)} (label columns: "
                f"{', '.join(columns) or 'none'}); fix --label-names or the header"
            )
        columns = list(label_names)
    if not columns:
        raise PipelineError(
            f"{path}: no label columns; expected one column per label (0/1 or an intensity) or "
            "a 'labels' column with the names of the labels present"
        )

    def read_row(row: pd.Series) -> tuple[float, ...]:
        values = []
        for name in columns:
            try:
                value = float(row[name])
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                raise ValueError(
                    f"has {row[name]!r} in label column '{name}'; expected a number (0/1 or an "
                    "intensity, > 0 means present)"
                )
            values.append(1.0 if value > 0 else 0.0)
        return tuple(values)

    return list(columns), read_row


# --- .csd -------------------------------------------------------------------------------------


def _read_csd(path: Path, label_names: Sequence[str] | None) -> IntervalTable:
    from carat.data.csd import read_csd
    from carat.errors import CaratError

    try:
        _, data, _ = read_csd(path)
    except CaratError as exc:
        raise PipelineError(str(exc)) from None
    names = list(MOSEI_LABELS)
    if label_names and list(label_names) != names:
        raise PipelineError(
            f"{path}: a labels .csd holds MOSEI's labels ({', '.join(names)}); leave out "
            "--label-names"
        )
    table = IntervalTable(path, names)
    for video_id, (features, intervals) in data.items():
        features = np.asarray(features, dtype=np.float64)
        intervals = np.asarray(intervals, dtype=np.float64)
        width = features.shape[-1] if features.ndim == 2 else 0
        if width not in (len(names), len(names) + 1) or intervals.shape != (len(features), 2):
            table.problems.append(
                f"{path}: entry {video_id!r} has features {features.shape} and intervals "
                f"{intervals.shape}; expected [n, 7] (sentiment + 6 emotions) or [n, 6] and "
                "[n, 2]; the entry is left out"
            )
            continue
        emotions = features[:, -len(names) :]
        for number, ((start, end), values) in enumerate(zip(intervals, emotions, strict=True)):
            ref = f"{path.name} entry {video_id!r} interval {number}"
            try:
                times = _checked_times(float(start), float(end))
                if not np.isfinite(values).all():
                    raise ValueError("has a label intensity that is not a finite number")
            except ValueError as exc:
                table.problems.append(
                    f"{path}: entry {video_id!r} interval {number} {exc}; the interval is left out"
                )
                continue
            labels = tuple(float(v > 0) for v in values)
            table.rows.append(LabelledInterval(video_id, *times, labels, None, ref))
    return table


# --- checks across rows -----------------------------------------------------------------------


def _drop_overlaps(table: IntervalTable) -> None:
    """Keep, per video, the intervals in time order; one overlapping an earlier one is left out."""
    by_video: dict[str, list[LabelledInterval]] = {}
    for row in table.rows:
        by_video.setdefault(row.video_id, []).append(row)
    keep_ids: set[int] = set()
    for rows in by_video.values():
        previous: LabelledInterval | None = None
        for row in sorted(rows, key=lambda r: (r.start, r.end)):
            if previous is not None and row.start < previous.end - OVERLAP_TOLERANCE_S:
                table.problems.append(
                    f"{table.path}: {_where(row)} ({row.start:g}-{row.end:g} s) overlaps "
                    f"{_where(previous)} ({previous.start:g}-{previous.end:g} s) of video "
                    f"{row.video_id!r}; segments of one video must not overlap, so it is left out"
                )
                continue
            keep_ids.add(id(row))
            previous = row
    table.rows = [row for row in table.rows if id(row) in keep_ids]


def _where(row: LabelledInterval) -> str:
    """'row 7' or "entry 'vid' interval 3": the ref without the file name."""
    return row.ref.split(" ", 1)[1]
