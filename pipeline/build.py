"""Build a training dataset: features from the store + a labels CSV -> a packed dataset folder.

The labels CSV has a clip id column (``clip_id`` or ``id``), one column per label (0/1, or an
intensity where > 0 means present) and optionally a ``split`` column (train/valid/test). Without
a split column, or when a ``--split`` rule is given, splits come from the rule
``random:TRAIN,VALID,TEST[:SEED]``, which places each clip by a hash of its id: deterministic,
and stable when clips are added or removed.

The labels may instead be one ``labels`` column naming the labels present in each row
(separated by ``;`` or ``,``), the same two styles as interval labels.

Labels join features by clip id. The store's ids are paths relative to the input (with their
extension); a CSV id without the extension joins too when that is unambiguous. Clips present on
only one side, or lacking a modality, are left out and named in the summary and the log.

Interval labels (a CSV with ``start``/``end`` columns, or a labels ``.csd``; see
:mod:`pipeline.intervals`) label segments of full recordings: their intervals are extracted
from the recordings given as ``videos`` (through the same cached per-segment extraction as
``extract``) and become the dataset's rows, with ids ``<clip_id>@<start>-<end>``. Splits then
go by video (every segment of a video in the same split): the ``split`` column, a folds file or
the standard MOSEI folds, or the ``--split`` rule applied to the video id.

The dataset's featurizer spec records the segmentation its rows came from (``"segmentation"``:
``{"how": "none"}`` for whole clips, ``{"how": "labels"}`` for interval labels, or the spec of
``extract --segments``); older datasets without it are whole clips.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from carat.data.packed import write_packed
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData
from featurizers.base import FeatureSequence
from featurizers.span import LABELS, Span
from pipeline.align import SEGMENTATION_KEY, WHOLE_CLIPS, AlignSettings, align_clips
from pipeline.errors import PipelineError
from pipeline.intervals import LIST_COLUMN, IntervalTable, is_interval_labels, list_labels
from pipeline.store import ClipRecord, FeatureStore

log = logging.getLogger(__name__)

ID_COLUMNS = ("clip_id", "id")
SPLIT_COLUMN = "split"
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
ALIGN_CHUNK = 64  # clips per vectorised alignment call (fastest measured in bench/align.py)


@dataclass
class LabelTable:
    """The labels CSV, checked: ids in file order, binary labels, and splits if it has them."""

    path: Path
    ids: list[str]
    label_names: list[str]
    labels: np.ndarray  # float32 [N, C] in {0, 1}
    splits: list[str] | None


@dataclass
class BuildSummary:
    """What ``build_dataset`` did, for the CLI to print."""

    out: Path
    mode: str
    joined: int
    split_sizes: dict[str, int]
    split_source: str
    label_names: list[str]
    labels_without_features: list[str] = field(default_factory=list)
    features_without_labels: list[str] = field(default_factory=list)
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # clip -> missing modalities
    empty: dict[str, list[str]] = field(default_factory=dict)  # modality -> clips, all masked
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # interval label rows left out, one line each
    extract: Any = None  # interval labels: the ExtractSummary of their segments


def read_labels(path: str | Path) -> LabelTable:
    """Read and check a labels CSV; any problem is one PipelineError line naming the column."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: labels file not found")
    try:
        table = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: not a readable CSV file ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
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
    if _is_list_style(table, label_names):
        label_names, labels = _listed_labels(path, table, label_names[0])
        return LabelTable(path, ids, label_names, labels, _splits(path, table, split_column))
    labels = np.stack([_numeric_column(path, table, name) for name in label_names], axis=1)
    splits = None
    if split_column is not None:
        splits = [
            _split_name(path, split_column, v, row) for row, v in enumerate(table[split_column])
        ]
    return LabelTable(path, ids, label_names, (labels > 0).astype(np.float32), splits)


def _splits(path: Path, table: pd.DataFrame, column: str | None) -> list[str] | None:
    if column is None:
        return None
    return [_split_name(path, column, v, row) for row, v in enumerate(table[column])]


def _is_list_style(table: pd.DataFrame, label_names: list[str]) -> bool:
    """One ``labels`` column of names (not numbers): the labels present in each row."""
    if len(label_names) != 1 or label_names[0].lower() != LIST_COLUMN:
        return False
    values = pd.to_numeric(table[label_names[0]].str.strip(), errors="coerce")
    return bool(values.isna().any())


def _listed_labels(path: Path, table: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    names, read_row = list_labels(path, table, column, None)
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


def _split_name(path: Path, column: str, value: str, row: int) -> str:
    split = SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise PipelineError(
            f"{path}: column '{column}' row {row + 2} has {value!r}; expected train, valid or "
            "test (or give --split random:0.8,0.1,0.1)"
        )
    return split


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


def parse_max_len(text: str | None) -> dict[str, int]:
    """``--max-len``: one number for every modality, or ``text=60,visual=60,audio=60``."""
    if text is None or not text.strip():
        return {}
    try:
        if "=" not in text:
            return dict.fromkeys(MODALITIES, int(text))
        lengths = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            lengths[name.strip()] = int(value)
    except ValueError:
        lengths = {"": 0}
    unknown = set(lengths) - set(MODALITIES)
    if unknown or min(lengths.values()) < 1:
        raise PipelineError(
            f"--max-len {text!r}: expected a whole number >= 1, or text=N,visual=N,audio=N"
        )
    return lengths


def join_ids(label_ids: list[str], feature_ids: list[str]) -> dict[str, str]:
    """label id -> feature id: exact matches, else the feature id without its extension."""
    features = set(feature_ids)
    by_stem: dict[str, list[str]] = {}
    for clip_id in feature_ids:
        by_stem.setdefault(str(PurePosixPath(clip_id).with_suffix("")), []).append(clip_id)
    joined = {}
    for label_id in label_ids:
        if label_id in features:
            joined[label_id] = label_id
        elif len(by_stem.get(label_id, ())) == 1:
            joined[label_id] = by_stem[label_id][0]
    return joined


def build_dataset(
    features_dir: str | Path,
    labels_csv: str | Path,
    out: str | Path,
    *,
    mode: str = "aligned",
    max_len: Mapping[str, int] | None = None,
    weighted: bool = False,
    cap: str = "pool",
    split_rule: str | None = None,
    strict: bool = False,
    videos: Sequence[str | Path] | None = None,
    folds: str | Path | None = None,
    label_names: Sequence[str] | None = None,
    extract_options: Mapping[str, Any] | None = None,
) -> BuildSummary:
    """Align every labelled clip of the feature store and write a packed dataset to ``out``.

    ``strict`` turns any clip missing on one side into an error instead of a warning. With
    interval labels (see the module docstring) ``videos`` are the full recordings; their
    segments are extracted into ``features_dir`` first (``extract_options``: keyword arguments
    of :func:`pipeline.extract.run_extract`, e.g. ``preset``, ``workers``, ``engine``,
    ``factory``, ``progress``). ``folds`` ("mosei", or a JSON file of video ids per split) and
    ``label_names`` apply to interval labels.
    """
    started = time.perf_counter()
    try:
        settings = AlignSettings.for_mode(mode, max_len, weighted=weighted, cap=cap)
    except ValueError as exc:
        raise PipelineError(f"align settings: {exc}") from exc
    if is_interval_labels(labels_csv):
        return _build_from_intervals(
            features_dir,
            Path(labels_csv),
            out,
            settings,
            split_rule=split_rule,
            strict=strict,
            videos=videos,
            folds=folds,
            label_names=label_names,
            extract_options=dict(extract_options or {}),
            started=started,
        )
    if videos is not None or folds is not None:
        raise PipelineError(
            f"{labels_csv}: --videos and --folds go with interval labels (columns video_id, "
            "start, end, or a labels .csd); this file labels whole clips of the feature store"
        )
    store = FeatureStore(features_dir)
    specs = _store_specs(store)
    table = read_labels(labels_csv)
    if split_rule is not None:
        splits, split_source = assign_splits(table.ids, split_rule), f"--split {split_rule}"
    elif table.splits is not None:
        splits, split_source = table.splits, f"column '{SPLIT_COLUMN}' of {table.path.name}"
    else:
        splits = assign_splits(table.ids, DEFAULT_SPLIT_RULE)
        split_source = f"{DEFAULT_SPLIT_RULE} (no split column)"
    manifest = store.manifest()
    joined = join_ids(table.ids, list(manifest))
    summary = BuildSummary(
        out=Path(out),
        mode=settings.mode,
        joined=0,
        split_sizes={},
        split_source=split_source,
        label_names=table.label_names,
        labels_without_features=[i for i in table.ids if i not in joined],
        features_without_labels=sorted(set(manifest) - set(joined.values())),
    )
    return _write(store, specs, table, splits, joined, summary, settings, strict, started)


def _write(
    store: FeatureStore,
    specs: dict[str, dict],
    table: LabelTable,
    splits: list[str],
    joined: dict[str, str],
    summary: BuildSummary,
    settings: AlignSettings,
    strict: bool,
    started: float,
) -> BuildSummary:
    """Align the joined clips chunk by chunk and write the packed dataset."""
    manifest = store.manifest()
    parts = {split: _SplitParts() for split in SPLITS}
    pending: list[tuple[int, dict[str, FeatureSequence]]] = []
    used: list[ClipRecord] = []
    for index, label_id in enumerate(table.ids):
        if label_id not in joined:
            continue
        record = manifest[joined[label_id]]
        sequences = {m: store.load_record(record, m) for m in MODALITIES}
        missing = [m for m, s in sequences.items() if s is None]
        if missing:
            summary.incomplete[label_id] = missing
            continue
        used.append(record)
        pending.append((index, sequences))
        if len(pending) == ALIGN_CHUNK:
            _align_chunk(pending, settings, table, splits, parts, summary)
            if summary.joined % (16 * ALIGN_CHUNK) == 0:
                log.info(
                    "aligned %d clips (%.0f/s)", summary.joined, _rate(summary.joined, started)
                )
            pending = []
    if pending:
        _align_chunk(pending, settings, table, splits, parts, summary)
    _report(summary, table.path, store.root, strict)

    dims = {m: len(specs[m]["dim_names"]) for m in MODALITIES}
    feature_spec = {
        **specs,
        "alignment": settings.to_dict(),
        SEGMENTATION_KEY: _segmentation(used, table.path),
    }
    dataset = MultimodalDataset(
        name=Path(summary.out).name,
        splits={s: parts[s].finish(settings, dims, len(table.label_names)) for s in SPLITS},
        label_names=table.label_names,
        aligned=settings.mode == "aligned",
        feature_spec=feature_spec,
        source=str(store.root),
    )
    summary.split_sizes = {s: len(dataset.splits[s]) for s in SPLITS}
    for split, size in summary.split_sizes.items():
        if size == 0:
            log.warning(
                "%s: the %s split is empty (split by %s)", table.path, split, summary.split_source
            )
    try:
        summary.out = write_packed(summary.out, dataset)
    except OSError as exc:
        raise PipelineError(f"{summary.out}: cannot write the dataset there ({exc})") from exc
    summary.seconds = time.perf_counter() - started
    return summary


def _segmentation(records: list[ClipRecord], labels: Path) -> dict[str, Any]:
    """The one segmentation the dataset's rows were cut by (whole clips when not segments)."""
    found = {
        json.dumps((r.segment or {}).get("segmentation") or WHOLE_CLIPS, sort_keys=True)
        for r in records
    }
    if len(found) > 1:
        raise PipelineError(
            f"{labels}: the labelled clips come from {len(found)} different segmentations "
            f"({', '.join(sorted(found))}); label the segments of one `extract --segments` "
            "setting, or whole clips, in one dataset"
        )
    return json.loads(found.pop()) if found else dict(WHOLE_CLIPS)


# --- interval labels --------------------------------------------------------------------------


def _build_from_intervals(
    features_dir: str | Path,
    labels: Path,
    out: str | Path,
    settings: AlignSettings,
    *,
    split_rule: str | None,
    strict: bool,
    videos: Sequence[str | Path] | None,
    folds: str | Path | None,
    label_names: Sequence[str] | None,
    extract_options: dict[str, Any],
    started: float,
) -> BuildSummary:
    """Interval labels -> their segments extracted from the recordings -> the dataset."""
    from pipeline.extract import run_extract
    from pipeline.intervals import read_interval_labels
    from pipeline.sources import scan

    if not videos:
        raise PipelineError(
            f"{labels}: interval labels name segments of full recordings; give the recordings "
            "with --videos FOLDER (or archive, list file)"
        )
    table = read_interval_labels(labels, label_names)
    problems = list(table.problems)
    clip_of = match_videos(table.videos(), [c.clip_id for c in scan(videos).clips])
    for video_id in table.videos():
        if video_id not in clip_of:
            rows = [r for r in table.rows if r.video_id == video_id]
            problems.append(
                f"{labels}: video {video_id!r} ({len(rows)} intervals, first {rows[0].ref}) has "
                f"no recording in {', '.join(map(str, videos))}; add the recording (file name "
                "= video id) or remove its rows"
            )
    rows = [r for r in table.rows if r.video_id in clip_of]
    splits, split_source = _interval_splits(table, rows, split_rule, folds, problems)
    rows = [r for r in rows if splits.get(r.ref) is not None]
    if strict and problems:  # before any extraction
        raise PipelineError(f"{problems[0]} (--strict)")
    span_of = {r.ref: Span(r.start, r.end, LABELS, recording=clip_of[r.video_id]) for r in rows}
    intervals: dict[str, list[Span]] = {}
    for row in rows:
        intervals.setdefault(clip_of[row.video_id], []).append(span_of[row.ref])
    options = {"modalities": MODALITIES, **extract_options}
    extracted = run_extract(videos, features_dir, intervals=intervals, **options)
    problems.extend(
        f"{r.ref}: {extracted.problems[span_of[r.ref].id]}"
        for r in rows
        if span_of[r.ref].id in extracted.problems
    )
    rows = [r for r in rows if span_of[r.ref].id not in extracted.problems]
    for problem in problems:
        log.warning("left out: %s", problem)
    store = FeatureStore(features_dir)
    specs = _store_specs(store)
    manifest = store.manifest()
    ids = [span_of[r.ref].id for r in rows]
    label_table = LabelTable(
        labels,
        ids,
        table.label_names,
        np.asarray([r.labels for r in rows], dtype=np.float32).reshape(len(rows), -1),
        [splits[r.ref] for r in rows],
    )
    summary = BuildSummary(
        out=Path(out),
        mode=settings.mode,
        joined=0,
        split_sizes={},
        split_source=split_source,
        label_names=table.label_names,
        labels_without_features=[i for i in ids if i not in manifest],
        problems=problems,
        extract=extracted,
    )
    joined = {i: i for i in ids if i in manifest}
    if strict and problems:
        raise PipelineError(f"{problems[0]} (--strict)")
    return _write(
        store, specs, label_table, label_table.splits, joined, summary, settings, strict, started
    )


def match_videos(video_ids: Sequence[str], clip_ids: Sequence[str]) -> dict[str, str]:
    """video id -> clip id: the same id, else the id without its extension, else the file name
    without its extension, when exactly one clip matches."""
    exact = set(clip_ids)
    by_stem: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for clip_id in clip_ids:
        path = PurePosixPath(clip_id)
        by_stem.setdefault(str(path.with_suffix("")), []).append(clip_id)
        by_name.setdefault(path.stem, []).append(clip_id)
    found = {}
    for video_id in video_ids:
        if video_id in exact:
            found[video_id] = video_id
        elif len(by_stem.get(video_id, ())) == 1:
            found[video_id] = by_stem[video_id][0]
        elif len(by_name.get(video_id, ())) == 1:
            found[video_id] = by_name[video_id][0]
    return found


def _interval_splits(
    table: IntervalTable,
    rows: list,
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


def _store_specs(store: FeatureStore) -> dict[str, dict]:
    """The store's featurizer specs by modality; all three are needed."""
    stored = store.specs()
    if not stored and not store.root.is_dir():
        raise PipelineError(f"{store.root}: features folder not found; run `carat-cli extract`")
    missing = [m for m in MODALITIES if m not in stored]
    if missing:
        raise PipelineError(
            f"{store.root}: holds no {', '.join(missing)} features; a dataset needs text, "
            "visual and audio features (run `carat-cli extract` with all three)"
        )
    return {m: stored[m] for m in MODALITIES}


def _report(summary: BuildSummary, labels: Path, features: Path, strict: bool) -> None:
    """Name the clips left out; fail when nothing joined, or on any gap with ``strict``."""
    problems = []
    if summary.labels_without_features:
        problems.append(
            f"{len(summary.labels_without_features)} labelled clips have no features in "
            f"{features}: {_names(summary.labels_without_features)}"
        )
    if summary.features_without_labels:
        problems.append(
            f"{len(summary.features_without_labels)} clips in {features} have no row in "
            f"{labels}: {_names(summary.features_without_labels)}"
        )
    if summary.incomplete:
        described = [f"{c} (no {'/'.join(m)})" for c, m in summary.incomplete.items()]
        problems.append(
            f"{len(summary.incomplete)} clips lack a modality and are left out: {_names(described)}"
        )
    for problem in problems:
        log.warning("%s", problem)
    for modality, clips in summary.empty.items():
        log.warning("%d clips have no usable %s steps: %s", len(clips), modality, _names(clips))
    if summary.joined == 0:
        raise PipelineError(
            f"{labels}: no labelled clip has complete features in {features}; the labels' clip "
            "ids must equal the store's ids (paths relative to the extract input, e.g. "
            f"{_names(sorted(summary.features_without_labels), 3)})"
        )
    if strict and problems:
        raise PipelineError(f"{labels}: {problems[0]} (--strict)")


def _names(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _rate(count: int, started: float) -> float:
    return count / max(time.perf_counter() - started, 1e-9)


def _align_chunk(
    pending: list[tuple[int, dict[str, FeatureSequence]]],
    settings: AlignSettings,
    table: LabelTable,
    splits: list[str],
    parts: dict[str, _SplitParts],
    summary: BuildSummary,
) -> None:
    """Align a chunk of clips in one call and hand each row to its split."""
    features, masks = align_clips([sequences for _, sequences in pending], settings)
    indices = np.array([index for index, _ in pending])
    for modality, mask in masks.items():
        for row in np.flatnonzero(~mask.any(axis=1)):
            summary.empty.setdefault(modality, []).append(table.ids[indices[row]])
    row_splits = np.array([splits[index] for index in indices])
    for split, split_parts in parts.items():
        rows = np.flatnonzero(row_splits == split)
        if len(rows):
            split_parts.add(
                [table.ids[i] for i in indices[rows]],
                table.labels[indices[rows]],
                {m: f[rows] for m, f in features.items()},
                {m: k[rows] for m, k in masks.items()},
            )
    summary.joined += len(pending)


class _SplitParts:
    """One split's aligned rows, gathered chunk by chunk."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.labels: list[np.ndarray] = []
        self.features: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
        self.masks: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}

    def add(
        self,
        ids: list[str],
        labels: np.ndarray,
        features: dict[str, np.ndarray],
        masks: dict[str, np.ndarray],
    ) -> None:
        self.ids += ids
        self.labels.append(labels)
        for m in MODALITIES:
            self.features[m].append(features[m])
            self.masks[m].append(masks[m])

    def finish(self, settings: AlignSettings, dims: dict[str, int], num_labels: int) -> SplitData:
        """The split's arrays; each modality's pieces are freed once joined, so a large
        dataset is held about once, not twice."""
        features, masks = {}, {}
        for m in MODALITIES:
            shape = (0, settings.max_len[m])
            features[m] = _join(self.features[m], np.zeros((*shape, dims[m]), np.float32))
            masks[m] = _join(self.masks[m], np.zeros(shape, np.int64))
        labels = _join(self.labels, np.zeros((0, num_labels), np.float32))
        return SplitData(features, masks, labels, self.ids)


def _join(pieces: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    if not pieces:
        return empty
    joined = np.concatenate(pieces)
    pieces.clear()
    return joined
