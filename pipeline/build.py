"""Build a training dataset: labels + features from the store -> a packed dataset folder.

Labels (:mod:`pipeline.labels`) are either a clip labels CSV, whose ids join the store's clip ids
(:func:`~pipeline.labels.match_ids`: paths relative to the extract input, with or without their
extension), or interval labels of full recordings. Interval labels name spans of recordings: with
``videos`` (the recordings) their spans are extracted first, through the featurize path that
``extract`` takes (cached per span, resumable; :func:`pipeline.extract.extract_spans`), and
become the dataset's rows, with ids ``<clip_id>@<start>-<end>``; splits then go by video.
Clips present on only one side, or lacking a modality, are left out and named in the summary
and the log.

The dataset carries its feature recipe (``pipeline.recipe``: the featurizer specs, the alignment
settings and the segmentation its rows came from) for training to pass on to the model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from carat.data.packed import write_packed
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData
from featurizers.base import FeatureSequence, FeaturizerSpec
from featurizers.segments import SegmentationSpec
from featurizers.span import LABELS, Span
from pipeline.align import AlignSettings, align_clips
from pipeline.errors import PipelineError
from pipeline.extract import ExtractOptions, ExtractSummary, extract_spans
from pipeline.labels import (
    LabelTable,
    clip_splits,
    interval_splits,
    is_interval_labels,
    match_ids,
    read_interval_labels,
    read_labels,
)
from pipeline.recipe import (
    WHOLE_CLIPS,
    FeatureRecipe,
    segmentation_from_dict,
    segmentation_to_dict,
)
from pipeline.sources import scan
from pipeline.store import ClipRecord, FeatureStore

log = logging.getLogger(__name__)

ALIGN_CHUNK = 64  # clips per vectorised alignment call (fastest measured in bench/align.py)


@dataclass(frozen=True)
class BuildOptions:
    """How labels and features become a dataset.

    ``mode``/``max_len``/``weighted``/``cap``: the alignment (:class:`AlignSettings`);
    ``split_rule``: ``random:TRAIN,VALID,TEST[:SEED]`` over the split column; ``folds``
    ("mosei", or a JSON file of video ids per split) and ``label_names`` apply to interval
    labels; ``strict`` turns any clip missing on one side into an error instead of a warning.
    """

    mode: str = "aligned"
    max_len: Mapping[str, int] | None = None
    weighted: bool = False
    cap: str = "pool"
    split_rule: str | None = None
    folds: str | Path | None = None
    label_names: Sequence[str] | None = None
    strict: bool = False

    def align_settings(self) -> AlignSettings:
        try:
            return AlignSettings.for_mode(
                self.mode, self.max_len, weighted=self.weighted, cap=self.cap
            )
        except ValueError as exc:
            raise PipelineError(f"align settings: {exc}") from exc


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
    extract: ExtractSummary | None = None  # interval labels: the extraction of their spans


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


def build_dataset(
    features_dir: str | Path,
    labels: str | Path,
    out: str | Path,
    options: BuildOptions = BuildOptions(),
    videos: Sequence[str | Path] | None = None,
    extract: ExtractOptions = ExtractOptions(),
) -> BuildSummary:
    """Align every labelled clip (or span) of the feature store and write a packed dataset to
    ``out``. With interval labels, ``videos`` are the full recordings: their labelled spans are
    extracted into ``features_dir`` first, with ``extract``'s featurizers and engine."""
    started = time.perf_counter()
    settings = options.align_settings()
    summary = BuildSummary(Path(out), settings.mode, 0, {}, "", [])
    if is_interval_labels(labels):
        store, table, joined = _label_spans(
            features_dir, Path(labels), options, videos, extract, summary
        )
    else:
        if videos is not None or options.folds is not None:
            raise PipelineError(
                f"{labels}: --videos and --folds go with interval labels (columns video_id, "
                "start, end, or a labels .csd); this file labels whole clips of the feature store"
            )
        store, table, joined = _label_clips(features_dir, Path(labels), options, summary)
    summary.label_names = table.label_names
    return _write(store, table, joined, summary, settings, options.strict, started)


def _label_clips(
    features_dir: str | Path, labels: Path, options: BuildOptions, summary: BuildSummary
) -> tuple[FeatureStore, LabelTable, dict[str, str]]:
    """A clip labels CSV joined to the store's clips: the store, the table with each row's
    split, and label id -> clip id."""
    store = FeatureStore(features_dir)
    _store_specs(store)  # a missing store is the first thing to say
    table = read_labels(labels)
    splits, summary.split_source = clip_splits(table, options.split_rule)
    manifest = store.manifest()
    joined = match_ids(table.ids, list(manifest))
    summary.labels_without_features = [i for i in table.ids if i not in joined]
    summary.features_without_labels = sorted(set(manifest) - set(joined.values()))
    return store, replace(table, splits=splits), joined


def _label_spans(
    features_dir: str | Path,
    labels: Path,
    options: BuildOptions,
    videos: Sequence[str | Path] | None,
    extract: ExtractOptions,
    summary: BuildSummary,
) -> tuple[FeatureStore, LabelTable, dict[str, str]]:
    """Interval labels -> their spans of the recordings, extracted -> a table of span ids."""
    if not videos:
        raise PipelineError(
            f"{labels}: interval labels name segments of full recordings; give the recordings "
            "with --videos FOLDER (or archive, list file)"
        )
    table = read_interval_labels(labels, options.label_names)
    problems = summary.problems
    problems.extend(table.problems)
    clip_of = match_ids(table.videos(), [c.clip_id for c in scan(videos).clips])
    for video_id in table.videos():
        if video_id not in clip_of:
            rows = [r for r in table.rows if r.video_id == video_id]
            problems.append(
                f"{labels}: video {video_id!r} ({len(rows)} intervals, first {rows[0].ref}) has "
                f"no recording in {', '.join(map(str, videos))}; add the recording (file name "
                "= video id) or remove its rows"
            )
    rows = [r for r in table.rows if r.video_id in clip_of]
    splits, summary.split_source = interval_splits(
        table, rows, options.split_rule, options.folds, problems
    )
    rows = [r for r in rows if splits.get(r.ref) is not None]
    if options.strict and problems:  # before any extraction
        raise PipelineError(f"{problems[0]} (--strict)")
    span_of = {r.ref: Span(r.start, r.end, LABELS, recording=clip_of[r.video_id]) for r in rows}
    summary.extract = extract_spans(videos, features_dir, list(span_of.values()), extract)
    left_out = summary.extract.problems
    problems.extend(
        f"{r.ref}: {left_out[span_of[r.ref].id]}" for r in rows if span_of[r.ref].id in left_out
    )
    rows = [r for r in rows if span_of[r.ref].id not in left_out]
    for problem in problems:
        log.warning("left out: %s", problem)
    if options.strict and problems:
        raise PipelineError(f"{problems[0]} (--strict)")
    store = FeatureStore(features_dir)
    manifest = store.manifest()
    ids = [span_of[r.ref].id for r in rows]
    summary.labels_without_features = [i for i in ids if i not in manifest]
    span_table = LabelTable(
        labels,
        ids,
        table.label_names,
        np.asarray([r.labels for r in rows], dtype=np.float32).reshape(len(rows), -1),
        [splits[r.ref] for r in rows],
    )
    return store, span_table, {i: i for i in ids if i in manifest}


def _write(
    store: FeatureStore,
    table: LabelTable,
    joined: dict[str, str],
    summary: BuildSummary,
    settings: AlignSettings,
    strict: bool,
    started: float,
) -> BuildSummary:
    """Align the joined clips chunk by chunk (each row in ``table.splits``'s split) and write
    the packed dataset."""
    specs = _store_specs(store)
    splits = table.splits or []
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
    recipe = FeatureRecipe(
        {m: FeaturizerSpec.from_dict(specs[m]) for m in MODALITIES},
        settings,
        _segmentation(used, table.path),
    )
    dataset = MultimodalDataset(
        name=Path(summary.out).name,
        splits={s: parts[s].finish(settings, dims, len(table.label_names)) for s in SPLITS},
        label_names=table.label_names,
        aligned=settings.mode == "aligned",
        feature_spec=recipe.to_dict(),
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


def _segmentation(records: list[ClipRecord], labels: Path) -> SegmentationSpec | str:
    """The one segmentation the dataset's rows were cut by (whole clips when not segments)."""
    whole = segmentation_to_dict(WHOLE_CLIPS)
    found = {
        json.dumps((r.segment or {}).get("segmentation") or whole, sort_keys=True) for r in records
    }
    if len(found) > 1:
        raise PipelineError(
            f"{labels}: the labelled clips come from {len(found)} different segmentations "
            f"({', '.join(sorted(found))}); label the segments of one `extract --segments` "
            "setting, or whole clips, in one dataset"
        )
    return segmentation_from_dict(json.loads(found.pop())) if found else WHOLE_CLIPS


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
