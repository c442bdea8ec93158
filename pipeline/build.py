"""Build a training dataset: features from the store + a labels CSV -> a packed dataset folder.

The labels CSV has a clip id column (``clip_id`` or ``id``), one column per label (0/1, or an
intensity where > 0 means present) and optionally a ``split`` column (train/valid/test). Without
a split column, or when a ``--split`` rule is given, splits come from the rule
``random:TRAIN,VALID,TEST[:SEED]``, which places each clip by a hash of its id: deterministic,
and stable when clips are added or removed.

Labels join features by clip id. The store's ids are paths relative to the input (with their
extension); a CSV id without the extension joins too when that is unambiguous. Clips present on
only one side, or lacking a modality, are left out and named in the summary and the log.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from carat.data.packed import write_packed
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData
from featurizers.base import FeatureSequence
from pipeline.align import AlignSettings, align_clips
from pipeline.errors import PipelineError
from pipeline.store import FeatureStore

log = logging.getLogger(__name__)

STORE_MODALITY = {"text": "text", "visual": "visual", "audio": "acoustic"}
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
    labels = np.stack([_numeric_column(path, table, name) for name in label_names], axis=1)
    splits = None
    if split_column is not None:
        splits = [
            _split_name(path, split_column, v, row) for row, v in enumerate(table[split_column])
        ]
    return LabelTable(path, ids, label_names, (labels > 0).astype(np.float32), splits)


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
) -> BuildSummary:
    """Align every labelled clip of the feature store and write a packed dataset to ``out``.

    ``strict`` turns any clip missing on one side into an error instead of a warning.
    """
    started = time.perf_counter()
    try:
        settings = AlignSettings.for_mode(mode, max_len, weighted=weighted, cap=cap)
    except ValueError as exc:
        raise PipelineError(f"align settings: {exc}") from exc
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
        mode=mode,
        joined=0,
        split_sizes={},
        split_source=split_source,
        label_names=table.label_names,
        labels_without_features=[i for i in table.ids if i not in joined],
        features_without_labels=sorted(set(manifest) - set(joined.values())),
    )
    parts = {split: _SplitParts() for split in SPLITS}
    pending: list[tuple[int, dict[str, FeatureSequence]]] = []
    for index, label_id in enumerate(table.ids):
        if label_id not in joined:
            continue
        record = manifest[joined[label_id]]
        sequences = {m: store.load_record(record, STORE_MODALITY[m]) for m in MODALITIES}
        missing = [m for m, s in sequences.items() if s is None]
        if missing:
            summary.incomplete[label_id] = missing
            continue
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
    _report(summary, table.path, Path(features_dir), strict)

    dims = {m: len(specs[m]["dim_names"]) for m in MODALITIES}
    dataset = MultimodalDataset(
        name=Path(out).name,
        splits={s: parts[s].finish(settings, dims, len(table.label_names)) for s in SPLITS},
        label_names=table.label_names,
        aligned=mode == "aligned",
        feature_spec={**specs, "alignment": settings.to_dict()},
        source=str(features_dir),
    )
    summary.split_sizes = {s: len(dataset.splits[s]) for s in SPLITS}
    for split, size in summary.split_sizes.items():
        if size == 0:
            log.warning("%s: the %s split is empty (split by %s)", table.path, split, split_source)
    try:
        summary.out = write_packed(out, dataset)
    except OSError as exc:
        raise PipelineError(f"{out}: cannot write the dataset there ({exc})") from exc
    summary.seconds = time.perf_counter() - started
    return summary


def _store_specs(store: FeatureStore) -> dict[str, dict]:
    """The store's featurizer specs under carat's modality names; all three are needed."""
    stored = store.specs()
    if not stored and not store.root.is_dir():
        raise PipelineError(f"{store.root}: features folder not found; run `carat-cli extract`")
    missing = [STORE_MODALITY[m] for m in MODALITIES if STORE_MODALITY[m] not in stored]
    if missing:
        raise PipelineError(
            f"{store.root}: holds no {', '.join(missing)} features; a dataset needs text, "
            "visual and acoustic features (run `carat-cli extract` with all three)"
        )
    return {m: stored[STORE_MODALITY[m]] for m in MODALITIES}


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
