"""Benchmark files converted once into packed Arrow folders, memory-mapped on every later run.

A conversion lives in ``<cache>/<stem>-<key>/``: the packed dataset plus ``source.json``, which
records each source file's size, modification time and full content hash, and the dataset's
fingerprint.  ``key`` is a quick content key: the sizes and 64 blocks of 64 KiB spread over each
source file, read in milliseconds.  On a later run:

- same key, same size and modification time: the conversion is used as it is;
- same key but the file was touched or copied: its full hash decides (seconds, once);
- a changed or damaged source, or a damaged conversion: converted again.

A conversion is written into a temporary folder and renamed into place when complete, under a
lock (several processes of one ``torchrun`` job convert once), so a half-written conversion is
never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from carat.data.fingerprint import dataset_fingerprint
from carat.data.packed import META_FILE, read_packed
from carat.data.types import MultimodalDataset
from carat.errors import DataError

log = logging.getLogger(__name__)

MANIFEST = "source.json"
MANIFEST_FORMAT = "carat-converted/1"
SAMPLE_BLOCKS, BLOCK_BYTES = 64, 64 * 1024
HASH_BYTES = 16 * 2**20


def default_cache_dir() -> Path:
    """``$CARAT_DATASET_CACHE``, else ``$CARAT_CACHE/datasets``, else
    ``~/.cache/carat/datasets``."""
    if os.environ.get("CARAT_DATASET_CACHE"):
        return Path(os.environ["CARAT_DATASET_CACHE"])
    root = os.environ.get("CARAT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "carat") / "datasets"


def quick_key(sources: list[Path]) -> str:
    """A content key read in milliseconds: sizes plus evenly spaced blocks of every file."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sources:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size};".encode())
        with path.open("rb") as handle:
            for i in range(SAMPLE_BLOCKS):
                handle.seek(max(size - BLOCK_BYTES, 0) * i // max(SAMPLE_BLOCKS - 1, 1))
                digest.update(handle.read(BLOCK_BYTES))
    return digest.hexdigest()


def full_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while block := handle.read(HASH_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _stat(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _read_manifest(entry: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ok = manifest.get("format") == MANIFEST_FORMAT and (entry / META_FILE).is_file()
    return manifest if ok else None


def _write_manifest(entry: Path, manifest: dict[str, Any]) -> None:
    tmp = entry / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, entry / MANIFEST)


def _sources_match(entry: Path, manifest: dict[str, Any], sources: list[Path]) -> bool:
    """Whether the recorded sources are these files' content (full hash only if touched)."""
    recorded = manifest.get("sources", [])
    if [r.get("name") for r in recorded] != [p.name for p in sources]:
        return False
    touched = False
    for record, path in zip(recorded, sources, strict=True):
        if _stat(path) == {"size": record["size"], "mtime_ns": record["mtime_ns"]}:
            continue
        log.info("%s was touched since its conversion: checking its content", path)
        if full_hash(path) != record["blake2b"]:
            return False
        record.update(_stat(path))
        touched = True
    if touched:
        _write_manifest(entry, manifest)
    return True


def _open(entry: Path, manifest: dict[str, Any], source: str) -> MultimodalDataset:
    dataset = read_packed(entry)
    dataset.source = source
    dataset.fingerprint = manifest["fingerprint"]
    return dataset


def _discard(entry: Path) -> None:
    """Move a stale conversion aside first, so no reader ever sees it half deleted."""
    if entry.exists():
        trash = entry.with_name(f".{entry.name}.trash-{uuid.uuid4().hex[:8]}")
        os.replace(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)


def cached_dataset(
    sources: list[Path],
    convert: Callable[[Path], None],
    cache_dir: str | Path | None = None,
    source: str | None = None,
) -> MultimodalDataset:
    """The dataset converted from ``sources`` by ``convert(folder)`` (which writes a packed
    folder), converting only when no valid conversion of these very files exists.

    ``source`` is what the dataset names as its origin (default: the first source file).
    """
    for path in sources:
        if not path.is_file():
            raise DataError(f"{path}: file not found")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{sources[0].stem}-{quick_key(sources)}"
    origin = source or str(sources[0])
    with FileLock(str(root / f".{entry.name}.lock")):
        manifest = _read_manifest(entry)
        if manifest is not None and _sources_match(entry, manifest, sources):
            try:
                return _open(entry, manifest, origin)
            except DataError as exc:
                log.warning("%s: damaged conversion (%s); converting again", entry, exc)
        elif entry.exists():
            log.warning("%s no longer matches %s; converting again", entry, origin)
        _discard(entry)
        log.warning("converting %s once into %s (later runs memory-map it)", origin, entry)
        tmp = root / f".{entry.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            convert(tmp)
            records = [{"name": p.name, **_stat(p), "blake2b": full_hash(p)} for p in sources]
            manifest = {
                "format": MANIFEST_FORMAT,
                "sources": records,
                "fingerprint": dataset_fingerprint(read_packed(tmp)),
            }
            _write_manifest(tmp, manifest)
            os.replace(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return _open(entry, manifest, origin)
