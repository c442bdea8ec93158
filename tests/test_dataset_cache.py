"""Benchmark files converted once into memory-mapped packed folders, and checked again each
time they are used: unchanged files are reused, changed or damaged ones are converted again."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from carat.data import load_dataset, make_synthetic, read_carat_pt
from carat.data.cache import MANIFEST, SAMPLE_BLOCKS
from carat.data.fingerprint import dataset_fingerprint
from carat.data.types import MODALITIES, SPLITS, RowChunks

CONVERTING = "converting"


@pytest.fixture
def mosei_dir(tmp_path: Path) -> Path:
    # 200 training clips of 60 steps: about 20 MB, far more than the sampled blocks cover
    make_synthetic(tmp_path / "data" / "train_valid_test.pt", 200, 40, 40, seed=5, seq_len=60)
    return tmp_path / "data"


def load(data_dir: Path, cache: Path, caplog) -> tuple[object, bool]:
    """The dataset and whether this load converted the file."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="carat.data.cache"):
        dataset = load_dataset("mosei", data_dir, cache_dir=cache)
    return dataset, any(CONVERTING in r.getMessage() for r in caplog.records)


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_first_use_converts_and_later_uses_map_the_same_data(mosei_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    first, converted = load(mosei_dir, cache, caplog)
    assert converted and len(entries(cache)) == 1
    second, converted = load(mosei_dir, cache, caplog)
    assert not converted
    in_memory = read_carat_pt(mosei_dir / "train_valid_test.pt")
    for split in SPLITS:
        assert second.splits[split].ids == in_memory.splits[split].ids
        np.testing.assert_array_equal(second.splits[split].labels, in_memory.splits[split].labels)
        for m in MODALITIES:
            mapped = second.splits[split].features[m]
            assert isinstance(mapped, RowChunks)  # nothing loaded until rows are asked for
            np.testing.assert_array_equal(mapped, in_memory.splits[split].features[m])
            np.testing.assert_array_equal(
                second.splits[split].masks[m], in_memory.splits[split].masks[m]
            )
    # the recorded fingerprint is the one of the data itself, as an in-memory read gives it
    assert second.fingerprint == dataset_fingerprint(in_memory)
    assert second.source == str(mosei_dir / "train_valid_test.pt")  # planted sidecar beside it


def test_a_touched_but_identical_file_is_reused(mosei_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    load(mosei_dir, cache, caplog)
    source = mosei_dir / "train_valid_test.pt"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    _, converted = load(mosei_dir, cache, caplog)
    assert not converted
    manifest = json.loads((entries(cache)[0] / MANIFEST).read_text())
    assert manifest["sources"][0]["mtime_ns"] == source.stat().st_mtime_ns  # checked once


def test_a_changed_file_is_converted_again(mosei_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    before, _ = load(mosei_dir, cache, caplog)
    make_synthetic(mosei_dir / "train_valid_test.pt", 200, 40, 40, seed=6, seq_len=60)
    after, converted = load(mosei_dir, cache, caplog)
    assert converted and after.fingerprint != before.fingerprint
    expected = read_carat_pt(mosei_dir / "train_valid_test.pt").splits["test"]
    np.testing.assert_array_equal(
        after.splits["test"].features["audio"], expected.features["audio"]
    )


def test_a_damaged_source_is_detected_by_its_full_hash(mosei_dir, tmp_path, caplog):
    from carat.errors import DataError

    cache = tmp_path / "cache"
    load(mosei_dir, cache, caplog)
    source = mosei_dir / "train_valid_test.pt"
    data = bytearray(source.read_bytes())
    # one byte between two sampled blocks: same size and quick key, another full hash
    gap = len(data) // (SAMPLE_BLOCKS - 1)
    data[3 * gap + gap // 2] ^= 0xFF
    source.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="carat.data.cache"):
        with pytest.raises(DataError, match=r"train_valid_test\.pt: not a readable"):
            load_dataset("mosei", mosei_dir, cache_dir=cache)
    assert "no longer matches" in caplog.text  # the old conversion was not used for it


def test_a_damaged_conversion_is_converted_again(mosei_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    good, _ = load(mosei_dir, cache, caplog)
    shard = next(entries(cache)[0].glob("valid-*.arrow"))
    shard.write_bytes(shard.read_bytes()[:100])  # cut short
    again, converted = load(mosei_dir, cache, caplog)
    assert converted and "damaged conversion" in caplog.text
    np.testing.assert_array_equal(again.splits["valid"].labels, good.splits["valid"].labels)


def test_a_half_written_conversion_is_never_used(mosei_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    _, _ = load(mosei_dir, cache, caplog)
    entry = entries(cache)[0]
    (entry / MANIFEST).unlink()  # what an interrupted rename-free writer would leave
    _, converted = load(mosei_dir, cache, caplog)
    assert converted and (entry / MANIFEST).is_file()
    leftover = cache / f".{entry.name}.tmp-deadbeef"  # a conversion killed midway
    leftover.mkdir()
    _, converted = load(mosei_dir, cache, caplog)
    assert not converted and entries(cache) == [entry]


def test_unreadable_source_is_one_line_and_keeps_the_cache(mosei_dir, tmp_path, caplog):
    from carat.errors import DataError

    cache = tmp_path / "cache"
    load(mosei_dir, cache, caplog)
    (mosei_dir / "train_valid_test.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(DataError, match=r"train_valid_test\.pt: not a readable"):
        load_dataset("mosei", mosei_dir, cache_dir=cache)
    assert len(entries(cache)) == 1  # the earlier conversion of the old file is still there


def test_a_config_mistake_is_one_line_before_any_conversion(mosei_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("CARAT_DATASET_CACHE", str(cache))
    args = ["train", "--dataset", "mosei", "--data-dir", str(mosei_dir), "--out", "run"]
    result = CliRunner().invoke(main, [*args, "--set", "train.precison=bf16"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "unknown config key(s) ['train.precison']" in result.output
    assert not cache.exists()  # the file was not read
