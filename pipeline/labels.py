"""Labels: which clip or stretch of a recording shows which emotions, and its split.

Three files say it:

- a **clip labels CSV**: a clip id column (``clip_id`` or ``id``), one column per label (0/1,
  or an intensity where > 0 means present) or one ``labels`` column naming the labels present
  in each row (separated by ``;`` or ``,``), and optionally a ``split`` column;
- an **interval labels CSV**: a video id column (``video_id``, ``video``, ``id`` or
  ``clip_id``), ``start`` and ``end`` in seconds, an optional ``split`` column, and the labels
  in either style above;
- a **labels .csd** (MOSEI's "All Labels"): one entry per video id with ``intervals [n, 2]``
  and ``features [n, 7]`` = [sentiment, happy, sad, anger, surprise, disgust, fear] (or the six
  emotions alone); an emotion is present when its intensity is > 0.

A problem with a clip labels CSV, or with an interval file as a whole (missing columns), is one
:class:`PipelineError` line naming the file and the column. An interval row that cannot be used
(a start not before its end, a negative start, an interval overlapping an earlier one of the
same video, an unknown label, a value that is not a number) is left out with one line naming
the file and the row or entry, and the rest is read.

Splits come from the ``split`` column, a folds file (interval labels), or the rule
``random:TRAIN,VALID,TEST[:SEED]``, which places each id by a hash of it: deterministic, and
stable when ids are added or removed. Interval labels split by video, so every segment of a
video lands in one split. Label ids meet clip ids through :func:`match_ids`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from carat.data.formats import MOSEI_LABELS
from carat.data.types import SPLITS
from pipeline.errors import PipelineError

ID_COLUMNS = ("clip_id", "id")
VIDEO_COLUMNS = ("video_id", "video", "id", "clip_id")
START_COLUMN, END_COLUMN, SPLIT_COLUMN, LIST_COLUMN = "start", "end", "split", "labels"
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
}
DEFAULT_SPLIT_RULE = "random:0.8,0.1,0.1:0"
OVERLAP_TOLERANCE_S = 1e-3  # touching intervals (one ends where the next starts) are fine
_LIST_SEPARATORS = re.compile(r"[;,]")


@dataclass
class LabelTable:
    """The labels CSV, checked: ids in file order, binary labels, and splits if it has them."""

    path: Path
    ids: list[str]
    label_names: list[str]
    labels: np.ndarray  # float32 [N, C] in {0, 1}
    splits: list[str] | None


def _read_frame(path: Path) -> pd.DataFrame:
    """A labels CSV as strings, header names stripped; a missing or unreadable file is one
    PipelineError line."""
    if not path.is_file():
        raise PipelineError(f"{path}: labels file not found")
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: not a readable CSV file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def parse_split(value: str) -> str | None:
    """train, valid or test for a split name or alias (``val``, ``dev``, ...), else None."""
    return SPLIT_ALIASES.get(value.strip().lower())


# --- clip labels ------------------------------------------------------------------------------


def read_labels(path: str | Path) -> LabelTable:
    """Read and check a labels CSV; any problem is one PipelineError line naming the column."""
    path = Path(path)
    table = _read_frame(path)
    lowered = [c.lower() for c in table.columns]
    id_column = next((table.columns[lowered.index(c)] for c in ID_COLUMNS if c in lowered), None)
    if id_column is None:
        raise PipelineError(
            f"{path}: no clip id column; expected a column named 'clip_id' or 'id' "
            f"(found: {', '.join(table.columns)})"
        )
    split_column = table.columns[lowered.index(SPLIT_COLUMN)] if SPLIT_COLUMN in lowered else None
    label_names = [c for c in table.columns if c not in (id_column, split_column)]
    if not label_names:
        raise PipelineError(
            f"{path}: no label columns; expected one column per label (0/1 or an intensity) "
            f"besides '{id_column}'" + (f" and '{split_column}'" if split_column else "")
        )
    ids = [s.strip() for s in table[id_column]]
    _check_ids(path, id_column, ids)
    splits = None
    if split_column is not None:
        splits = [_clip_split(path, split_column, v, n) for n, v in enumerate(table[split_column])]
    if _is_list_style(table, label_names):
        label_names, labels = _listed_labels(path, table, label_names[0])
        return LabelTable(path, ids, label_names, labels, splits)
    labels = np.stack([_numeric_column(path, table, name) for name in label_names], axis=1)
    return LabelTable(path, ids, label_names, (labels > 0).astype(np.float32), splits)


def _clip_split(path: Path, column: str, value: str, row: int) -> str:
    split = parse_split(value)
    if split is None:
        raise PipelineError(
            f"{path}: column '{column}' row {row + 2} has {value!r}; expected train, valid or "
            "test (or give --split random:0.8,0.1,0.1)"
        )
    return split


def _is_list_style(table: pd.DataFrame, label_names: list[str]) -> bool:
    """One ``labels`` column of names (not numbers): the labels present in each row."""
    if len(label_names) != 1 or label_names[0].lower() != LIST_COLUMN:
        return False
    values = pd.to_numeric(table[label_names[0]].str.strip(), errors="coerce")
    return bool(values.isna().any())


def _listed_labels(path: Path, table: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    names, read_row = _list_labels(path, table, column, None)
    rows = []
    for index in range(len(table)):
        try:
            rows.append(read_row(table.iloc[index]))
        except ValueError as exc:
            raise PipelineError(f"{path}: row {index + 2} {exc}") from None
    return names, np.asarray(rows, dtype=np.float32).reshape(len(table), len(names))


def _check_ids(path: Path, column: str, ids: list[str]) -> None:
    if not ids:
        raise PipelineError(f"{path}: no rows; expected one row per clip")
    if "" in ids:
        raise PipelineError(f"{path}: column '{column}' row {ids.index('') + 2} has no clip id")
    repeated = sorted(clip_id for clip_id, count in Counter(ids).items() if count > 1)
    if repeated:
        raise PipelineError(
            f"{path}: column '{column}' repeats clip ids ({', '.join(repeated[:5])}); "
            "expected one row per clip"
        )


def _numeric_column(path: Path, table: pd.DataFrame, name: str) -> np.ndarray:
    values = pd.to_numeric(table[name].str.strip(), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float)))
    if len(bad):
        row = int(bad[0])
        raise PipelineError(
            f"{path}: column '{name}' row {row + 2} has {table[name].iloc[row]!r}; expected a "
            "number (0/1 or an intensity, > 0 means present). Every column other than the "
            "clip id and 'split' is read as a label"
        )
    return values.to_numpy(dtype=np.float64)


# --- interval labels --------------------------------------------------------------------------


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


# --- interval labels: CSV ---------------------------------------------------------------------


def _read_csv(path: Path, label_names: Sequence[str] | None) -> IntervalTable:
    frame = _read_frame(path)
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
        names, read_row = _list_labels(path, frame, column[LIST_COLUMN], label_names)
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
                split_name = parse_split(row[split])
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


def _list_labels(
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


# --- interval labels: .csd --------------------------------------------------------------------


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


# --- ids --------------------------------------------------------------------------------------


def match_ids(wanted: Sequence[str], clip_ids: Sequence[str]) -> dict[str, str]:
    """wanted id -> clip id: the same id, else the id without its extension, else the file name
    without its extension, when exactly one clip matches (``a`` -> ``a.mp4``, ``b`` ->
    ``sub/b.mp4``)."""
    exact = set(clip_ids)
    by_stem: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for clip_id in clip_ids:
        path = PurePosixPath(clip_id)
        by_stem.setdefault(str(path.with_suffix("")), []).append(clip_id)
        by_name.setdefault(path.stem, []).append(clip_id)
    found = {}
    for wanted_id in wanted:
        if wanted_id in exact:
            found[wanted_id] = wanted_id
        elif len(by_stem.get(wanted_id, ())) == 1:
            found[wanted_id] = by_stem[wanted_id][0]
        elif len(by_name.get(wanted_id, ())) == 1:
            found[wanted_id] = by_name[wanted_id][0]
    return found


# --- splits -----------------------------------------------------------------------------------


def clip_splits(table: LabelTable, split_rule: str | None) -> tuple[list[str], str]:
    """Each clip's split and where they came from: ``--split``, the split column, or the
    default rule."""
    if split_rule is not None:
        return assign_splits(table.ids, split_rule), f"--split {split_rule}"
    if table.splits is not None:
        return table.splits, f"column '{SPLIT_COLUMN}' of {table.path.name}"
    return assign_splits(table.ids, DEFAULT_SPLIT_RULE), f"{DEFAULT_SPLIT_RULE} (no split column)"


def assign_splits(ids: list[str], rule: str) -> list[str]:
    """Splits by the rule ``random:TRAIN,VALID,TEST[:SEED]``, from a hash of each clip id."""
    kind, _, rest = rule.partition(":")
    fractions_text, _, seed = rest.partition(":")
    try:
        fractions = np.array([float(f) for f in fractions_text.split(",")])
    except ValueError:
        fractions = np.array([])
    if kind != "random" or len(fractions) != 3 or (fractions < 0).any() or fractions.sum() <= 0:
        raise PipelineError(
            f"--split {rule!r}: expected random:TRAIN,VALID,TEST[:SEED] with three "
            "non-negative fractions, e.g. random:0.8,0.1,0.1:0"
        )
    edges = np.cumsum(fractions / fractions.sum())
    splits = []
    for clip_id in ids:
        digest = hashlib.sha256(f"{seed or 0}:{clip_id}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        splits.append(SPLITS[min(int(np.searchsorted(edges, position, side="right")), 2)])
    return splits


def interval_splits(
    table: IntervalTable,
    rows: list[LabelledInterval],
    split_rule: str | None,
    folds: str | Path | None,
    problems: list[str],
) -> tuple[dict[str, str | None], str]:
    """row ref -> split, by video: --split rule, the split column, folds, or the default rule."""
    if split_rule is None and folds is None and all(r.split is not None for r in rows):
        return {r.ref: r.split for r in rows}, f"column '{SPLIT_COLUMN}' of {table.path.name}"
    if split_rule is not None or folds is None:
        rule = split_rule or DEFAULT_SPLIT_RULE
        videos = [r.video_id for r in rows]
        source = f"--split {rule}" if split_rule else f"{rule} by video id (no split column)"
        return dict(zip([r.ref for r in rows], assign_splits(videos, rule), strict=True)), source
    fold_lists = _read_folds(folds)
    split_of = {video: split for split in SPLITS for video in fold_lists[split]}
    outside = sorted({r.video_id for r in rows if r.video_id not in split_of})
    for video_id in outside:
        problems.append(
            f"{table.path}: video {video_id!r} is in none of the folds of {folds}; its intervals "
            "are left out (give a folds file that lists it, or --split)"
        )
    return {r.ref: split_of.get(r.video_id) for r in rows}, f"folds {folds}"


def _read_folds(folds: str | Path) -> dict[str, list[str]]:
    from carat.data.csd import load_folds, standard_mosei_folds
    from carat.errors import CaratError

    if str(folds) == "mosei":
        standard = standard_mosei_folds()
        if standard is None:
            raise PipelineError(
                "--folds mosei needs the CMU Multimodal SDK (mmsdk) installed; give a folds "
                'file instead: JSON {"train": [video ids], "valid": [...], "test": [...]}'
            )
        return standard
    try:
        return load_folds(folds)
    except CaratError as exc:
        raise PipelineError(str(exc)) from None
