"""extract --segments: a recording planned once, one cache entry per segment, resume, shards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from long_recording import make_long_recording

from cli import main
from featurizers.base import FeatureSequence, FeaturizerSpec
from featurizers.span import Span
from pipeline.extract import SEGMENT_BATCH_SECONDS, run_extract
from pipeline.sources import Shard
from pipeline.store import DONE, FeatureStore

SAMPLES = Path(__file__).parents[1] / "pipeline" / "sample_data" / "clips"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two recordings of ~100 s of sample utterances (one with a .srt) and a short clip."""
    folder = tmp_path_factory.mktemp("videos")
    clips = sorted(SAMPLES.glob("*.mp4"))
    make_long_recording(
        folder / "long a.mp4", clips[::3], gap_s=1.5, with_transcript=True, length_s=100
    )
    make_long_recording(folder / "long b.mp4", clips[1::3], gap_s=1.0, size=None, length_s=100)
    shutil.copy(clips[0], folder / "short.mp4")
    return folder


def _segments(store: FeatureStore, recording: str) -> list[str]:
    return sorted(
        i for i, r in store.manifest().items() if (r.segment or {}).get("recording") == recording
    )


def test_fixed_windows_one_entry_per_segment_plan_cached_rerun_from_cache(videos, tmp_path):
    out = tmp_path / "features"
    first = run_extract([videos], out, modalities="audio", workers=2, segments="fixed:8")
    assert first.segmented and first.recordings == 3 and not first.failed
    store = FeatureStore(out)
    manifest = store.manifest()
    assert "short.mp4" in manifest and manifest["short.mp4"].segment is None  # shorter: whole
    for recording in ("long a.mp4", "long b.mp4"):
        ids = _segments(store, recording)
        assert len(ids) >= 10  # about 100 s in windows of 8 s
        spans = sorted((manifest[i].segment["start"], manifest[i].segment["end"]) for i in ids)
        assert spans[0][0] == 0.0 and all(
            a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)
        )
        for start, end in spans:
            unit = Span(start, end, "fixed", recording=recording).id
            assert unit in manifest and manifest[unit].segment["source"] == "fixed"
            assert manifest[unit].segment["segmentation"]["how"] == "fixed"
            rows = len(store.load(unit, "audio").features)
            assert abs(rows - (end - start) * 100) <= 2
    assert first.total == len(manifest) == first.extracted
    entries = len(list((out / "entries").rglob("*.npz")))
    assert entries == len(manifest)
    plans = list((out / "plans").rglob("*.json"))
    assert len(plans) == 3
    plan = json.loads(plans[0].read_text())
    assert plan["segmentation"]["how"] == "fixed" and plan["segments"]
    before = {p: p.stat().st_mtime_ns for p in plans}
    again = run_extract([videos], out, modalities="audio", workers=2, segments="fixed:8")
    assert again.cached == first.total and again.extracted == 0
    assert {p: p.stat().st_mtime_ns for p in plans} == before  # not planned again
    assert len(list((out / "entries").rglob("*.npz"))) == entries


def test_transcript_segments_through_the_cli_and_bad_options(videos, tmp_path):
    out = tmp_path / "features"
    result = CliRunner().invoke(
        main,
        ["extract", str(videos / "long a.mp4"), "--out", str(out), "--modalities", "audio",
         "--segments", "transcript", "--min-segment", "2", "--workers", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    store = FeatureStore(out)
    ids = _segments(store, "long a.mp4")
    assert f"{len(ids)} segments of 1 recording: {len(ids)} extracted" in result.output
    assert all(store.manifest()[i].segment["source"] == "transcript" for i in ids)
    assert all(store.manifest()[i].segment["text"] for i in ids)
    assert len(ids) >= 10  # about one segment per utterance of the transcript
    bad = CliRunner().invoke(
        main, ["extract", str(videos), "--out", str(out), "--segments", "fixed:-2"]
    )
    assert bad.exit_code == 2 and "--segments fixed:-2" in bad.output and "positive" in bad.output
    limits = CliRunner().invoke(
        main, ["extract", str(videos), "--out", str(out), "--min-segment", "4"]
    )
    assert limits.exit_code == 2 and "--segments" in limits.output


class PidLoudness:
    """A cheap real featurizer (RMS per 100 ms) that also writes the worker's pid per row, so
    the test sees which process extracted each segment."""

    def __init__(self) -> None:
        self.spec = FeaturizerSpec("pid-loudness", "1", "audio", ("rms", "pid"), 10.0)

    def extract(self, clip) -> FeatureSequence:
        audio = clip.audio()
        frames = audio[: len(audio) // 1600 * 1600].reshape(-1, 1600)
        starts = np.arange(len(frames)) / 10.0
        rms = np.sqrt((frames**2).mean(axis=1))
        return FeatureSequence(
            np.stack([rms, np.full(len(frames), os.getpid())], axis=1),
            np.stack([starts, starts + 0.1], axis=1),
            self.spec,
        )


def pid_loudness() -> dict[str, PidLoudness]:
    return {"audio": PidLoudness()}


def test_segments_are_the_unit_of_work(videos, tmp_path):
    """An hour-long file must not pin one worker: its segments go out in batches of about
    SEGMENT_BATCH_SECONDS, each a task of its own (a fresh process per task here)."""
    from pipeline.engine import LocalEngine

    out = tmp_path / "features"
    summary = run_extract(
        [videos / "long b.mp4"],
        out,
        modalities="audio",
        engine=LocalEngine(workers=2, max_tasks_per_child=1),
        segments="fixed:4",
        factory=pid_loudness,
    )
    assert summary.total >= 25 and not summary.failed
    store = FeatureStore(out)
    length = max(r.segment["end"] for r in store.manifest().values())
    pids = {}
    for unit in store.clip_ids():
        features = store.load(unit, "audio").features
        assert len(set(features[:, 1])) == 1  # one segment, one process
        pids.setdefault(int(features[0, 1]), []).append(store.manifest()[unit].segment["start"])
    assert len(pids) >= length // SEGMENT_BATCH_SECONDS  # one task per batch of segments
    for starts in pids.values():  # a task holds consecutive segments, about a batch long
        assert max(starts) - min(starts) <= SEGMENT_BATCH_SECONDS


def test_sigkill_mid_recording_then_resume_keeps_done_segments(videos, tmp_path):
    out = tmp_path / "features"
    command = [sys.executable, "-m", "cli", "extract", str(videos / "long a.mp4"), "--out"]
    command += [str(out), "--modalities", "audio,visual", "--workers", "1"]
    command += ["--segments", "fixed:5", "--preset", "fast"]
    child = subprocess.Popen(
        command, cwd=Path(__file__).parents[1], start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and child.poll() is None:
        if len(list((out / "entries").rglob("*.npz"))) >= 10:
            break
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)  # the CLI and its worker, mid-recording
    child.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "entries").rglob("*.npz")}
    assert len(list((out / "plans").rglob("*.json"))) == 1  # planned before the kill
    resumed = run_extract(
        [videos / "long a.mp4"], out, modalities="audio,visual", workers=2,
        segments="fixed:5", preset="fast",
    )  # fmt: skip
    assert not resumed.failed and resumed.extracted < resumed.total
    assert resumed.cached >= len(kept) // 2 - 1  # segments with both modalities were kept
    after = {p.name: p.stat().st_mtime_ns for p in (out / "entries").rglob("*.npz")}
    assert all(after[name] == mtime for name, mtime in kept.items())  # nothing recomputed
    clean = run_extract(
        [videos / "long a.mp4"], tmp_path / "clean", modalities="audio,visual", workers=2,
        segments="fixed:5", preset="fast",
    )  # fmt: skip
    a, b = FeatureStore(out), FeatureStore(tmp_path / "clean")
    assert a.clip_ids() == b.clip_ids() and len(a.clip_ids()) == clean.total
    for unit in a.clip_ids():
        for modality in ("audio", "visual"):
            np.testing.assert_array_equal(
                a.load(unit, modality).features, b.load(unit, modality).features
            )


def test_shards_own_whole_recordings_and_cover_every_segment(videos, tmp_path):
    every = run_extract([videos], tmp_path / "all", modalities="audio", segments="fixed:10")
    parts = []
    for index in range(2):
        shard = f"{index}/2"
        run_extract(
            [videos],
            tmp_path / f"s{index}",
            modalities="audio",
            segments="fixed:10",
            shard=shard,
        )
        store = FeatureStore(tmp_path / f"s{index}")
        recordings = {(r.segment or {}).get("recording", c) for c, r in store.manifest().items()}
        assert all(Shard(index, 2).takes(r) for r in recordings)
        parts.append(set(store.clip_ids()))
    assert not parts[0] & parts[1]
    assert parts[0] | parts[1] == set(FeatureStore(tmp_path / "all").clip_ids())
    assert len(parts[0] | parts[1]) == every.total


def test_a_bad_recording_is_recorded_and_the_rest_goes_on(videos, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(videos, folder)
    (folder / "broken.mp4").write_bytes((videos / "long a.mp4").read_bytes()[:5000])
    (folder / "bad cues.mp4").write_bytes((videos / "long b.mp4").read_bytes())
    (folder / "bad cues.srt").write_text(
        "1\n00:00:00,000 --> 00:00:02,000\nhello\n\n2\n00:00:01,000 --> 00:00:09,000\nthere\n"
    )
    summary = run_extract([folder], tmp_path / "out", modalities="audio", segments="transcript")
    failed = dict(summary.failed)
    assert "broken.mp4" in failed and "\n" not in failed["broken.mp4"]
    assert "bad cues" in failed["bad cues.mp4"] and "\n" not in failed["bad cues.mp4"]
    store = FeatureStore(tmp_path / "out")
    assert _segments(store, "long a.mp4") and summary.usable >= len(_segments(store, "long a.mp4"))
    assert all(r.status == DONE for c, r in store.manifest().items() if c.startswith("long a.mp4@"))


def test_dask_spreads_the_segments_into_the_same_store(videos, tmp_path):
    distributed = pytest.importorskip("distributed")
    from pipeline.engine import DaskEngine

    recording = [videos / "long b.mp4"]
    local = run_extract(recording, tmp_path / "local", modalities="audio", segments="fixed:6")
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        summary = run_extract(
            recording,
            tmp_path / "dask",
            modalities="audio",
            engine=DaskEngine(cluster.scheduler_address),
            segments="fixed:6",
        )
    assert summary.total == summary.extracted == local.extracted >= 15 and not summary.failed
    a, b = FeatureStore(tmp_path / "local"), FeatureStore(tmp_path / "dask")
    assert a.clip_ids() == b.clip_ids()
    for unit in a.clip_ids():
        np.testing.assert_array_equal(
            a.load(unit, "audio").features, b.load(unit, "audio").features
        )


def test_a_tar_of_recordings_streams_segment_by_segment(videos, tmp_path):
    archive = tmp_path / "recordings.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(videos / "long a.srt", arcname="day1/long a.srt")  # the sidecar first
        tar.add(videos / "long a.mp4", arcname="day1/long a.mp4")
        tar.add(videos / "short.mp4", arcname="day1/short.mp4")
    out = tmp_path / "features"
    summary = run_extract([archive], out, modalities="audio", segments="transcript")
    assert summary.recordings == 2 and not summary.failed
    store = FeatureStore(out)
    ids = _segments(store, "recordings.tar.gz/day1/long a.mp4")
    assert len(ids) >= 10 and summary.total == len(ids) + 1
    assert all(store.manifest()[i].segment["source"] == "transcript" for i in ids)
    assert "recordings.tar.gz/day1/short.mp4" in store.clip_ids()
    assert not any((out / ".spool").rglob("*.mp4"))
