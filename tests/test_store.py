"""Feature store: atomic entries, verified reads, a manifest robust to kills, merging, .csd."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from featurizers.base import FeatureSequence, FeaturizerSpec
from featurizers.span import Span
from pipeline.errors import PipelineError
from pipeline.store import DONE, ClipRecord, FeatureStore, Plan

SPEC = FeaturizerSpec("toy", "1", "audio", ("energy", "pitch"), 100.0, {"hop": 0.01})
WORDS_SPEC = FeaturizerSpec("toywords", "1", "text", ("v0", "v1", "v2"), None)


def _sequence(rows: int, seed: int = 0) -> FeatureSequence:
    rng = np.random.default_rng(seed)
    starts = np.arange(rows) / 100.0
    return FeatureSequence(
        rng.normal(size=(rows, 2)), np.stack([starts, starts + 0.01], axis=1), SPEC
    )


def _word_sequence() -> FeatureSequence:
    return FeatureSequence(
        np.eye(3, dtype=np.float32),
        [[0.0, 0.4], [0.4, 0.9], [1.0, 1.2]],
        WORDS_SPEC,
        ["a", "bé", "c"],
    )


def _record(store: FeatureStore, clip_id: str, content_hash: str, **sequences) -> ClipRecord:
    results = {
        m: {"status": DONE, "entry": store.write(content_hash, s, {"clip_id": clip_id})}
        for m, s in sequences.items()
    }
    return ClipRecord(clip_id, content_hash, f"/data/{clip_id}", DONE, results=results)


def test_write_read_round_trip_and_load_by_clip_id(tmp_path):
    store = FeatureStore(tmp_path)
    seq, words = _sequence(50), _word_sequence()
    with store.open_manifest() as manifest:
        manifest.append(_record(store, "clip one.mp4", "ab" * 32, audio=seq, text=words))
    loaded = store.load("clip one.mp4", "audio")
    np.testing.assert_array_equal(loaded.features, seq.features)
    np.testing.assert_array_equal(loaded.intervals, seq.intervals)
    assert loaded.spec == SPEC
    assert store.load("clip one.mp4", "text").words == ["a", "bé", "c"]
    assert store.load("clip one.mp4", "visual") is None
    assert store.load("other.mp4", "audio") is None
    assert store.clip_ids() == ["clip one.mp4"]
    entry_files = sorted(p.name for p in (tmp_path / "entries" / "ab").iterdir())
    assert entry_files == sorted(
        f"{'ab' * 32}.{key}.{ext}"
        for key in (SPEC.key(), WORDS_SPEC.key())
        for ext in ("npz", "json")
    )


def test_corrupt_or_truncated_entries_are_not_trusted(tmp_path):
    store = FeatureStore(tmp_path)
    entry = store.write("cd" * 32, _sequence(400))
    npz = tmp_path / "entries" / "cd" / f"{entry}.npz"
    assert store.has("cd" * 32, SPEC.key())
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    assert store.read(entry) is None and not store.has("cd" * 32, SPEC.key())
    npz.write_bytes(bytes(data[:100]))
    assert store.read(entry) is None
    npz.unlink()
    assert store.read(entry) is None
    store.write("cd" * 32, _sequence(400))  # recomputing replaces the bad entry
    assert store.has("cd" * 32, SPEC.key())
    (tmp_path / "entries" / "cd" / f"{entry}.json").write_text("{not json")
    assert store.read(entry) is None


_WRITER = """
import sys, numpy as np
from featurizers.base import FeatureSequence, FeaturizerSpec
from pipeline.store import FeatureStore
spec = FeaturizerSpec("toy", "1", "audio", ("energy", "pitch"), 100.0, {"hop": 0.01})
store = FeatureStore(sys.argv[1])
rows = 200_000
for i in range(1000):
    seq = FeatureSequence(np.full((rows, 2), i, np.float32), np.zeros((rows, 2)), spec)
    store.write(f"{i:064x}", seq)
"""


def test_sigkill_during_writes_never_leaves_a_trusted_partial_entry(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)])
    deadline = time.monotonic() + 60
    while len(list(tmp_path.rglob("*.npz"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = FeatureStore(tmp_path)
    names = {p.name.split(".")[0] for p in tmp_path.rglob("*.npz")} | {
        p.name.split(".")[1] for p in tmp_path.rglob(".*.tmp")
    }
    assert len(names) >= 3
    trusted = 0
    for name in names:
        sequence = store.read(f"{name}.{SPEC.key()}")
        if sequence is not None:  # a trusted entry is always whole and right
            trusted += 1
            assert sequence.features.shape == (200_000, 2)
            assert np.all(sequence.features == int(name, 16))
    assert trusted >= 3


def test_torn_last_manifest_line_is_ignored(tmp_path):
    store = FeatureStore(tmp_path)
    with store.open_manifest() as manifest:
        manifest.append(_record(store, "a.mp4", "aa" * 32, audio=_sequence(5)))
        manifest.append(_record(store, "b.mp4", "bb" * 32, audio=_sequence(5)))
    path = next((tmp_path / "manifest").glob("*.jsonl"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"clip_id": "c.mp4", "content_hash": "cc')  # killed mid-line
    assert sorted(store.manifest()) == ["a.mp4", "b.mp4"]
    # the next run appends to its own file; the torn line stays harmless
    with store.open_manifest() as manifest:
        manifest.append(_record(store, "c.mp4", "cc" * 32, audio=_sequence(5)))
    assert store.clip_ids() == ["a.mp4", "b.mp4", "c.mp4"]


def test_latest_record_wins_and_stores_merge_by_copying(tmp_path):
    first, second = FeatureStore(tmp_path / "m1"), FeatureStore(tmp_path / "m2")
    for store in (first, second):
        store.claim_specs({"audio": SPEC.to_dict()})
    with first.open_manifest() as manifest:
        manifest.append(ClipRecord("a.mp4", "aa" * 32, "/x", "failed", "boom"))
        manifest.append(_record(first, "a.mp4", "aa" * 32, audio=_sequence(5, 1)))
    with second.open_manifest() as manifest:
        manifest.append(_record(second, "b.mp4", "bb" * 32, audio=_sequence(5, 2)))
    merged = tmp_path / "merged"
    for store in (first, second):
        shutil.copytree(store.root, merged, dirs_exist_ok=True)
    store = FeatureStore(merged)
    assert store.clip_ids() == ["a.mp4", "b.mp4"]
    np.testing.assert_array_equal(store.load("b.mp4", "audio").features, _sequence(5, 2).features)
    assert store.specs() == {"audio": SPEC.to_dict()}


def test_a_store_refuses_a_second_kind_of_features_for_a_modality(tmp_path):
    store = FeatureStore(tmp_path)
    store.claim_specs({"audio": SPEC.to_dict()})
    store.claim_specs({"audio": SPEC.to_dict(), "text": WORDS_SPEC.to_dict()})
    other = FeaturizerSpec("toy", "2", "audio", ("energy", "pitch"), 100.0)
    with pytest.raises(PipelineError, match="another --out folder"):
        store.claim_specs({"audio": other.to_dict()})


def test_csd_export_import_round_trip(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.claim_specs({"audio": SPEC.to_dict(), "text": WORDS_SPEC.to_dict()})
    with store.open_manifest() as manifest:
        manifest.append(
            _record(store, "v1", "aa" * 32, audio=_sequence(30, 1), text=_word_sequence())
        )
        manifest.append(_record(store, "v2", "bb" * 32, audio=_sequence(7, 2)))
    written = store.export_csd(tmp_path / "csd")
    assert sorted(p.name for p in written) == ["audio.csd", "text.csd"]
    copy = FeatureStore(tmp_path / "copy")
    assert copy.import_csd(tmp_path / "csd" / "audio.csd", "audio") == 2
    assert copy.import_csd(tmp_path / "csd" / "text.csd", "text") == 1
    assert copy.specs() == store.specs()
    assert copy.clip_ids() == ["v1", "v2"]
    for clip_id in ("v1", "v2"):
        a, b = store.load(clip_id, "audio"), copy.load(clip_id, "audio")
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.intervals, b.intervals)
        assert b.spec == SPEC
    np.testing.assert_array_equal(copy.load("v1", "text").features, np.eye(3))
    assert Path(written[0]).stat().st_size > 0


def test_the_cmu_sdk_reads_our_export(tmp_path):
    from mmsdk import mmdatasdk

    store = FeatureStore(tmp_path / "store")
    store.claim_specs({"audio": SPEC.to_dict()})
    with store.open_manifest() as manifest:
        manifest.append(_record(store, "archive.tar/a.mp4", "aa" * 32, audio=_sequence(30, 1)))
    (path,) = store.export_csd(tmp_path / "csd")
    dataset = mmdatasdk.mmdataset({"audio": str(path)})
    data = dataset.computational_sequences["audio"].data
    (entry,) = data.keys()  # the SDK sees the percent-encoded id (HDF5 reads "/" as a group)
    assert entry == "archive.tar%2Fa.mp4"
    np.testing.assert_array_equal(data[entry]["features"][:], _sequence(30, 1).features)
    np.testing.assert_array_equal(data[entry]["intervals"][:], _sequence(30, 1).intervals)


def test_we_import_what_the_cmu_sdk_writes(tmp_path):
    from mmsdk import mmdatasdk
    from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    intervals = np.array([[0.0, 0.5], [0.5, 1.0], [1.0, 1.5], [1.5, 2.0]])
    sequence = mmdatasdk.computational_sequence("COVAREP")
    sequence.setData({"video1": {"features": features, "intervals": intervals}}, "COVAREP")
    metadata = {key: "test" for key in featuresetMetadataTemplate}
    sequence.setMetadata({**metadata, "root name": "COVAREP"}, "COVAREP")
    sequence.deploy(str(tmp_path / "COVAREP.csd"))
    store = FeatureStore(tmp_path / "store")
    assert store.import_csd(tmp_path / "COVAREP.csd", "audio") == 1
    loaded = store.load("video1", "audio")
    np.testing.assert_array_equal(loaded.features, features)
    np.testing.assert_array_equal(loaded.intervals, intervals)
    assert loaded.spec.name == "COVAREP" and loaded.spec.dim_names == (
        "COVAREP_0",
        "COVAREP_1",
        "COVAREP_2",
    )


def test_segment_records_and_plans_round_trip_and_old_lines_still_load(tmp_path):
    store = FeatureStore(tmp_path)
    span = Span(1.5, 12.25, "fixed", recording="talks/a.mp4")
    unit = span.id
    assert unit == "talks/a.mp4@1.500-12.250"
    key = span.key("ab" * 32)
    assert key != Span(1.5, 12.251, "fixed").key("ab" * 32) and len(key) == 64
    record = _record(store, unit, key, audio=_sequence(10))
    record.segment = {"recording": "talks/a.mp4", "start": 1.5, "end": 12.25, "source": "fixed"}
    with store.open_manifest() as manifest:
        manifest.append(record)
        manifest.append(_record(store, "old.mp4", "cd" * 32, audio=_sequence(5)))
    loaded = FeatureStore(tmp_path).manifest()
    assert loaded[unit].segment == record.segment and loaded["old.mp4"].segment is None
    line = (next((tmp_path / "manifest").glob("*.jsonl")).read_text().splitlines())[1]
    assert "segment" not in line  # whole clips keep the old line layout
    assert len(store.load(unit, "audio").features) == 10
    spec = {"how": "fixed", "window": 10.0}
    assert store.read_plan("ef" * 32, spec) is None
    plan = Plan(30.0, (Span(0.0, 10.0, "fixed"), Span(10.0, 30.0, "fixed", "hello")))
    store.write_plan("ef" * 32, spec, plan)
    assert store.read_plan("ef" * 32, spec) == plan
    assert store.read_plan("ef" * 32, {"how": "fixed", "window": 5.0}) is None
    # a plan file of an older carat: rows of [start, end, source, text]
    old = {"duration": 30.0, "segments": [[0.0, 10.0, "fixed", None]], "segmentation": spec}
    path = next((tmp_path / "plans").rglob("*.json"))
    path.write_text(json.dumps(old))
    assert store.read_plan("ef" * 32, spec) == Plan(30.0, (Span(0.0, 10.0, "fixed"),))
