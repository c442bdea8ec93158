"""Sources: clip ids from folders, globs, list files and archives; hostile members; shards."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.sources import OpenedClip, Refusal, Shard, open_clips, scan


def _media_tree(root: Path) -> dict[str, bytes]:
    """A small folder of fake clips (sources never decode) with one transcript sidecar."""
    files = {
        "a.mp4": b"clip a",
        "sub/b.wav": b"clip b",
        "sub/deeper/c d é.mov": b"clip c",
        "sub/b.txt": b"hello world",
        "notes.pdf": b"not a clip",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _opened(catalog, spool: Path) -> dict[str, OpenedClip]:
    clips = {}
    for clip in open_clips(catalog, spool):
        assert isinstance(clip, OpenedClip), clip
        clips[clip.clip_id] = clip
    return clips


def test_folder_ids_are_relative_paths_and_sidecars_travel(tmp_path):
    _media_tree(tmp_path / "in")
    catalog = scan([tmp_path / "in"])
    assert [c.clip_id for c in catalog.clips] == ["a.mp4", "sub/b.wav", "sub/deeper/c d é.mov"]
    clips = _opened(catalog, tmp_path / "spool")
    assert clips["sub/b.wav"].sidecars == [tmp_path / "in/sub/b.txt"]
    assert clips["a.mp4"].sidecars == []
    # the transcript is part of the clip's identity: a new transcript is a new cache entry
    before = clips["sub/b.wav"].content_hash
    (tmp_path / "in/sub/b.txt").write_text("other words")
    after = _opened(scan([tmp_path / "in"]), tmp_path / "spool")["sub/b.wav"].content_hash
    assert before != after


def test_glob_selects_clips(tmp_path):
    _media_tree(tmp_path / "in")
    assert [c.clip_id for c in scan([tmp_path / "in"], glob="*.mov").clips] == [
        "sub/deeper/c d é.mov"
    ]
    assert [c.clip_id for c in scan([tmp_path / "in"], glob="sub/*").clips] == [
        "sub/b.wav",
        "sub/deeper/c d é.mov",
    ]


def test_list_file_paths_are_relative_to_the_list(tmp_path):
    _media_tree(tmp_path / "in")
    listing = tmp_path / "in" / "clips.lst"
    listing.write_text("# my clips\na.mp4\n\nsub/b.wav\nmissing.mp4\n")
    catalog = scan([listing])
    assert [c.clip_id for c in catalog.clips] == ["a.mp4", "sub/b.wav"]
    assert [r.clip_id for r in catalog.refusals] == ["missing.mp4"]
    assert "no such file" in catalog.refusals[0].reason


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="no such file or folder"):
        scan([tmp_path / "nowhere"])


def _write_tar(path: Path, files: dict[str, bytes], mode: str = "w") -> None:
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _write_zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


ARCHIVE_FILES = {
    "x/one.mp4": b"one",
    "x/one.txt": b"the transcript",
    "two.wav": b"two",
    "readme.md": b"skip me",
}


@pytest.mark.parametrize("name", ["clips.tar", "clips.tar.gz", "clips.zip"])
def test_archive_members_are_streamed_with_sidecars(tmp_path, name):
    archive = tmp_path / name
    if name.endswith(".zip"):
        _write_zip(archive, ARCHIVE_FILES)
    else:
        _write_tar(archive, ARCHIVE_FILES, "w:gz" if name.endswith(".gz") else "w")
    catalog = scan([archive])
    assert [c.clip_id for c in catalog.clips] == [f"{name}/x/one.mp4", f"{name}/two.wav"]
    spool = tmp_path / "spool"
    seen = {}
    for clip in open_clips(catalog, spool):
        assert isinstance(clip, OpenedClip)
        # the member exists on disk only while it is being processed
        assert clip.path.read_bytes() == ARCHIVE_FILES[clip.clip_id.split("/", 1)[1]]
        seen[clip.clip_id] = [p.read_bytes() for p in clip.sidecars]
        clip.release()
        assert not clip.path.exists()
    assert seen == {f"{name}/x/one.mp4": [b"the transcript"], f"{name}/two.wav": []}
    assert list(spool.iterdir()) == []


def test_tar_sidecar_before_its_clip_still_travels(tmp_path):
    archive = tmp_path / "early.tar"
    _write_tar(archive, {"c.txt": b"words first", "b.mp4": b"other", "c.mp4": b"clip"})
    clips = _opened(scan([archive]), tmp_path / "spool")
    assert [p.read_bytes() for p in clips["early.tar/c.mp4"].sidecars] == [b"words first"]


def _hostile_tar(path: Path) -> None:
    with tarfile.open(path, "w") as archive:

        def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)

        add(tarfile.TarInfo("good.mp4"), b"fine")
        add(tarfile.TarInfo("/tmp/abs-evil.mp4"), b"evil")
        add(tarfile.TarInfo("../../dotdot-evil.mp4"), b"evil")
        link = tarfile.TarInfo("link.mp4")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        add(link)
        hard = tarfile.TarInfo("hard.mp4")
        hard.type, hard.linkname = tarfile.LNKTYPE, "good.mp4"
        add(hard)
        device = tarfile.TarInfo("dev.mp4")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
        add(device)


def test_hostile_tar_members_are_refused_and_never_written(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "hostile.tar"
    _hostile_tar(archive)
    catalog = scan([archive])
    assert [c.clip_id for c in catalog.clips] == ["hostile.tar/good.mp4"]
    reasons = {r.clip_id: r.reason for r in catalog.refusals}
    assert "absolute path" in reasons["hostile.tar/tmp/abs-evil.mp4"]
    assert "'..'" in reasons["hostile.tar/../../dotdot-evil.mp4"]
    assert "symbolic link" in reasons["hostile.tar/link.mp4"]
    assert "hard link" in reasons["hostile.tar/hard.mp4"]
    assert "device file" in reasons["hostile.tar/dev.mp4"]
    before = {p for p in tmp_path.rglob("*")}
    spool = work / "out" / "spool"
    clips = _opened(catalog, spool)
    written = {p for p in tmp_path.rglob("*")} - before
    assert all(spool in p.parents or p == spool or p in spool.parents for p in written), written
    assert not Path("/tmp/abs-evil.mp4").exists()
    assert not (tmp_path / "dotdot-evil.mp4").exists() and not (work / "dotdot-evil.mp4").exists()
    assert list(clips) == ["hostile.tar/good.mp4"]


def test_hostile_zip_members_are_refused(tmp_path):
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("good.mp4", b"fine")
        out.writestr(zipfile.ZipInfo("/abs.mp4"), b"evil")
        out.writestr(zipfile.ZipInfo("a/../../up.mp4"), b"evil")
        link = zipfile.ZipInfo("link.mp4")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(link, "/etc/passwd")
    catalog = scan([archive])
    assert [c.clip_id for c in catalog.clips] == ["hostile.zip/good.mp4"]
    assert sorted(r.reason.split(";")[0] for r in catalog.refusals) == [
        "archive member has an absolute path",
        "archive member is a symbolic link",
        "archive member path has a '..' component",
    ]


def test_truncated_archive_is_reported_per_clip(tmp_path):
    archive = tmp_path / "cut.tar"
    _write_tar(archive, {f"c{i}.mp4": os.urandom(3000) for i in range(4)})
    catalog = scan([archive])
    archive.write_bytes(archive.read_bytes()[:5000])  # cut after the scan, before the read
    results = list(open_clips(catalog, tmp_path / "spool"))
    opened = [r for r in results if isinstance(r, OpenedClip)]
    refused = [r for r in results if isinstance(r, Refusal)]
    assert len(opened) + len(refused) == 4 and refused
    assert all("archive ended" in r.reason for r in refused)


def test_shards_partition_the_clips_and_are_stable(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(60):
        (root / f"clip{i:03d}.mp4").write_bytes(b"x")
    every = {c.clip_id for c in scan([root]).clips}
    parts = [{c.clip_id for c in scan([root], shard=Shard(i, 3)).clips} for i in range(3)]
    assert set().union(*parts) == every
    assert sum(len(p) for p in parts) == len(every)
    assert all(len(p) > 5 for p in parts)
    # the same split in another interpreter with another hash seed (another machine)
    code = (
        "import json, sys; from pipeline.sources import Shard; "
        "print(json.dumps([i for i in json.load(sys.stdin) if Shard(1, 3).takes(i)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(sorted(every)),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert set(json.loads(other.stdout)) == parts[1]


@pytest.mark.parametrize("text", ["3", "3/3", "-1/2", "a/b"])
def test_bad_shard_is_a_clear_error(text):
    with pytest.raises(PipelineError, match="--shard"):
        Shard.parse(text)
