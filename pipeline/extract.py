"""`carat-cli extract`: clips in, cached features out, resumable; a bad clip never stops a batch.

The main process lists the inputs, opens clips one by one (archive members are spooled only while
in flight), takes from the store what is already there, and hands the rest to the engine. The unit
of work is one clip x every requested featurizer (the clip is decoded once); the worker writes
its results into the store itself (atomically) and returns a small status. Only the main process
writes the manifest, one line per clip, so a run killed at any moment loses at most the clips in
flight.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurizers.base import Featurizer, MediaError
from pipeline.engine import Engine, TaskFailure, make_engine
from pipeline.errors import PipelineError
from pipeline.sources import Catalog, OpenedClip, Refusal, Shard, open_clips, scan
from pipeline.store import DONE, FAILED, ClipRecord, FeatureStore, ManifestWriter

log = logging.getLogger(__name__)

FeaturizerFactory = Callable[[], dict[str, Featurizer]]


@dataclass(frozen=True)
class ClipTask:
    """What a worker needs to extract one clip (small and picklable)."""

    clip_id: str
    path: str
    source: str
    content_hash: str
    store_root: str
    factory: FeaturizerFactory
    modalities: tuple[str, ...]

    def __str__(self) -> str:
        return self.clip_id


@dataclass
class ExtractSummary:
    """What a run did. ``failed`` lists ``(clip id, reason)``; ``cached`` clips were skipped.

    ``partial`` counts failed clips that still got some modalities (e.g. a video without sound).
    """

    total: int = 0
    extracted: int = 0
    cached: int = 0
    partial: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    errors_file: Path | None = None
    exported: list[Path] = field(default_factory=list)

    @property
    def usable(self) -> int:
        """Clips with at least one modality in the store."""
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
    results: dict[str, dict[str, Any]] = {}
    for modality in task.modalities:
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
            log.debug("%s: %s failed\n%s", task.clip_id, modality, traceback.format_exc())
            reason = f"{type(exc).__name__} in the {modality} featurizer: {exc}"
            results[modality] = {"status": FAILED, "error": _readable(reason, task)}
            continue
        seconds = time.perf_counter() - started
        entry = store.write(
            task.content_hash,
            sequence,
            {"clip_id": task.clip_id, "source": task.source, "seconds": round(seconds, 4)},
        )
        results[modality] = {"status": DONE, "entry": entry, "seconds": round(seconds, 4)}
    return results


def _readable(message: str, task: ClipTask) -> str:
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


def run_extract(
    inputs: Sequence[str | Path],
    out: str | Path,
    preset: str = "default",
    modalities: Sequence[str] | str = ("text", "visual", "acoustic"),
    workers: int | None = None,
    glob: str | None = None,
    shard: str | Shard | None = None,
    engine: str | Engine = "local",
    address: str | None = None,
    export_csd: str | Path | None = None,
    factory: FeaturizerFactory | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractSummary:
    """Extract features of every clip in ``inputs`` into the store at ``out``.

    ``factory`` replaces the preset (for featurizers a caller builds itself). ``engine`` may be
    an :class:`Engine` that is not started yet. ``progress(done, total)`` is called at the start
    and after each clip.
    """
    from featurizers.presets import parse_modalities

    started = time.perf_counter()
    try:
        wanted = parse_modalities(modalities)
    except ValueError as exc:
        raise PipelineError(f"--modalities: {exc}") from None
    if factory is None:
        factory = preset_factory(preset, wanted)
    try:
        featurizers = factory()
    except ValueError as exc:
        raise PipelineError(f"--preset {preset}: {exc}") from None
    store = FeatureStore(Path(out).absolute())
    store.root.mkdir(parents=True, exist_ok=True)
    store.claim_specs({m: featurizers[m].spec.to_dict() for m in wanted})
    spec_keys = {m: featurizers[m].spec.key() for m in wanted}
    if isinstance(shard, str):
        shard = Shard.parse(shard)
    catalog = scan(inputs, glob=glob, shard=shard)
    summary = ExtractSummary(total=len(catalog.clips) + len(catalog.refusals))
    report = progress or (lambda done, total: None)
    report(0, summary.total)
    if isinstance(engine, str):
        engine = make_engine(engine, workers=workers, address=address)
    with store.open_manifest() as manifest:
        run = _Run(store, manifest, summary, report, factory, spec_keys)
        spool = _fresh_spool(store.root)
        try:
            for refusal in catalog.refusals:
                run.record(_refused(refusal), extracted=False)
            with engine:
                for task, outcome in engine.map_unordered(process_clip, run.tasks(catalog, spool)):
                    run.finish(task, outcome)
        finally:
            shutil.rmtree(spool, ignore_errors=True)
            summary.errors_file = _write_errors(store.root, run.errors)
    if export_csd is not None:
        summary.exported = store.export_csd(export_csd)
    summary.seconds = time.perf_counter() - started
    return summary


class _Run:
    """One run's bookkeeping: the manifest, the summary, the errors and the clips in flight."""

    def __init__(
        self,
        store: FeatureStore,
        manifest: ManifestWriter,
        summary: ExtractSummary,
        report: Callable[[int, int], None],
        factory: FeaturizerFactory,
        spec_keys: dict[str, str],
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.summary = summary
        self.report = report
        self.factory = factory
        self.spec_keys = spec_keys
        self.errors: list[dict[str, str]] = []
        self.in_flight: dict[str, tuple[OpenedClip, dict[str, dict[str, Any]]]] = {}

    def record(self, record: ClipRecord, extracted: bool) -> None:
        """One clip is finished: manifest line, summary, errors file, progress."""
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

    def tasks(self, catalog: Catalog, spool: Path) -> Iterator[ClipTask]:
        """Open clips one by one; record cached and unreadable ones, yield the rest as work."""
        for clip in open_clips(catalog, spool):
            if isinstance(clip, Refusal):
                self.record(_refused(clip), extracted=False)
                continue
            cached = {
                m: {"status": DONE, "entry": self.store.entry_name(clip.content_hash, key)}
                for m, key in self.spec_keys.items()
                if self.store.has(clip.content_hash, key)
            }
            todo = tuple(m for m in self.spec_keys if m not in cached)
            if not todo:
                clip.release()
                self.record(_clip_record(clip, cached), extracted=False)
                continue
            self.in_flight[clip.clip_id] = (clip, cached)
            yield ClipTask(
                clip.clip_id,
                str(clip.path),
                clip.source,
                clip.content_hash,
                str(self.store.root),
                self.factory,
                todo,
            )

    def finish(self, task: ClipTask, outcome: dict[str, dict[str, Any]] | TaskFailure) -> None:
        clip, cached = self.in_flight.pop(task.clip_id)
        clip.release()
        if isinstance(outcome, TaskFailure):
            outcome = {m: {"status": FAILED, "error": outcome.reason} for m in task.modalities}
        self.record(_clip_record(clip, {**cached, **outcome}), extracted=True)


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
