"""Where clips come from: files, folders, list files and tar/zip archives, as one stream.

Every clip gets a stable id that the store, the manifest and the labels CSV share: the path
relative to the input root for folders and list files, ``archive-name/member/path`` for archive
members. Archives are read as streams (``tarfile`` mode ``"r|*"``; zip members one at a time) and
each member is spooled to a temporary file only while it is processed, because PyAV needs a
seekable file for mp4. Member names are never used as paths on disk: a member with an absolute
path, a ``..`` component, a link or a device node is refused and reported.

Two steps: :func:`scan` lists the clips cheaply (one pass over an archive's headers, so the
progress bar knows the total and ``--shard`` can pick its clips), then :func:`open_clips` yields
each selected clip ready to decode, with its transcript sidecars beside it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
SIDECAR_EXTENSIONS = (".txt", ".srt", ".vtt", ".json")
LIST_EXTENSIONS = (".txt", ".lst", ".list")
ARCHIVE_EXTENSIONS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Shard:
    """``--shard I/N``: this machine takes the clips whose id hashes to ``index`` modulo ``count``.

    The hash depends on the clip id only, so N machines given the same inputs split them into
    disjoint parts that together cover every clip, with no coordinator.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index_text, count_text = text.split("/")
            index, count = int(index_text), int(count_text)
        except ValueError:
            raise PipelineError(
                f"--shard {text!r}: expected I/N with whole numbers, e.g. 0/4 (I counts from 0)"
            ) from None
        if count < 1 or not 0 <= index < count:
            raise PipelineError(f"--shard {text!r}: need 0 <= I < N, e.g. 0/4 ... 3/4")
        return cls(index, count)

    def takes(self, clip_id: str) -> bool:
        digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


@dataclass(frozen=True)
class ClipRef:
    """A clip found by :func:`scan`, not yet opened.

    ``location`` is the file on disk, or the archive holding ``member``; ``sidecars`` are the
    transcript files (on disk or member names) with the clip's stem.
    """

    clip_id: str
    location: Path
    member: str | None = None
    sidecars: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """An input or archive member that was not used, and why (recorded as a failed clip)."""

    clip_id: str
    source: str
    reason: str


@dataclass
class Catalog:
    """The result of :func:`scan`: the clips to process, in input order, and what was refused."""

    clips: list[ClipRef] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


@dataclass
class OpenedClip:
    """A clip ready to decode: ``path`` is the original file or a spooled temporary copy.

    ``content_hash`` covers the media bytes and its sidecars, so a changed transcript gives a new
    cache entry. Call :meth:`release` when the clip is done to delete a spooled copy.
    """

    clip_id: str
    path: Path
    source: str
    content_hash: str
    sidecars: list[Path]
    _spool_dir: Path | None = None

    def release(self) -> None:
        if self._spool_dir is not None:
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            self._spool_dir = None


def scan(
    inputs: Sequence[str | Path], glob: str | None = None, shard: Shard | None = None
) -> Catalog:
    """List the clips of every input; refuse hostile members and duplicate ids."""
    catalog = Catalog()
    seen: dict[str, str] = {}
    for raw in inputs:
        path = Path(raw).absolute()  # workers (Dask) may run in another folder
        found = _scan_one(path, glob)
        for item in found:
            if shard is not None and not shard.takes(item.clip_id):
                continue
            if isinstance(item, Refusal):
                catalog.refusals.append(item)
                continue
            if item.clip_id in seen:
                catalog.refusals.append(
                    Refusal(
                        item.clip_id,
                        str(path),
                        f"duplicate clip id (also from {seen[item.clip_id]}); give the inputs "
                        "distinct names or run them separately",
                    )
                )
                continue
            seen[item.clip_id] = str(path)
            catalog.clips.append(item)
    return catalog


def open_clips(catalog: Catalog, spool_root: Path) -> Iterator[OpenedClip | Refusal]:
    """Yield each clip of ``catalog`` ready to decode, archives streamed member by member.

    A clip that cannot be read (vanished file, damaged archive) is yielded as a :class:`Refusal`
    and the stream goes on with the next input.
    """
    spool_root.mkdir(parents=True, exist_ok=True)
    for location, refs in _group_by_location(catalog.clips):
        if refs[0].member is None:
            for ref in refs:
                yield _open_file(ref)
        elif zipfile.is_zipfile(location):
            yield from _open_zip_members(location, refs, spool_root)
        else:
            yield from _open_tar_members(location, refs, spool_root)


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(ARCHIVE_EXTENSIONS)


def archive_prefix(path: Path) -> str:
    """The clip-id prefix of an archive's members: its file name."""
    return path.name


# --- scanning ---------------------------------------------------------------------------------


def _scan_one(path: Path, glob: str | None) -> list[ClipRef | Refusal]:
    if not path.exists():
        raise PipelineError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        return list(_scan_folder(path, glob))
    if is_archive(path):
        return _scan_archive(path, glob)
    if path.suffix.lower() in LIST_EXTENSIONS:
        return list(_scan_list_file(path))
    return [ClipRef(path.name, path, None, _disk_sidecars(path))]


def _wanted(rel_path: str, glob: str | None) -> bool:
    if glob is not None:
        return fnmatch.fnmatchcase(rel_path, glob) or fnmatch.fnmatchcase(
            PurePosixPath(rel_path).name, glob
        )
    return PurePosixPath(rel_path).suffix.lower() in MEDIA_EXTENSIONS


def _scan_folder(root: Path, glob: str | None) -> Iterator[ClipRef]:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if _wanted(rel, glob) and not _is_sidecar_of_media(path):
            yield ClipRef(rel, path, None, _disk_sidecars(path))


def _is_sidecar_of_media(path: Path) -> bool:
    """A ``.txt``/``.json`` matched by a broad glob is a transcript, not a clip, if media shares
    its stem."""
    if path.suffix.lower() not in SIDECAR_EXTENSIONS:
        return False
    return any(path.with_suffix(ext).exists() for ext in MEDIA_EXTENSIONS)


def _disk_sidecars(path: Path) -> tuple[str, ...]:
    found = []
    for ext in SIDECAR_EXTENSIONS:
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            found.append(str(candidate))
    return tuple(found)


def _scan_list_file(list_file: Path) -> Iterator[ClipRef | Refusal]:
    base = list_file.parent
    lines = list_file.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        clip_id = PurePosixPath(Path(entry).as_posix()).as_posix()
        if not path.is_file():
            yield Refusal(clip_id, f"{list_file}:{number}", f"{path}: no such file")
            continue
        yield ClipRef(clip_id, path, None, _disk_sidecars(path))


def _member_problem(name: str, kind: str) -> str | None:
    """Why an archive member must not be used, or None if it is a plain relative file."""
    if kind != "file":
        return f"archive member is a {kind}; only regular files are read"
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "archive member has an absolute path"
    if ".." in posix.parts:
        return "archive member path has a '..' component"
    return None


def _scan_archive(path: Path, glob: str | None) -> list[ClipRef | Refusal]:
    """One pass over the member headers: clips, their sidecars, and refused members."""
    try:
        members = list(_archive_headers(path))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise PipelineError(
            f"{path}: not a readable tar/zip archive ({exc}); check the file is complete"
        ) from None
    prefix = archive_prefix(path)
    files = {name for name, kind in members if kind == "file" and not _member_problem(name, kind)}
    found: list[ClipRef | Refusal] = []
    for name, kind in members:
        clip_id = f"{prefix}/{name.lstrip('/')}"
        problem = _member_problem(name, kind)
        if problem is not None:
            if kind in ("directory",):
                continue
            found.append(Refusal(clip_id, str(path), f"{problem}; refused, nothing written"))
            continue
        if not _wanted(name, glob) or _is_member_sidecar(name, files):
            continue
        stem = str(PurePosixPath(name).with_suffix(""))
        sidecars = tuple(stem + ext for ext in SIDECAR_EXTENSIONS if stem + ext in files)
        found.append(ClipRef(clip_id, path, name, sidecars))
    return found


def _is_member_sidecar(name: str, files: set[str]) -> bool:
    posix = PurePosixPath(name)
    if posix.suffix.lower() not in SIDECAR_EXTENSIONS:
        return False
    stem = str(posix.with_suffix(""))
    return any(stem + ext in files for ext in MEDIA_EXTENSIONS)


def _archive_headers(path: Path) -> Iterator[tuple[str, str]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                yield info.filename, _zip_kind(info)
        return
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            yield member.name, _tar_kind(member)


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isfile():
        return "file"
    if member.isdir():
        return "directory"
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "named pipe"
    return "special file"


def _zip_kind(info: zipfile.ZipInfo) -> str:
    if info.is_dir():
        return "directory"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    return "file"


# --- opening ----------------------------------------------------------------------------------


def _group_by_location(refs: Iterable[ClipRef]) -> Iterator[tuple[Path, list[ClipRef]]]:
    """Consecutive clips from the same archive are opened in one stream."""
    group: list[ClipRef] = []
    for ref in refs:
        if group and (ref.member is None or ref.location != group[0].location):
            yield group[0].location, group
            group = []
        group.append(ref)
    if group:
        yield group[0].location, group


def _open_file(ref: ClipRef) -> OpenedClip | Refusal:
    try:
        digest = hashlib.sha256()
        with open(ref.location, "rb") as handle:
            for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
                digest.update(chunk)
        sidecars = [Path(s) for s in ref.sidecars]
        for sidecar in sidecars:
            digest.update(sidecar.suffix.encode() + hashlib.sha256(sidecar.read_bytes()).digest())
    except OSError as exc:
        return Refusal(ref.clip_id, str(ref.location), f"cannot read the file ({exc.strerror})")
    return OpenedClip(ref.clip_id, ref.location, str(ref.location), digest.hexdigest(), sidecars)


class _Spooler:
    """Writes one member (and later its sidecars) into a fresh private folder."""

    def __init__(self, spool_root: Path, ref: ClipRef) -> None:
        self.ref = ref
        self.folder = Path(tempfile.mkdtemp(prefix="clip-", dir=spool_root))
        self.path = self.folder / PurePosixPath(ref.member or "").name
        self.digest = hashlib.sha256()
        self.sidecars: dict[str, bytes] = {}

    def write_media(self, stream: IO[bytes]) -> None:
        with open(self.path, "wb") as out:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                self.digest.update(chunk)
                out.write(chunk)

    def add_sidecar(self, name: str, data: bytes) -> None:
        self.sidecars[name] = data

    @property
    def complete(self) -> bool:
        return all(name in self.sidecars for name in self.ref.sidecars)

    def finish(self, archive: Path) -> OpenedClip:
        paths = []
        for name in self.ref.sidecars:
            suffix = PurePosixPath(name).suffix
            target = self.path.with_suffix(suffix)
            target.write_bytes(self.sidecars[name])
            self.digest.update(suffix.encode() + hashlib.sha256(self.sidecars[name]).digest())
            paths.append(target)
        return OpenedClip(
            self.ref.clip_id,
            self.path,
            f"{archive}:{self.ref.member}",
            self.digest.hexdigest(),
            paths,
            self.folder,
        )

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _read_sidecar(stream: IO[bytes], name: str, size: int) -> bytes | None:
    if size > MAX_SIDECAR_BYTES:
        log.warning("%s: transcript sidecar over %d bytes ignored", name, MAX_SIDECAR_BYTES)
        return None
    return stream.read()


def _open_zip_members(
    path: Path, refs: list[ClipRef], spool_root: Path
) -> Iterator[OpenedClip | Refusal]:
    with zipfile.ZipFile(path) as archive:
        for ref in refs:
            spool = _Spooler(spool_root, ref)
            try:
                with archive.open(ref.member or "") as stream:
                    spool.write_media(stream)
                for name in ref.sidecars:
                    info = archive.getinfo(name)
                    with archive.open(info) as stream:
                        data = _read_sidecar(stream, name, info.file_size)
                    spool.add_sidecar(name, data if data is not None else b"")
                yield spool.finish(path)
            except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
                spool.discard()
                yield Refusal(ref.clip_id, str(path), f"cannot read archive member ({exc})")


def _open_tar_members(
    path: Path, refs: list[ClipRef], spool_root: Path
) -> Iterator[OpenedClip | Refusal]:
    """Stream the tar once. A clip waits (spooled) until its sidecars have streamed past, and
    sidecars that come first wait in memory until their clip arrives."""
    by_member = {ref.member: ref for ref in refs}
    owner_of_sidecar = {name: ref.member for ref in refs for name in ref.sidecars}
    waiting: dict[str, _Spooler] = {}
    early_sidecars: dict[str, bytes] = {}
    remaining = set(by_member)
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if not remaining and not waiting:
                    break
                if _member_problem(member.name, _tar_kind(member)) is not None:
                    continue
                if member.name in owner_of_sidecar:
                    stream = archive.extractfile(member)
                    data = _read_sidecar(stream, member.name, member.size) or b""
                    owner = owner_of_sidecar[member.name]
                    if owner in waiting:
                        waiting[owner].add_sidecar(member.name, data)
                        if waiting[owner].complete:
                            yield waiting.pop(owner).finish(path)
                    else:
                        early_sidecars[member.name] = data
                if member.name in remaining:
                    ref = by_member[member.name]
                    spool = _Spooler(spool_root, ref)
                    try:
                        spool.write_media(archive.extractfile(member))
                    except BaseException:
                        spool.discard()
                        raise
                    remaining.discard(member.name)
                    for name in ref.sidecars:
                        if name in early_sidecars:
                            spool.add_sidecar(name, early_sidecars.pop(name))
                    if spool.complete:
                        yield spool.finish(path)
                    else:
                        waiting[member.name] = spool
    except (tarfile.TarError, OSError, EOFError) as exc:
        for spool in waiting.values():
            spool.discard()
        for member_name in sorted(remaining) + sorted(waiting):
            ref = by_member[member_name]
            yield Refusal(ref.clip_id, str(path), f"archive ended or broke before it ({exc})")
        return
    for spool in waiting.values():
        yield spool.finish(path)
