"""The feature store: a folder cache of extracted features that survives crashes, merges by copy.

Layout under ``root``::

    specs.json                      modality -> featurizer spec of the features in this store
    entries/ab/<hash>.<speckey>.npz features, intervals (and words) of one clip x featurizer
    entries/ab/<hash>.<speckey>.json spec, clip id, source, timings, sha256 of the .npz
    manifest/<run>.jsonl            one JSON line per clip (or segment) outcome, append-only
    plans/ab/<hash>.<segkey>.json   a recording's segments under one segmentation spec

An entry is keyed by the clip's content hash and the featurizer spec key, so identical clips are
computed once and a changed featurizer never reads stale features. Both files are written under a
temporary name and ``os.replace``d into place (the .npz first, then the .json that vouches for it
with its digest): a SIGKILL leaves either a whole entry or none that is trusted. Each run writes
its own manifest file, so stores from several machines merge by copying folders together; when a
clip appears in several lines the last one (by time) wins, and a torn last line is ignored.

A segment of a recording is stored like a clip under its :class:`~featurizers.span.Span`'s id
(``<clip_id>@<start>-<end>``) and cache key (from the recording's content hash and the times);
its manifest line carries ``segment`` (the span's fields, the recording's hash and the
segmentation). A recording's :class:`Plan` (its spans) is cached once per segmentation spec, so
a re-run does not plan again; plan files of older carat versions (rows of ``[start, end,
source, text]``) still read.

A store written before the audio modality was renamed (``featurizers.legacy``) is read as it
is: its specs and manifest results under today's names, its entries found by :meth:`find`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from featurizers import legacy
from featurizers.base import FeatureSequence, FeaturizerSpec
from featurizers.span import Span
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"
_NOTES = ("language", "absent")  # FeatureSequence fields kept in an entry's JSON sidecar


def spec_hash(spec: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able spec (e.g. a segmentation spec)."""
    payload = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """A recording cut under one segmentation: its length in seconds and its spans in order."""

    duration: float
    spans: tuple[Span, ...]


@dataclass
class ClipRecord:
    """The latest manifest line of one clip or segment.

    ``results`` maps modality -> ``{"status", "entry" (hash.speckey) or "error"}``. ``segment``
    is set for a segment of a recording: ``{"recording", "recording_hash", "start", "end",
    "source", "text", "segmentation"}``.
    """

    clip_id: str
    content_hash: str | None
    source: str
    status: str
    error: str | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    time: float = 0.0
    segment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "clip_id": self.clip_id,
            "content_hash": self.content_hash,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "results": self.results,
            "time": self.time,
        }
        if self.segment is not None:
            data["segment"] = self.segment
        return data


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ManifestWriter:
    """Appends clip outcomes to this run's own manifest file, one flushed line each."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")  # closed in close()

    def append(self, record: ClipRecord) -> None:
        record.time = record.time or time.time()
        self._handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FeatureStore:
    """Read and write cached features. Workers write entries; one process writes the manifest."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.entries_dir = self.root / "entries"
        self.manifest_dir = self.root / "manifest"
        self._manifest: dict[str, ClipRecord] = {}
        self._manifest_signature: tuple = ()

    # --- entries ------------------------------------------------------------------------------

    @staticmethod
    def entry_name(content_hash: str, spec_key: str) -> str:
        return f"{content_hash}.{spec_key}"

    def _entry_paths(self, entry: str) -> tuple[Path, Path]:
        folder = self.entries_dir / entry[:2]
        return folder / f"{entry}.npz", folder / f"{entry}.json"

    def write(
        self,
        content_hash: str,
        sequence: FeatureSequence,
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Store one clip x featurizer result atomically; returns the entry name."""
        entry = self.entry_name(content_hash, sequence.spec.key())
        npz_path, json_path = self._entry_paths(entry)
        buffer = io.BytesIO()
        arrays: dict[str, np.ndarray] = {
            "features": sequence.features,
            "intervals": sequence.intervals,
        }
        if sequence.words is not None:
            arrays["words"] = np.asarray(sequence.words, dtype=np.str_)
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        sidecar = {
            "spec": sequence.spec.to_dict(),
            "content_hash": content_hash,
            "npz_sha256": hashlib.sha256(data).hexdigest(),
            "rows": int(len(sequence.features)),
            **{k: getattr(sequence, k) for k in _NOTES if getattr(sequence, k) is not None},
            **(meta or {}),
        }
        # The sidecar first, the arrays last: an .npz file in the store is a complete entry
        # (a kill between the two leaves a sidecar alone, which reads as missing).
        atomic_write_bytes(json_path, json.dumps(sidecar, indent=1).encode())
        atomic_write_bytes(npz_path, data)
        return entry

    def read(self, entry: str) -> FeatureSequence | None:
        """The entry's features, or None if it is missing or fails verification."""
        npz_path, json_path = self._entry_paths(entry)
        try:
            sidecar = json.loads(json_path.read_text(encoding="utf-8"))
            data = npz_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sidecar["npz_sha256"]:
                log.warning("%s: checksum mismatch, entry ignored (will be recomputed)", npz_path)
                return None
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                words = [str(w) for w in arrays["words"]] if "words" in arrays.files else None
                return FeatureSequence(
                    features=arrays["features"],
                    intervals=arrays["intervals"],
                    spec=FeaturizerSpec.from_dict(sidecar["spec"]),
                    words=words,
                    **{k: sidecar.get(k) for k in _NOTES},
                )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable entry ignored (%s); it will be recomputed", entry, exc)
            return None

    def has(self, content_hash: str, spec_key: str) -> bool:
        """True only for an entry that exists and verifies."""
        return self.read(self.entry_name(content_hash, spec_key)) is not None

    def find(self, content_hash: str, spec: FeaturizerSpec) -> str | None:
        """The entry that holds this clip's features of ``spec`` and verifies, or None: under
        the spec's key, else under a key the same declaration had under a legacy name (features
        computed before a rename are read, not computed again)."""
        found = self.lookup(content_hash, spec)
        return None if found is None else found[0]

    def lookup(self, content_hash: str, spec: FeaturizerSpec) -> tuple[str, FeatureSequence] | None:
        """As :meth:`find`, with the entry's features (read and verified once)."""
        for key in (spec.key(), *spec.legacy_keys()):
            entry = self.entry_name(content_hash, key)
            sequence = self.read(entry)
            if sequence is not None:
                return entry, sequence
        return None

    # --- plans --------------------------------------------------------------------------------

    def _plan_path(self, content_hash: str, segmentation: dict[str, Any]) -> Path:
        name = f"{content_hash}.{spec_hash(segmentation)}.json"
        return self.root / "plans" / content_hash[:2] / name

    def read_plan(self, content_hash: str, segmentation: dict[str, Any]) -> Plan | None:
        """A recording's cached plan (its spans carry no recording id), or None."""
        path = self._plan_path(content_hash, segmentation)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("segmentation") != segmentation:
                return None
            spans = tuple(Span.from_dict(row) for row in data["segments"])
            return Plan(float(data["duration"]), spans)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(
                "%s: unreadable plan ignored (%s); the recording is planned again", path, exc
            )
            return None

    def write_plan(self, content_hash: str, segmentation: dict[str, Any], plan: Plan) -> None:
        """Cache a recording's plan atomically (keyed by content hash + segmentation spec)."""
        spans = [{k: v for k, v in s.to_dict().items() if k != "recording"} for s in plan.spans]
        data = {
            "duration": plan.duration,
            "segments": spans,
            "content_hash": content_hash,
            "segmentation": segmentation,
        }
        atomic_write_bytes(
            self._plan_path(content_hash, segmentation), json.dumps(data, indent=1).encode()
        )

    # --- specs --------------------------------------------------------------------------------

    def specs(self) -> dict[str, dict[str, Any]]:
        """modality -> the featurizer spec (as a dict) this store's features were made with."""
        return legacy.current_specs(self._written_specs())

    def _written_specs(self) -> dict[str, dict[str, Any]]:
        path = self.root / "specs.json"
        if not path.exists():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def claim_specs(self, specs: dict[str, dict[str, Any]]) -> None:
        """Record the run's featurizer specs; refuse a different featurizer for a modality the
        store already holds, so one store never mixes two kinds of features."""
        current = self.specs()
        for modality, spec in specs.items():
            old = current.get(modality)
            if old is not None and old != spec:
                raise PipelineError(
                    f"{self.root}: holds {modality} features from {old['name']} "
                    f"{old['version']} (other parameters); use another --out folder for "
                    f"{spec['name']} {spec['version']}"
                )
        merged = {**current, **specs}
        if merged != self._written_specs():
            atomic_write_bytes(
                self.root / "specs.json", json.dumps(merged, indent=1, sort_keys=True).encode()
            )

    # --- manifest -----------------------------------------------------------------------------

    def open_manifest(self) -> ManifestWriter:
        """A new append-only manifest file for this run (unique across machines)."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        return ManifestWriter(self.manifest_dir / name)

    def manifest(self) -> dict[str, ClipRecord]:
        """clip id -> its latest record, over every manifest file (torn lines ignored).

        Re-read only when a manifest file changed, so loading many clips stays cheap.
        """
        paths = sorted(self.manifest_dir.glob("*.jsonl"))
        signature = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
        if signature != self._manifest_signature:
            records: list[ClipRecord] = []
            for path in paths:
                records.extend(_read_manifest_file(path))
            records.sort(key=lambda r: r.time)
            self._manifest = {record.clip_id: record for record in records}
            self._manifest_signature = signature
        return self._manifest

    def clip_ids(self) -> list[str]:
        """Clips with at least one stored modality, sorted."""
        return sorted(
            clip_id
            for clip_id, record in self.manifest().items()
            if any(r.get("status") == DONE for r in record.results.values())
        )

    def load(self, clip_id: str, modality: str) -> FeatureSequence | None:
        """One clip's features of one modality, or None if absent, failed or unreadable."""
        record = self.manifest().get(clip_id)
        if record is None:
            return None
        return self.load_record(record, modality)

    def load_record(self, record: ClipRecord, modality: str) -> FeatureSequence | None:
        result = record.results.get(modality)
        if not result or result.get("status") != DONE:
            return None
        return self.read(result["entry"])

    # --- CMU SDK .csd interchange -------------------------------------------------------------

    def export_csd(self, out_dir: str | Path) -> list[Path]:
        """Write one ``.csd`` per modality (the CMU Multimodal SDK's HDF5 layout)."""
        from carat.data.csd import write_csd

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        written = []
        for modality, spec in sorted(self.specs().items()):
            data = {}
            for clip_id, record in sorted(manifest.items()):
                sequence = self.load_record(record, modality)
                if sequence is not None:
                    data[clip_id] = (sequence.features, sequence.intervals)
            if not data:
                continue
            path = out / f"{modality}.csd"
            write_csd(path, spec["name"], data, _csd_metadata(spec))
            written.append(path)
        return written

    def import_csd(self, path: str | Path, modality: str, source: str | None = None) -> int:
        """Add the sequences of a ``.csd`` file as ``modality`` features; returns the count.

        A file we exported keeps its full featurizer spec in its metadata; any other file gets a
        spec named after its root with generic dim names. Imported clips have no media, so their
        content hash is derived from the file's name and the clip id.
        """
        from carat.data.csd import read_csd

        path = Path(path)
        root_name, data, metadata = read_csd(path)
        spec = _spec_from_csd(root_name, modality, data, metadata)
        self.claim_specs({modality: spec.to_dict()})
        manifest = self.manifest()
        with self.open_manifest() as writer:
            for clip_id, (features, intervals) in data.items():
                old = manifest.get(clip_id) or ClipRecord(clip_id, None, str(path), DONE)
                record = replace(old, results=dict(old.results))
                digest = hashlib.sha256(f"csd:{root_name}:{clip_id}".encode()).hexdigest()
                content_hash = record.content_hash or digest
                sequence = FeatureSequence(features, intervals, spec)
                entry = self.write(
                    content_hash, sequence, {"clip_id": clip_id, "source": str(path)}
                )
                record.content_hash = content_hash
                record.results[modality] = {"status": DONE, "entry": entry}
                record.status = _overall_status(record.results.values())
                record.time = 0.0
                writer.append(record)
        return len(data)


def _overall_status(results: Iterable[dict[str, Any]]) -> str:
    return DONE if all(r.get("status") == DONE for r in results) else FAILED


def _read_manifest_file(path: Path) -> list[ClipRecord]:
    records = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                data = json.loads(line)
                records.append(
                    ClipRecord(
                        clip_id=data["clip_id"],
                        content_hash=data["content_hash"],
                        source=data["source"],
                        status=data["status"],
                        error=data.get("error"),
                        results=legacy.by_current_modality(data.get("results", {})),
                        time=float(data.get("time", 0.0)),
                        segment=data.get("segment"),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                log.info("%s:%d: torn or malformed manifest line ignored", path, number)
    return records


_SPEC_METADATA_KEY = "carat featurizer spec"


def _csd_metadata(spec: dict[str, Any]) -> dict[str, str]:
    return {
        "root name": spec["name"],
        "computational sequence description": f"{spec['modality']} features from carat "
        f"featurizer {spec['name']} {spec['version']}",
        "computational sequence version": spec["version"],
        "alignment compatible": "True",
        "dataset name": "carat feature store export",
        "dataset version": "1",
        "creator": "carat",
        "contact": "",
        "featureset bib citation": "",
        "dataset bib citation": "",
        "dimension names": json.dumps(spec["dim_names"]),
        _SPEC_METADATA_KEY: json.dumps(spec, sort_keys=True),
    }


def _spec_from_csd(
    root_name: str,
    modality: str,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    metadata: dict[str, str],
) -> FeaturizerSpec:
    if _SPEC_METADATA_KEY in metadata:
        spec = FeaturizerSpec.from_dict(json.loads(metadata[_SPEC_METADATA_KEY]))
        if spec.modality == modality:
            return spec
    if not data:
        raise PipelineError(f"{root_name}: the .csd file holds no sequences")
    dim = int(next(iter(data.values()))[0].shape[1])
    return FeaturizerSpec(
        name=root_name,
        version=str(metadata.get("computational sequence version", "csd")),
        modality=modality,
        dim_names=tuple(f"{root_name}_{i}" for i in range(dim)),
        rate=None,
        params={"imported_from": "csd"},
    )
