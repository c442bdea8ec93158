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
  segments are spread over the workers in :class:`SegmentTask` batches of about
  ``SEGMENT_BATCH_SECONDS`` of media. An hour-long recording is many tasks, so it does not pin one
  worker while the others idle, and the cache holds one entry per segment x featurizer: an
  interrupted recording resumes at the segments not yet in the store. A plan that gives one
  ``whole`` segment (a clip shorter than one segment) is extracted as a whole clip, as with
  ``none``.
- interval labels (``align`` with a labels file of video intervals) give each recording its
  segments directly (source ``labels``); the plan task then only checks them against the
  recording's length.
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
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurizers.base import Featurizer, FeaturizerSpec, MediaError
from pipeline.engine import WAIT, Engine, TaskFailure, make_engine
from pipeline.errors import PipelineError
from pipeline.sources import Catalog, OpenedClip, Refusal, Shard, open_clips, scan
from pipeline.store import (
    DONE,
    FAILED,
    ClipRecord,
    FeatureStore,
    ManifestWriter,
    segment_hash,
    segment_id,
)

log = logging.getLogger(__name__)

FeaturizerFactory = Callable[[], dict[str, Featurizer]]
SEGMENT_BATCH_SECONDS = 30.0  # media per segment task: small enough to spread a long file
LABELS_SEGMENTATION: dict[str, Any] = {"how": "labels"}  # segments given by interval labels
# A labelled interval may end this far past the recording's length (rounding of label times).
INTERVAL_END_SLACK_S = 0.5


@dataclass(frozen=True)
class ClipTask:
    """What a worker needs to extract one whole clip (small and picklable)."""

    clip_id: str
    path: str
    source: str
    content_hash: str
    store_root: str
    factory: FeaturizerFactory
    modalities: tuple[str, ...]

    def __str__(self) -> str:
        return self.clip_id


@dataclass(frozen=True)
class Interval:
    """A segment asked for by interval labels; ``ref`` names its row for messages."""

    start: float
    end: float
    ref: str = ""


@dataclass(frozen=True)
class PlanTask:
    """Plan one recording: its segments under ``segmentation``, or check ``given`` intervals."""

    clip_id: str
    path: str
    source: str
    segmentation: dict[str, Any] | None
    given: tuple[Interval, ...] | None = None

    def __str__(self) -> str:
        return f"{self.clip_id} (planning)"


@dataclass(frozen=True)
class SegmentUnit:
    """One segment to extract: its id, times in the recording, store key and what it lacks."""

    unit_id: str
    start: float
    end: float
    content_hash: str
    modalities: tuple[str, ...]
    text: str | None = None


@dataclass(frozen=True)
class SegmentTask:
    """A batch of segments of one recording (the recording is opened once per batch)."""

    clip_id: str
    path: str
    source: str
    store_root: str
    factory: FeaturizerFactory
    units: tuple[SegmentUnit, ...]

    def __str__(self) -> str:
        return f"{self.units[0].unit_id} (+{len(self.units) - 1} segments)"


@dataclass
class ExtractSummary:
    """What a run did. ``failed`` lists ``(clip or segment id, reason)``; ``cached`` units were
    skipped. Units are whole clips, or segments when the recordings were segmented.

    ``partial`` counts failed units that still got some modalities (e.g. a video without sound).
    ``recordings`` counts the inputs; ``problems`` maps each interval label that was not used
    (its ref, e.g. "labels.csv row 7") to one line saying why.
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
    problems: dict[str, str] = field(default_factory=dict)  # interval ref -> one line

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


def process_clip(task: ClipTask) -> dict[str, dict[str, Any]]:
    """Extract every requested modality of one clip into the store; modality -> status.

    A bad clip is an answer, not an exception: each failing featurizer reports its one-line
    reason and the others still run. Only infrastructure errors (out of memory, a full disk)
    escape, for the engine to retry.
    """
    from featurizers.media import MediaClip

    store = FeatureStore(task.store_root)
    featurizers = _featurizers(task.factory)
    try:
        clip = MediaClip(task.path, decode_threads=1)
    except MediaError as exc:
        reason = _readable(str(exc), task)
        return {m: {"status": FAILED, "error": reason} for m in task.modalities}
    meta = {"clip_id": task.clip_id, "source": task.source}
    return _extract_all(clip, featurizers, task.modalities, store, task.content_hash, meta, task)


def _extract_all(
    clip: Any,  # MediaClip or SegmentClip
    featurizers: dict[str, Featurizer],
    modalities: Sequence[str],
    store: FeatureStore,
    content_hash: str,
    meta: dict[str, Any],
    task: ClipTask | SegmentTask,
) -> dict[str, dict[str, Any]]:
    """Run each featurizer on ``clip`` and store its result; modality -> status."""
    results: dict[str, dict[str, Any]] = {}
    for modality in modalities:
        featurizer = featurizers[modality]
        started = time.perf_counter()
        try:
            sequence = featurizer.extract(clip)
        except MediaError as exc:
            results[modality] = {"status": FAILED, "error": _readable(str(exc), task)}
            continue
        except MemoryError:
            raise
        except Exception as exc:  # a featurizer bug must not stop the batch
            log.debug("%s: %s failed\n%s", meta["clip_id"], modality, traceback.format_exc())
            reason = f"{type(exc).__name__} in the {modality} featurizer: {exc}"
            results[modality] = {"status": FAILED, "error": _readable(reason, task)}
            continue
        seconds = round(time.perf_counter() - started, 4)
        entry = store.write(content_hash, sequence, {**meta, "seconds": seconds})
        results[modality] = {"status": DONE, "entry": entry, "seconds": seconds}
    return results


def plan_recording(task: PlanTask) -> dict[str, Any]:
    """A recording's plan: ``{"duration", "segments": [[start, end, source, text]], "problems"}``,
    or ``{"error"}`` when it cannot be planned (one line)."""
    from featurizers.media import MediaClip

    try:
        clip = MediaClip(task.path, decode_threads=1)
        duration = float(clip.info.duration)
        if task.given is not None:
            return _check_intervals(task, duration)
        from featurizers.segments import SegmentationSpec, plan_segments

        spec = SegmentationSpec.from_dict(task.segmentation or {})
        segments = plan_segments(clip, spec)
    except MediaError as exc:
        return {"error": _readable(str(exc), task)}
    except ValueError as exc:  # a segmentation the recording cannot take
        return {"error": _readable(f"{task.source}: {exc}", task)}
    return {
        "duration": duration,
        "segments": [[round(g.start, 3), round(g.end, 3), g.source, g.text] for g in segments],
        "problems": {},
    }


def _check_intervals(task: PlanTask, duration: float) -> dict[str, Any]:
    """Labelled intervals inside the recording become segments; the others are problems."""
    segments, problems = [], {}
    for interval in task.given or ():
        if duration > 0 and interval.end > duration + INTERVAL_END_SLACK_S:
            problems[interval.ref] = (
                f"{interval.ref}: interval {interval.start:g}-{interval.end:g} s ends after "
                f"{task.source} ({duration:.2f} s long); fix the row's times or give the full "
                "recording; the interval is left out"
            )
            continue
        segments.append([round(interval.start, 3), round(interval.end, 3), "labels", None])
    return {"duration": duration, "segments": segments, "problems": problems}


def process_segments(task: SegmentTask) -> dict[str, dict[str, dict[str, Any]]]:
    """Extract a batch of segments of one recording; segment id -> modality -> status.

    Each segment's entries are written as soon as they are made, so a kill mid-batch keeps the
    segments already done. A bad segment is an answer, as a bad clip is in :func:`process_clip`.
    """
    from featurizers.media import MediaClip

    store = FeatureStore(task.store_root)
    featurizers = _featurizers(task.factory)
    try:
        recording = MediaClip(task.path, decode_threads=1)
    except MediaError as exc:
        reason = _readable(str(exc), task)
        return {
            u.unit_id: {m: {"status": FAILED, "error": reason} for m in u.modalities}
            for u in task.units
        }
    outcome: dict[str, dict[str, dict[str, Any]]] = {}
    for unit in task.units:
        try:
            clip = recording.segment(unit.start, unit.end, unit.text)
        except MediaError as exc:
            reason = _readable(str(exc), task)
            outcome[unit.unit_id] = {
                m: {"status": FAILED, "error": reason} for m in unit.modalities
            }
            continue
        meta = {"clip_id": unit.unit_id, "source": task.source}
        outcome[unit.unit_id] = _extract_all(
            clip, featurizers, unit.modalities, store, unit.content_hash, meta, task
        )
    return outcome


def run_task(task: ClipTask | PlanTask | SegmentTask) -> Any:
    """The engine's one function: a whole clip, a plan, or a batch of segments."""
    if isinstance(task, PlanTask):
        return plan_recording(task)
    if isinstance(task, SegmentTask):
        return process_segments(task)
    return process_clip(task)


def _readable(message: str, task: ClipTask | PlanTask | SegmentTask) -> str:
    """One line, naming the clip's origin rather than a spooled temporary copy."""
    text = message.replace(task.path, task.source).strip()
    return text.splitlines()[0] if text else "unknown error"


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
) -> dict[str, Any] | None:
    """``--segments`` (text, a spec dict or a ``SegmentationSpec``) with ``--min-segment`` /
    ``--max-segment`` -> the segmentation spec as a dict, or None for whole clips (``none``)."""
    if segments is None or (isinstance(segments, str) and segments.strip() == "none"):
        if min_segment is not None or max_segment is not None:
            raise PipelineError(
                "--min-segment/--max-segment apply to segmented recordings; give --segments "
                "auto|transcript|asr|vad|fixed:SECONDS too"
            )
        return None
    from dataclasses import replace

    from featurizers.segments import SegmentationSpec

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
    intervals: Mapping[str, Sequence[Interval]] | None = None,
) -> ExtractSummary:
    """Extract features of every clip in ``inputs`` into the store at ``out``.

    ``factory`` replaces the preset (for featurizers a caller builds itself). ``engine`` may be
    an :class:`Engine` that is not started yet. ``progress(done, total)`` is called at the start
    and after each clip or segment (the total grows as recordings are planned).
    ``segments`` cuts each recording into segments (see :func:`parse_segmentation`; None or
    ``"none"``: whole clips). ``intervals`` (clip id -> intervals, from interval labels) gives
    the segments instead, and restricts the run to those clips.
    """
    from featurizers.presets import parse_modalities

    started = time.perf_counter()
    try:
        wanted = parse_modalities(modalities)
    except ValueError as exc:
        raise PipelineError(f"--modalities: {exc}") from None
    segmentation = (
        None if intervals is not None else parse_segmentation(segments, min_segment, max_segment)
    )
    if factory is None:
        factory = preset_factory(preset, wanted)
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
    plan = _Plan(segmentation, intervals)
    with store.open_manifest() as manifest:
        run = _Run(store, manifest, summary, report, factory, specs, plan)
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
class _Plan:
    """How this run cuts recordings: not at all, by a segmentation spec, or by given intervals."""

    segmentation: dict[str, Any] | None
    intervals: Mapping[str, Sequence[Interval]] | None

    @property
    def spec(self) -> dict[str, Any] | None:
        """The segmentation recorded with each segment."""
        return LABELS_SEGMENTATION if self.intervals is not None else self.segmentation


@dataclass
class _Open:
    """An opened recording with work still in flight (its spooled copy is kept until done)."""

    clip: OpenedClip
    pending: int = 0
    cached: dict[str, dict[str, Any]] = field(default_factory=dict)  # whole clip: cached results
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> record parts


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
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.summary = summary
        self.report = report
        self.factory = factory
        self.specs = specs
        self.plan = plan
        self.errors: list[dict[str, str]] = []
        self.open: dict[str, _Open] = {}
        self.queue: deque[ClipTask | PlanTask | SegmentTask] = deque()
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
        if self.plan.intervals is not None:
            given = tuple(self.plan.intervals.get(clip.clip_id, ()))
            self._plan(clip, given)
        elif self.plan.segmentation is None:
            self._whole(clip)
        else:
            cached = self.store.read_plan(clip.content_hash, self.plan.segmentation)
            if cached is not None:
                self._segments(clip, cached["segments"])
            else:
                self._plan(clip, None)

    def _plan(self, clip: OpenedClip, given: tuple[Interval, ...] | None) -> None:
        self._opened(clip).pending += 1
        self.planning += 1
        spec = None if given is not None else self.plan.segmentation
        self.queue.append(PlanTask(clip.clip_id, str(clip.path), clip.source, spec, given))

    def _opened(self, clip: OpenedClip) -> _Open:
        return self.open.setdefault(clip.clip_id, _Open(clip))

    def _done_with(self, clip_id: str) -> None:
        """One task of the recording finished; release it when none is left."""
        opened = self.open[clip_id]
        opened.pending -= 1
        if opened.pending == 0:
            opened.clip.release()
            del self.open[clip_id]

    def _cached(self, content_hash: str) -> dict[str, dict[str, Any]]:
        found = {m: self.store.find(content_hash, spec) for m, spec in self.specs.items()}
        return {m: {"status": DONE, "entry": entry} for m, entry in found.items() if entry}

    def _whole(self, clip: OpenedClip) -> None:
        """Today's unit: the whole clip, every modality it lacks in one task."""
        cached = self._cached(clip.content_hash)
        todo = tuple(m for m in self.specs if m not in cached)
        if not todo:
            if clip.clip_id not in self.open:
                clip.release()
            self.record(_clip_record(clip, cached), extracted=False)
            return
        opened = self._opened(clip)
        opened.pending += 1
        opened.cached = cached
        self.queue.append(
            ClipTask(
                clip.clip_id,
                str(clip.path),
                clip.source,
                clip.content_hash,
                str(self.store.root),
                self.factory,
                todo,
            )
        )

    def _segments(self, clip: OpenedClip, planned: list[list[Any]]) -> None:
        """Record the segments already in the store; queue the rest in batches."""
        if len(planned) == 1 and planned[0][2] == "whole":
            self._whole(clip)  # a clip shorter than one segment: extracted as today
            return
        self.summary.total += len(planned) - 1  # the recording was counted once
        opened = self._opened(clip)
        batch: list[SegmentUnit] = []
        for start, end, source, text in planned:
            unit_id = segment_id(clip.clip_id, start, end)
            content_hash = segment_hash(clip.content_hash, start, end)
            cached = self._cached(content_hash)
            info = {
                "recording": clip.clip_id,
                "recording_hash": clip.content_hash,
                "start": start,
                "end": end,
                "source": source,
                "text": text,
                "segmentation": self.plan.spec,
            }
            todo = tuple(m for m in self.specs if m not in cached)
            if not todo:
                self.record(_segment_record(clip, unit_id, content_hash, info, cached), False)
                continue
            opened.segments[unit_id] = {"info": info, "cached": cached, "hash": content_hash}
            batch.append(SegmentUnit(unit_id, start, end, content_hash, todo, text))
            if sum(u.end - u.start for u in batch) >= SEGMENT_BATCH_SECONDS:
                self._queue_segments(opened, batch)
                batch = []
        if batch:
            self._queue_segments(opened, batch)
        opened.pending += 1  # held while scheduling, so a recording with nothing to do is freed
        self._done_with(clip.clip_id)

    def _queue_segments(self, opened: _Open, units: list[SegmentUnit]) -> None:
        clip = opened.clip
        opened.pending += 1
        self.queue.append(
            SegmentTask(
                clip.clip_id,
                str(clip.path),
                clip.source,
                str(self.store.root),
                self.factory,
                tuple(units),
            )
        )

    # --- results --------------------------------------------------------------------------

    def finish(self, task: ClipTask | PlanTask | SegmentTask, outcome: Any) -> None:
        if isinstance(task, PlanTask):
            self._finish_plan(task, outcome)
        elif isinstance(task, SegmentTask):
            self._finish_segments(task, outcome)
        else:
            opened = self.open[task.clip_id]
            if isinstance(outcome, TaskFailure):
                outcome = {m: {"status": FAILED, "error": outcome.reason} for m in task.modalities}
            self.record(_clip_record(opened.clip, {**opened.cached, **outcome}), extracted=True)
            self._done_with(task.clip_id)

    def _finish_plan(self, task: PlanTask, outcome: dict[str, Any] | TaskFailure) -> None:
        self.planning -= 1
        clip = self.open[task.clip_id].clip
        error = outcome.reason if isinstance(outcome, TaskFailure) else outcome.get("error")
        if error is not None:
            self.record(
                ClipRecord(clip.clip_id, clip.content_hash, clip.source, FAILED, error), False
            )
        else:
            self.summary.problems.update(outcome["problems"])
            if task.given is None:
                plan = {k: outcome[k] for k in ("duration", "segments")}
                self.store.write_plan(clip.content_hash, self.plan.segmentation, plan)
            if outcome["segments"]:
                self._segments(clip, outcome["segments"])
            else:
                self.summary.total -= 1
        self._done_with(task.clip_id)

    def _finish_segments(self, task: SegmentTask, outcome: dict | TaskFailure) -> None:
        opened = self.open[task.clip_id]
        for unit in task.units:
            if isinstance(outcome, TaskFailure):
                results = {m: {"status": FAILED, "error": outcome.reason} for m in unit.modalities}
            else:
                results = outcome[unit.unit_id]
            parts = opened.segments.pop(unit.unit_id)
            record = _segment_record(
                opened.clip,
                unit.unit_id,
                parts["hash"],
                parts["info"],
                {**parts["cached"], **results},
            )
            self.record(record, extracted=True)
        self._done_with(task.clip_id)


def _segment_record(
    clip: OpenedClip,
    unit_id: str,
    content_hash: str,
    info: dict[str, Any],
    results: dict[str, dict[str, Any]],
) -> ClipRecord:
    record = _clip_record(clip, results)
    record.clip_id, record.content_hash, record.segment = unit_id, content_hash, info
    return record


def _clip_record(clip: OpenedClip, results: dict[str, dict[str, Any]]) -> ClipRecord:
    return ClipRecord(
        clip_id=clip.clip_id,
        content_hash=clip.content_hash,
        source=clip.source,
        status=DONE if all(r["status"] == DONE for r in results.values()) else FAILED,
        error=_summary_line(results),
        results=results,
    )


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
