"""Engines: a dying worker costs only its own item; Dask runs the same job into the same store."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from featurizers.base import FeatureSequence, FeaturizerSpec
from pipeline.engine import DaskEngine, LocalEngine, TaskFailure, make_engine
from pipeline.errors import PipelineError
from pipeline.extract import run_extract
from pipeline.store import FeatureStore

FIXTURE = Path(__file__).parent / "fixtures" / "talking_head.mp4"


def work(item: tuple[str, str, str]) -> str:
    """The per-item function (module level: workers import it by name)."""
    name, action, scratch = item
    if action == "exit":
        os._exit(3)
    if action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action in ("flaky", "broken"):
        marker = Path(scratch) / f"{name}.attempts"
        attempts = int(marker.read_text()) + 1 if marker.exists() else 1
        marker.write_text(str(attempts))
        if action == "broken" or attempts == 1:
            raise OSError(f"{name}: transient trouble, attempt {attempts}")
    return name.upper()


@pytest.mark.parametrize("action", ["exit", "sigkill"])
def test_a_dying_worker_fails_only_its_own_item(tmp_path, action):
    items = [(f"clip{i}", "ok", str(tmp_path)) for i in range(10)]
    items[6] = ("killer", action, str(tmp_path))
    with LocalEngine(workers=2, retries=2) as engine:
        results = dict(engine.map_unordered(work, items))
        assert engine.rebuilds >= 1
    assert isinstance(results.pop(items[6]), TaskFailure)
    assert results == {item: item[0].upper() for item in items if item[1] == "ok"}


def test_transient_errors_are_retried_a_bounded_number_of_times(tmp_path):
    items = [
        ("a", "ok", str(tmp_path)),
        ("b", "flaky", str(tmp_path)),
        ("c", "broken", str(tmp_path)),
    ]
    with LocalEngine(workers=2, retries=2) as engine:
        results = dict(engine.map_unordered(work, items))
    assert results[items[0]] == "A"
    assert results[items[1]] == "B"
    assert (tmp_path / "b.attempts").read_text() == "2"
    failure = results[items[2]]
    assert isinstance(failure, TaskFailure) and "transient trouble" in failure.reason
    assert (tmp_path / "c.attempts").read_text() == "3"  # first try + 2 retries


def test_a_source_may_wait_for_results_in_flight(tmp_path):
    """Items that depend on a result (segments of a planned recording) come after WAIT."""
    from pipeline.engine import WAIT

    results: list[str] = []

    def source():
        yield ("plan", "ok", str(tmp_path))
        while not results:
            yield WAIT
        for i in range(3):
            yield (f"{results[0]}-{i}", "ok", str(tmp_path))

    with LocalEngine(workers=2) as engine:
        for _, result in engine.map_unordered(work, source()):
            results.append(result)
    assert results[0] == "PLAN" and sorted(results[1:]) == [f"PLAN-{i}".upper() for i in range(3)]

    def stuck():
        yield WAIT

    with LocalEngine(workers=1) as engine, pytest.raises(RuntimeError, match="none is in flight"):
        list(engine.map_unordered(work, stuck()))


def test_engine_choice_errors_are_clear():
    with pytest.raises(PipelineError, match="--address"):
        make_engine("dask")
    with pytest.raises(PipelineError, match="unknown engine"):
        make_engine("ray")


class LoudnessFeaturizer:
    """A cheap real featurizer (RMS per 100 ms of decoded audio) that can be told to crash."""

    def __init__(self, crash_on: str | None = None) -> None:
        self.crash_on = crash_on
        self.spec = FeaturizerSpec("loudness", "1", "audio", ("rms",), 10.0)

    def extract(self, clip) -> FeatureSequence:
        if self.crash_on is not None and clip.path.name == self.crash_on:
            os.kill(os.getpid(), signal.SIGKILL)
        audio = clip.audio()
        frames = audio[: len(audio) // 1600 * 1600].reshape(-1, 1600)
        starts = np.arange(len(frames)) / 10.0
        return FeatureSequence(
            np.sqrt((frames**2).mean(axis=1, keepdims=True)),
            np.stack([starts, starts + 0.1], axis=1),
            self.spec,
        )


def loudness(crash_on: str | None = None) -> dict[str, LoudnessFeaturizer]:
    return {"audio": LoudnessFeaturizer(crash_on)}


def _clips(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        # distinct bytes (a trailing pad the demuxer ignores) so each clip is its own entry
        (folder / f"clip{i}.mp4").write_bytes(FIXTURE.read_bytes() + bytes(i))
    return folder


def _store_contents(root: Path) -> dict[str, np.ndarray]:
    store = FeatureStore(root)
    return {c: store.load(c, "audio").features for c in store.clip_ids()}


def test_extract_survives_a_worker_killed_by_one_clip(tmp_path):
    import functools

    clips = _clips(tmp_path / "in", 6)
    factory = functools.partial(loudness, "clip3.mp4")
    summary = run_extract([clips], tmp_path / "out", modalities="audio", workers=2, factory=factory)
    assert summary.extracted == 5
    assert [clip_id for clip_id, _ in summary.failed] == ["clip3.mp4"]
    assert "worker process died" in summary.failed[0][1]
    assert sorted(_store_contents(tmp_path / "out")) == [f"clip{i}.mp4" for i in range(6) if i != 3]


def test_dask_cluster_runs_the_same_job_into_the_same_store(tmp_path):
    distributed = pytest.importorskip("distributed")
    clips = _clips(tmp_path / "in", 4)
    local = run_extract(
        [clips], tmp_path / "local", modalities="audio", workers=2, factory=loudness
    )
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        summary = run_extract(
            [clips],
            tmp_path / "dask",
            modalities="audio",
            engine=DaskEngine(cluster.scheduler_address),
            factory=loudness,
        )
    assert summary.extracted == local.extracted == 4 and not summary.failed
    local_store, dask_store = (
        _store_contents(tmp_path / "local"),
        _store_contents(tmp_path / "dask"),
    )
    assert sorted(local_store) == sorted(dask_store) == [f"clip{i}.mp4" for i in range(4)]
    for clip_id, features in local_store.items():
        np.testing.assert_array_equal(features, dask_store[clip_id])
    entries = sorted(p.name for p in (tmp_path / "local" / "entries").rglob("*.npz"))
    assert entries == sorted(p.name for p in (tmp_path / "dask" / "entries").rglob("*.npz"))
    shutil.rmtree(tmp_path / "in")
