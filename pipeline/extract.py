"""`carat-cli extract`: clips in, cached features out, resumable; a bad clip never stops a batch.

The main process lists the inputs, opens clips one by one (archive members are spooled only while
in flight), takes from the store what is already there, and hands the rest to the engine. Only
the main process writes the manifest, one line per clip (or segment), so a run killed at any
moment loses at most the work in flight.

Units of work:

- ``--segments none`` (the default): one task per clip x every requested featurizer (the clip is
  decoded once); the worker writes its results into the store itself and returns a small status.
- any other segmentation: each recording is first planned into segments (one :class:`PlanTask`
  per recording; the plan is cached in the store, so a re-run does not plan again), then its
  segments are spread over the workers in :class:`SpanTask` batches of about
  ``SEGMENT_BATCH_SECONDS`` of media. An hour-long recording is many tasks, so it does not pin one
  worker while the others idle, and the cache holds one entry per segment x featurizer: an
  interrupted recording resumes at the segments not yet in the store. A plan that gives one
  ``whole`` segment (a clip shorter than one segment) is extracted as a whole clip, as with
  ``none``.
- interval labels (``align`` with a labels file of video intervals) give each recording its
  segments directly (source ``labels``); the plan task then only checks them against the
  recording's length.

Planning, the cache lookups and the featurizers are :mod:`pipeline.featurize`'s, the path that
``predict`` takes too; this module schedules them over the engine and keeps the manifest.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import pickle
import shutil
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from featurizers.active_speaker import AUTO, parse_face
from featurizers.base import Featurizer, FeaturizerSpec, MediaError
from featurizers.media import MediaClip
from featurizers.segments import SegmentationSpec
from featurizers.span import Span
from featurizers.speakers import parse_speakers
from pipeline import featurize
from pipeline.engine import WAIT, Engine, TaskFailure, make_engine
from pipeline.errors import PipelineError
from pipeline.recipe import INTERVAL_LABELS, segmentation_to_dict
from pipeline.sources import Catalog, OpenedClip, Refusal, Shard, open_clips, scan
from pipeline.store import DONE, FAILED, ClipRecord, FeatureStore, ManifestWriter, Plan

log = logging.getLogger(__name__)

FeaturizerFactory = Callable[[], dict[str, Featurizer]]
SEGMENT_BATCH_SECONDS = 30.0  # media per segment task: small enough to spread a long file
LABELS_SEGMENTATION = segmentation_to_dict(INTERVAL_LABELS)  # segments given by interval labels


@dataclass(frozen=True)
class PlanTask:
    """Plan one recording: its spans under ``segmentation`` (the plan cache first), or check
    the ``given`` spans of interval labels against its length; with ``faces`` (featurizers
    whose visual one tracks faces), give each span its face (the recording's face tracks are
    made here, once, not by each of its span tasks)."""

    clip: OpenedClip
    store_root: str
    segmentation: dict[str, Any] | None
    given: tuple[Span, ...] | None = None
    speakers: str = "none"  # given spans: diarize the recording and name each span's speaker
    faces: FeaturizerFactory | None = None

    def __str__(self) -> str:
        return f"{self.clip.clip_id} (planning)"


@dataclass(frozen=True)
class SpanUnit:
    """One unit of work: a span of the recording (None: the whole clip, not planned) and the
    modalities it lacks."""

    span: Span | None
    modalities: tuple[str, ...]


@dataclass(frozen=True)
class SpanTask:
    """Units of one recording, extracted by one worker (the recording is opened once)."""

    clip: OpenedClip
    store_root: str
    factory: FeaturizerFactory
    units: tuple[SpanUnit, ...]

    def __str__(self) -> str:
        first = self.units[0].span
        name = self.clip.clip_id if first is None else first.id
        return name if len(self.units) == 1 else f"{name} (+{len(self.units) - 1} segments)"


@dataclass
class ExtractSummary:
    """What a run did. ``failed`` lists ``(clip or segment id, reason)``; ``cached`` units were
    skipped. Units are whole clips, or segments when the recordings were segmented.

    ``partial`` counts failed units that still got some modalities (e.g. a video without sound).
    ``recordings`` counts the inputs; ``problems`` maps each span of interval labels that was
    not used (its id) to one line saying why.
    """

    total: int = 0
    extracted: int = 0
    cached: int = 0
    partial: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    errors_file: Path | None = None
    exported: list[Path] = field(default_factory=list)
    recordings: int = 0
    segmented: bool = False
    problems: dict[str, str] = field(default_factory=dict)  # span id -> one line

    @property
    def usable(self) -> int:
        """Units with at least one modality in the store."""
        return self.extracted + self.cached + self.partial


# --- worker side ------------------------------------------------------------------------------

_featurizer_cache: dict[bytes, dict[str, Featurizer]] = {}


def _featurizers(factory: FeaturizerFactory) -> dict[str, Featurizer]:
    """Build the featurizers once per worker process (models load once, not per clip)."""
    key = pickle.dumps(factory)
    if key not in _featurizer_cache:
        _featurizer_cache[key] = factory()
    return _featurizer_cache[key]


def process_spans(task: SpanTask) -> list[dict[str, dict[str, Any]]]:
    """Extract the units of one recording into the store; per unit, modality -> status.

    Each unit's entries are written as soon as they are made, so a kill mid-task keeps the
    units already done. A bad recording or span is an answer, not an exception (see
    :func:`pipeline.featurize.features`).
    """
    store = FeatureStore(task.store_root)
    featurizers = _featurizers(task.factory)
    try:
        media = MediaClip(task.clip.path, decode_threads=1)
    except MediaError as exc:
        failed = {"status": FAILED, "error": featurize.readable(str(exc), task.clip)}
        return [dict.fromkeys(unit.modalities, failed) for unit in task.units]
    outcome = []
    for unit in task.units:
        span = unit.span or featurize.whole(task.clip, media)
        wanted = {m: featurizers[m] for m in unit.modalities}
        found = featurize.features(media, span, task.clip, wanted, store)
        outcome.append({m: f.status() for m, f in found.items()})
    return outcome


def plan_recording(task: PlanTask) -> dict[str, Any]:
    """A recording's plan: ``{"plan": Plan, "problems": {span id: line}}``, or ``{"error"}``
    when it cannot be planned (one line)."""
    store = FeatureStore(task.store_root)
    try:
        media = MediaClip(task.clip.path, decode_threads=1)
        if task.given is not None:
            plan, problems = featurize.given_plan(task.clip, task.given, media, task.speakers)
        else:
            spec = SegmentationSpec.from_dict(task.segmentation or {})
            plan, problems = featurize.plan(store, task.clip, spec, media), {}
        if task.faces is not None:
            featurizers = _featurizers(task.faces)
            spans = featurize.assign_faces(store, task.clip, media, plan.spans, featurizers)
            plan = Plan(plan.duration, spans)
        return {"plan": plan, "problems": problems}
    except (MediaError, featurize.FaceOptionError) as exc:
        return {"error": featurize.readable(str(exc), task.clip)}
    except ValueError as exc:  # a segmentation the recording cannot take
        return {"error": featurize.readable(f"{task.clip.source}: {exc}", task.clip)}


def run_task(task: PlanTask | SpanTask) -> Any:
    """The engine's one function: a plan, or the units of a recording."""
    if isinstance(task, PlanTask):
        return plan_recording(task)
    return process_spans(task)


# --- main process ----------------------------------------------------------------------------


def preset_factory(
    preset: str, modalities: Sequence[str], **overrides: dict[str, Any]
) -> FeaturizerFactory:
    """A picklable factory for a preset's featurizers (built in each worker)."""
    from featurizers.presets import build_featurizers

    return functools.partial(build_featurizers, preset, tuple(modalities), **overrides)


def parse_segmentation(
    segments: str | Mapping[str, Any] | Any | None,
    min_segment: float | None = None,
    max_segment: float | None = None,
    speakers: str = "none",
) -> dict[str, Any] | None:
    """``--segments`` (text, a spec dict or a ``SegmentationSpec``) with ``--min-segment`` /
    ``--max-segment`` / ``--speakers`` -> the segmentation spec as a dict, or None for whole
    clips (``none``)."""
    if segments is None or (isinstance(segments, str) and segments.strip() == "none"):
        given = [
            flag
            for flag, value in (("--min-segment", min_segment), ("--max-segment", max_segment))
            if value is not None
        ] + (["--speakers"] if str(speakers).strip().lower() != "none" else [])
        if given:
            raise PipelineError(
                f"{'/'.join(given)} apply to segmented recordings; give --segments "
                "auto|transcript|asr|vad|fixed:SECONDS too"
            )
        return None
    shown = segments if isinstance(segments, str) else "spec"
    try:
        if isinstance(segments, str):
            spec = SegmentationSpec.parse(segments)
        elif isinstance(segments, Mapping):
            spec = SegmentationSpec.from_dict(dict(segments))
        else:
            spec = segments
        limits = {"min_len": min_segment, "max_len": max_segment}
        spec = replace(spec, **{k: float(v) for k, v in limits.items() if v is not None})
        if str(speakers).strip().lower() != "none":
            spec = replace(spec, speakers=str(speakers))
    except (ValueError, TypeError) as exc:
        raise PipelineError(f"--segments {shown}: {exc}") from None
    if spec.how == "none":
        return None
    return spec.to_dict()


def run_extract(
    inputs: Sequence[str | Path],
    out: str | Path,
    preset: str = "default",
    modalities: Sequence[str] | str = ("text", "visual", "audio"),
    workers: int | None = None,
    glob: str | None = None,
    shard: str | Shard | None = None,
    engine: str | Engine = "local",
    address: str | None = None,
    export_csd: str | Path | None = None,
    factory: FeaturizerFactory | None = None,
    progress: Callable[[int, int], None] | None = None,
    segments: str | Mapping[str, Any] | Any | None = None,
    min_segment: float | None = None,
    max_segment: float | None = None,
    spans: Sequence[Span] | None = None,
    speakers: str = "none",
    face: str = AUTO,
) -> ExtractSummary:
    """Extract features of every clip in ``inputs`` into the store at ``out``.

    ``factory`` replaces the preset (for featurizers a caller builds itself). ``engine`` may be
    an :class:`Engine` that is not started yet. ``progress(done, total)`` is called at the start
    and after each clip or segment (the total grows as recordings are planned).
    ``segments`` cuts each recording into segments (see :func:`parse_segmentation`; None or
    ``"none"``: whole clips). ``spans`` (of interval labels; each names its recording's clip
    id) gives the segments instead, and restricts the run to those recordings. ``speakers``
    (auto or a count) diarizes segmented recordings: segments are cut where the speaker changes
    and each records its speaker in the manifest; given ``spans`` are not cut, each is given the
    speaker heard most in it. ``face``: whose face gives the visual features (auto, largest or
    a track id; a ``factory``'s visual featurizer keeps its own).
    """
    from featurizers.presets import parse_modalities

    started = time.perf_counter()
    try:
        wanted = parse_modalities(modalities)
    except ValueError as exc:
        raise PipelineError(f"--modalities: {exc}") from None
    intervals: dict[str, list[Span]] | None = None
    if spans is not None:
        intervals = {}
        for span in spans:
            intervals.setdefault(span.recording, []).append(span)
    segmentation = (
        None
        if intervals is not None
        else parse_segmentation(segments, min_segment, max_segment, speakers)
    )
    if factory is None:
        try:
            overrides = {"visual": {"face": parse_face(face)}} if "visual" in wanted else {}
        except ValueError as exc:
            raise PipelineError(str(exc)) from None
        factory = preset_factory(preset, wanted, **overrides)
    try:
        featurizers = factory()
    except ValueError as exc:
        raise PipelineError(f"--preset {preset}: {exc}") from None
    store = FeatureStore(Path(out).absolute())
    store.root.mkdir(parents=True, exist_ok=True)
    store.claim_specs({m: featurizers[m].spec.to_dict() for m in wanted})
    specs = {m: featurizers[m].spec for m in wanted}
    if isinstance(shard, str):
        shard = Shard.parse(shard)
    catalog = scan(inputs, glob=glob, shard=shard)
    if intervals is not None:
        catalog = Catalog(
            [c for c in catalog.clips if c.clip_id in intervals],
            [r for r in catalog.refusals if r.clip_id in intervals],
        )
    summary = ExtractSummary(total=len(catalog.clips) + len(catalog.refusals))
    summary.recordings = summary.total
    summary.segmented = segmentation is not None or intervals is not None
    report = progress or (lambda done, total: None)
    report(0, summary.total)
    if isinstance(engine, str):
        engine = make_engine(engine, workers=workers, address=address)
    try:
        plan = _Plan(segmentation, intervals, parse_speakers(speakers))
    except ValueError as exc:
        raise PipelineError(f"--speakers {speakers}: {exc}") from None
    with store.open_manifest() as manifest:
        face_mode = getattr(featurizers.get("visual"), "face", AUTO)
        run = _Run(store, manifest, summary, report, factory, specs, plan, face_mode)
        spool = _fresh_spool(store.root)
        try:
            for refusal in catalog.refusals:
                run.record(_refused(refusal), extracted=False)
            with engine:
                for task, outcome in engine.map_unordered(run_task, run.tasks(catalog, spool)):
                    run.finish(task, outcome)
        finally:
            run.release_all()
            shutil.rmtree(spool, ignore_errors=True)
            summary.errors_file = _write_errors(store.root, run.errors)
    if export_csd is not None:
        summary.exported = store.export_csd(export_csd)
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class ExtractOptions:
    """Which featurizers, and where they run: what :func:`extract_spans` passes on to
    :func:`run_extract` (``factory`` replaces the preset)."""

    preset: str = "default"
    workers: int | None = None
    engine: str | Engine = "local"
    address: str | None = None
    factory: FeaturizerFactory | None = None
    progress: Callable[[int, int], None] | None = None
    speakers: str = "none"  # auto or a count: each span's speaker, found by diarization
    face: str = AUTO


def extract_spans(
    inputs: Sequence[str | Path], out: str | Path, spans: Sequence[Span], options: ExtractOptions
) -> ExtractSummary:
    """Extract every modality of ``spans`` (of the recordings in ``inputs``) into the store at
    ``out``: the labelled spans of interval labels."""
    return run_extract(
        inputs,
        out,
        preset=options.preset,
        workers=options.workers,
        engine=options.engine,
        address=options.address,
        factory=options.factory,
        progress=options.progress,
        spans=spans,
        speakers=options.speakers,
        face=options.face,
    )


@dataclass(frozen=True)
class _Plan:
    """How this run cuts recordings: not at all, by a segmentation spec, or by given intervals."""

    segmentation: dict[str, Any] | None
    intervals: Mapping[str, Sequence[Span]] | None  # clip id -> its labelled spans
    speakers: str = "none"  # with intervals: name each one's speaker (diarization)

    @property
    def spec(self) -> dict[str, Any] | None:
        """The segmentation recorded with each segment."""
        return LABELS_SEGMENTATION if self.intervals is not None else self.segmentation


@dataclass
class _Open:
    """An opened recording with work still in flight (its spooled copy is kept until done)."""

    clip: OpenedClip
    pending: int = 0
    cached: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # unit -> results


class _Run:
    """One run's bookkeeping: the manifest, the summary, the errors and the work in flight."""

    def __init__(
        self,
        store: FeatureStore,
        manifest: ManifestWriter,
        summary: ExtractSummary,
        report: Callable[[int, int], None],
        factory: FeaturizerFactory,
        specs: dict[str, FeaturizerSpec],
        plan: _Plan,
        face: str | int = AUTO,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.summary = summary
        self.report = report
        self.factory = factory
        self.specs = specs
        self.plan = plan
        self.face = face  # the visual featurizer's face mode: part of visual cache keys
        self.errors: list[dict[str, str]] = []
        self.open: dict[str, _Open] = {}
        self.queue: deque[PlanTask | SpanTask] = deque()
        self.planning = 0

    def record(self, record: ClipRecord, extracted: bool) -> None:
        """One clip or segment is finished: manifest line, summary, errors file, progress."""
        self.manifest.append(record)
        summary = self.summary
        if record.status == DONE:
            summary.extracted += extracted
            summary.cached += not extracted
        else:
            summary.failed.append((record.clip_id, record.error or "failed"))
            summary.partial += any(r["status"] == DONE for r in record.results.values())
            self.errors.extend(_error_rows(record))
        self.report(summary.extracted + summary.cached + len(summary.failed), summary.total)

    def tasks(self, catalog: Catalog, spool: Path) -> Iterator[Any]:
        """Work for the engine: queued tasks first, then the next recording opened; WAIT while
        only plans in flight can give more."""
        clips = open_clips(catalog, spool)
        while True:
            if self.queue:
                yield self.queue.popleft()
                continue
            clip = next(clips, None)
            if clip is None:
                break
            if isinstance(clip, Refusal):
                self.record(_refused(clip), extracted=False)
            else:
                self._start(clip)
        while self.queue or self.planning:
            yield self.queue.popleft() if self.queue else WAIT

    def release_all(self) -> None:
        for opened in self.open.values():
            opened.clip.release()
        self.open.clear()

    # --- scheduling -----------------------------------------------------------------------

    def _start(self, clip: OpenedClip) -> None:
        if self.plan.segmentation is None and self.plan.intervals is None:
            self._units(clip, [None])
            return
        given = None
        if self.plan.intervals is not None:
            given = tuple(self.plan.intervals.get(clip.clip_id, ()))
        self._opened(clip).pending += 1
        self.planning += 1
        root = str(self.store.root)
        faces = self.factory if "visual" in self.specs else None
        self.queue.append(
            PlanTask(clip, root, self.plan.segmentation, given, self.plan.speakers, faces)
        )

    def _opened(self, clip: OpenedClip) -> _Open:
        return self.open.setdefault(clip.clip_id, _Open(clip))

    def _done_with(self, clip_id: str) -> None:
        """One task of the recording finished; release it when none is left."""
        opened = self.open[clip_id]
        opened.pending -= 1
        if opened.pending == 0:
            opened.clip.release()
            del self.open[clip_id]

    def _units(self, clip: OpenedClip, spans: Sequence[Span | None]) -> None:
        """Record the units already in the store; queue the rest in batches of about
        ``SEGMENT_BATCH_SECONDS`` of media."""
        opened = self._opened(clip)
        opened.pending += 1  # held while scheduling, so a recording with nothing to do is freed
        batch: list[SpanUnit] = []
        for span in spans:
            # an unplanned clip is its whole recording: its key is the recording's hash
            key = clip.content_hash if span is None else span.key(clip.content_hash)
            cached = {
                m: {"status": DONE, "entry": entry}
                for m, entry in featurize.cached(
                    self.store, key, self.specs, self.face, span
                ).items()
            }
            todo = tuple(m for m in self.specs if m not in cached)
            if not todo:
                self.record(self._record(clip, span, cached), extracted=False)
                continue
            opened.cached[_unit_id(clip, span)] = cached
            batch.append(SpanUnit(span, todo))
            if sum(u.span.end - u.span.start for u in batch if u.span) >= SEGMENT_BATCH_SECONDS:
                self._queue(opened, batch)
                batch = []
        if batch:
            self._queue(opened, batch)
        self._done_with(clip.clip_id)

    def _queue(self, opened: _Open, units: list[SpanUnit]) -> None:
        opened.pending += 1
        root = str(self.store.root)
        self.queue.append(SpanTask(opened.clip, root, self.factory, tuple(units)))

    # --- results --------------------------------------------------------------------------

    def finish(self, task: PlanTask | SpanTask, outcome: Any) -> None:
        if isinstance(task, PlanTask):
            self._finish_plan(task, outcome)
            return
        opened = self.open[task.clip.clip_id]
        for index, unit in enumerate(task.units):
            if isinstance(outcome, TaskFailure):
                results = {m: {"status": FAILED, "error": outcome.reason} for m in unit.modalities}
            else:
                results = outcome[index]
            cached = opened.cached.pop(_unit_id(opened.clip, unit.span))
            self.record(self._record(opened.clip, unit.span, {**cached, **results}), True)
        self._done_with(task.clip.clip_id)

    def _finish_plan(self, task: PlanTask, outcome: dict[str, Any] | TaskFailure) -> None:
        self.planning -= 1
        clip = self.open[task.clip.clip_id].clip
        error = outcome.reason if isinstance(outcome, TaskFailure) else outcome.get("error")
        if error is not None:
            self.record(
                ClipRecord(clip.clip_id, clip.content_hash, clip.source, FAILED, error), False
            )
        else:
            self.summary.problems.update(outcome.get("problems", {}))
            spans = outcome["plan"].spans
            self.summary.total += len(spans) - 1  # the recording was counted once
            if spans:
                self._units(clip, spans)
        self._done_with(clip.clip_id)

    def _record(
        self, clip: OpenedClip, span: Span | None, results: dict[str, dict[str, Any]]
    ) -> ClipRecord:
        """The manifest line of a unit: a whole clip, or a segment with its span."""
        record = ClipRecord(
            clip_id=clip.clip_id,
            content_hash=clip.content_hash,
            source=clip.source,
            status=DONE if all(r["status"] == DONE for r in results.values()) else FAILED,
            error=_summary_line(results),
            results=results,
        )
        if span is not None and not span.whole:
            record.clip_id, record.content_hash = span.id, span.key(clip.content_hash)
            record.segment = {
                **span.to_dict(),
                "recording_hash": clip.content_hash,
                "segmentation": self.plan.spec,
            }
        return record


def _unit_id(clip: OpenedClip, span: Span | None) -> str:
    return clip.clip_id if span is None else span.id


def _summary_line(results: dict[str, dict[str, Any]]) -> str | None:
    """One line for a clip's failures: a reason shared by every modality is said once."""
    failures = {m: r["error"] for m, r in results.items() if r["status"] != DONE}
    if not failures:
        return None
    reasons = set(failures.values())
    if len(failures) == len(results) and len(reasons) == 1:
        return reasons.pop()
    return "; ".join(f"{m}: {error}" for m, error in failures.items())


def _refused(refusal: Refusal) -> ClipRecord:
    return ClipRecord(refusal.clip_id, None, refusal.source, FAILED, refusal.reason)


def _error_rows(record: ClipRecord) -> list[dict[str, str]]:
    failed = {m: r["error"] for m, r in record.results.items() if r.get("status") != DONE}
    if not failed:
        return [
            {
                "clip_id": record.clip_id,
                "source": record.source,
                "modality": "",
                "error": record.error or "",
            }
        ]
    return [
        {"clip_id": record.clip_id, "source": record.source, "modality": m, "error": error}
        for m, error in failed.items()
    ]


def _write_errors(root: Path, rows: list[dict[str, str]]) -> Path:
    """This run's failures as ``errors.csv`` (replaced each run: it lists what is still wrong)."""
    path = root / "errors.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["clip_id", "source", "modality", "error"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _fresh_spool(root: Path) -> Path:
    """This run's spool folder inside the store (visible to Dask workers that share it).

    Spool folders left by runs on this host that were killed are removed first.
    """
    base = root / ".spool"
    host = socket.gethostname()
    for old in base.glob(f"{host}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = base / f"{host}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
