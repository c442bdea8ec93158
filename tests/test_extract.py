"""carat-cli extract: bad inputs recorded while the batch goes on, cache, SIGKILL and resume."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.extract import run_extract
from pipeline.sources import Shard
from pipeline.store import DONE, FeatureStore

FIXTURES = Path(__file__).parent / "fixtures"
CLIP = FIXTURES / "talking_head.mp4"


def _write_media(
    path: Path, frames: int = 0, audio: np.ndarray | None = None, size: tuple[int, int] = (64, 48)
) -> Path:
    """A small mp4/wav written with PyAV: grey frames (nobody in view) and/or 16 kHz samples."""
    width, height = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30) if frames else None
        if video is not None:
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
        sound = out.add_stream(codec, rate=16000, layout="mono") if audio is not None else None
        for _ in range(frames):
            picture = np.full((height, width, 3), 128, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        if video is not None:
            out.mux(video.encode(None))
        if sound is not None:
            fmt = "s16" if codec == "pcm_s16le" else "fltp"
            samples = (audio * 32767).astype(np.int16) if fmt == "s16" else audio.astype(np.float32)
            for start in range(0, len(samples), 1024):
                frame = av.AudioFrame.from_ndarray(
                    samples[None, start : start + 1024], format=fmt, layout="mono"
                )
                frame.sample_rate = 16000
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def _bad_inputs(folder: Path) -> None:
    folder.mkdir()
    tone = 0.3 * np.sin(2 * np.pi * 180 * np.arange(16000) / 16000)
    (folder / "zero bytes.mp4").write_bytes(b"")
    (folder / "truncated.mp4").write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 3])
    (folder / "notes.mp4").write_text("this is a text file, not a video\n")
    _write_media(folder / "no audio.mp4", frames=15)
    _write_media(folder / "audio only.wav", audio=tone)
    _write_media(folder / "silence.wav", audio=np.zeros(16000))
    _write_media(folder / "one frame.mp4", frames=1)
    _write_media(folder / "4K frame.mp4", frames=1, size=(3840, 2160))
    shutil.copy(FIXTURES / "frowning_head.mp4", folder / "talking head é ü.mp4")


# modality -> whether it succeeds; a failure must be one line naming the file. A missing stream
# is not a failure: that modality gets zero rows (a warning) and the clip is usable.
EXPECTED = {
    "zero bytes.mp4": {"audio": False, "visual": False},
    "truncated.mp4": {"audio": False, "visual": False},
    "notes.mp4": {"audio": False, "visual": False},
    "no audio.mp4": {"audio": True, "visual": True},
    "audio only.wav": {"audio": True, "visual": True},
    "silence.wav": {"audio": True, "visual": True},
    "one frame.mp4": {"audio": True, "visual": True},
    "4K frame.mp4": {"audio": True, "visual": True},
    "talking head é ü.mp4": {"audio": True, "visual": True},
}


def test_bad_inputs_are_recorded_and_the_batch_goes_on(tmp_path):
    _bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    summary = run_extract(
        [tmp_path / "in"], out, preset="fast", modalities="audio,visual", workers=1
    )
    assert summary.total == len(EXPECTED)
    usable = sum(all(e.values()) for e in EXPECTED.values())
    assert summary.extracted == usable
    assert summary.partial == sum(
        any(e.values()) and not all(e.values()) for e in EXPECTED.values()
    )
    failed = dict(summary.failed)
    assert sorted(failed) == sorted(n for n, e in EXPECTED.items() if not all(e.values()))
    store = FeatureStore(out)
    manifest = store.manifest()
    for name, expected in EXPECTED.items():
        for modality, ok in expected.items():
            result = manifest[name].results[modality]
            assert (result["status"] == DONE) == ok, (name, modality, result)
            if not ok:
                assert "\n" not in result["error"] and name in result["error"], result["error"]
        assert (store.load(name, "audio") is not None) == expected["audio"]
    assert len(store.load("one frame.mp4", "visual").features) == 1
    assert len(store.load("no audio.mp4", "audio").features) == 0  # no stream: no rows
    assert len(store.load("audio only.wav", "visual").features) == 0
    nobody = store.load("no audio.mp4", "visual")  # grey frames: nobody in view, rows kept
    assert len(nobody.features) == 5  # 15 frames at 30 fps, sampled at 10 fps
    assert (nobody.features[:, nobody.spec.dim_names.index("face_present")] == 0).all()
    face = store.load("talking head é ü.mp4", "visual")
    assert face.features[:, face.spec.dim_names.index("face_present")].mean() > 0.9
    silence = store.load("silence.wav", "audio")
    assert np.isfinite(silence.features).all() and len(silence.features) >= 90
    with open(summary.errors_file, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    failures = sum(not ok for e in EXPECTED.values() for ok in e.values())
    assert len(rows) == failures and {r["clip_id"] for r in rows} == set(failed)
    # a re-run takes every good result from the store and only retries what failed
    again = run_extract([tmp_path / "in"], out, preset="fast", modalities="audio,visual")
    assert again.extracted == 0 and again.cached == usable
    assert dict(again.failed).keys() == failed.keys()


def test_archive_with_a_hostile_member_through_the_cli(tmp_path):
    archive = tmp_path / "batch.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(CLIP, arcname="clips/a.mp4")
        tar.add(FIXTURES / "frowning_head.mp4", arcname="clips/b.mp4")
        evil = tarfile.TarInfo("../../escaped.mp4")
        evil.size = 4
        tar.addfile(evil, fileobj=__import__("io").BytesIO(b"evil"))
    out = tmp_path / "deep" / "out"
    result = CliRunner().invoke(
        main,
        ["extract", str(archive), "--out", str(out), "--modalities", "audio", "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "3 clips: 2 extracted, 0 from cache, 1 failed" in result.output
    assert "failed batch.tar.gz/../../escaped.mp4: archive member path has a '..'" in result.output
    assert (
        not (tmp_path / "escaped.mp4").exists() and not (tmp_path / "deep" / "escaped.mp4").exists()
    )
    assert FeatureStore(out).clip_ids() == ["batch.tar.gz/clips/a.mp4", "batch.tar.gz/clips/b.mp4"]
    assert not any((out / ".spool").rglob("*.mp4"))
    strict = CliRunner().invoke(
        main,
        ["extract", str(archive), "--out", str(out), "--modalities", "audio", "--strict"],
    )
    assert strict.exit_code == 1 and "2 from cache, 1 failed" in strict.output


def test_exit_code_is_nonzero_when_nothing_could_be_extracted(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.mp4").write_text("not a video")
    result = CliRunner().invoke(
        main,
        [
            "extract",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--modalities",
            "audio",
        ],
    )
    assert result.exit_code == 1
    assert "0 extracted" in result.output and "bad.mp4" in result.output
    with open(tmp_path / "out" / "errors.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["clip_id"], r["modality"]) for r in rows] == [("bad.mp4", "audio")]
    assert "not a readable video or audio file" in rows[0]["error"]
    bad = CliRunner().invoke(
        main,
        ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--modalities", "smell"],
    )
    assert bad.exit_code == 2 and "unknown modality smell" in bad.output
    preset = CliRunner().invoke(
        main, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--preset", "nope"]
    )
    assert preset.exit_code == 2 and "unknown preset 'nope'" in preset.output


def test_an_empty_shard_has_nothing_to_do_and_exits_0(tmp_path):
    (tmp_path / "in").mkdir()
    shutil.copy(CLIP, tmp_path / "in" / "a.mp4")
    empty = f"{int(Shard(0, 2).takes('a.mp4'))}/2"  # the shard that does not take a.mp4
    result = CliRunner().invoke(
        main,
        ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--shard", empty],
    )
    assert result.exit_code == 0, result.output
    assert f"nothing to do: shard {empty} holds none of the clips" in result.output
    assert FeatureStore(tmp_path / "out").clip_ids() == []


def _entries(root: Path) -> dict[str, tuple[int, int]]:
    """Entry file -> (inode, mtime): a recomputed entry gets a new file."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("entries/*/*.npz")}


def test_sigkill_mid_extraction_then_resume_equals_an_uninterrupted_run(tmp_path):
    clips = tmp_path / "in"
    clips.mkdir()
    count = 8
    for i in range(count):  # distinct bytes: each copy is its own entry
        (clips / f"copy {i}.mp4").write_bytes(CLIP.read_bytes() + bytes(i))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cli", "extract", str(clips), "--out", str(out)]
    command += ["--modalities", "audio", "--workers", "2"]
    child = subprocess.Popen(
        command, cwd=Path(__file__).parents[1], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        done = [r for r in FeatureStore(out).manifest().values() if r.status == DONE]
        if len(done) >= 3:
            break
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)  # the CLI and its workers, mid-run
    child.wait()
    before = FeatureStore(out).manifest()
    finished = {c for c, r in before.items() if r.status == DONE}
    assert 3 <= len(finished) < count, "the kill should land in the middle of the run"
    kept = _entries(out)
    resumed = run_extract([clips], out, modalities="audio", workers=1)
    assert resumed.cached >= len(finished) and resumed.extracted == count - resumed.cached
    assert not resumed.failed
    after = _entries(out)
    for clip_id in finished:  # not recomputed: the very same files
        entry = before[clip_id].results["audio"]["entry"] + ".npz"
        assert after[entry] == kept[entry]
    reference = run_extract([clips], tmp_path / "clean", modalities="audio", workers=1)
    assert reference.extracted == count
    resumed_store, clean_store = FeatureStore(out), FeatureStore(tmp_path / "clean")
    assert (
        resumed_store.clip_ids()
        == clean_store.clip_ids()
        == sorted(f"copy {i}.mp4" for i in range(count))
    )
    for clip_id in resumed_store.clip_ids():
        a, b = resumed_store.load(clip_id, "audio"), clean_store.load(clip_id, "audio")
        assert a is not None, f"{clip_id} is corrupt"
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.intervals, b.intervals)


def test_full_default_preset_on_one_fixture(tmp_path):
    pytest.importorskip("mediapipe")
    clip_dir = FIXTURES / "with_transcript"
    out = tmp_path / "out"
    summary = run_extract(
        [clip_dir / "frowning_head.mp4"],
        out,
        preset="default",
        workers=1,
        export_csd=tmp_path / "csd",
    )
    assert summary.extracted == 1 and not summary.failed, summary.failed
    store = FeatureStore(out)
    text = store.load("frowning_head.mp4", "text")
    sentence = (clip_dir / "frowning_head.txt").read_text().split()
    assert text.words == sentence and text.features.shape == (len(sentence), 51)
    visual_rows = store.load("frowning_head.mp4", "visual").features.shape[0]
    assert abs(visual_rows - 3.05 * 15) <= 2  # 3.05 s at the default 15 frames/s
    assert store.load("frowning_head.mp4", "audio").spec.rate == 100.0
    assert sorted(p.name for p in summary.exported) == ["audio.csd", "text.csd", "visual.csd"]
    assert set(store.specs()) == {"text", "visual", "audio"}
