"""The built-in synthetic data: CARAT's .pt layout, and the structure planted in it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from carat.data import MOSEI_LABELS, load_dataset, make_synthetic
from carat.data.formats import CARAT_PT
from carat.data.safe_pickle import load_file
from carat.data.synth import CARRIER, PAIRS, planted_path, read_planted
from carat.data.types import MODALITIES, SPLITS
from cli import main

PT_KEY = {"text": "src-text", "visual": "src-visual", "audio": "src-audio"}
DIMS = {"text": 300, "visual": 35, "audio": 74}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    make_synthetic(
        folder / "train_valid_test.pt", n_train=400, n_valid=30, n_test=40, seed=3, seq_len=20
    )
    return folder


def test_file_has_the_carat_pt_layout(synth_dir: Path) -> None:
    raw = load_file(synth_dir / "train_valid_test.pt", CARAT_PT)
    assert set(raw) == {"train", "valid", "test", "dict", "settings"}
    assert isinstance(raw["settings"], argparse.Namespace) and raw["settings"].max_src_seq_len == 20
    assert raw["dict"]["tgt"]["happy"] == 4 and raw["dict"]["tgt"]["fear"] == 9
    for split, n in {"train": 400, "valid": 30, "test": 40}.items():
        part = raw[split]
        for m in MODALITIES:
            assert isinstance(part[PT_KEY[m]], np.ndarray)
            assert part[PT_KEY[m]].shape == (n, 20, DIMS[m])
        assert len(part["tgt"]) == n
        for tokens in part["tgt"]:
            assert tokens[0] == 2 and tokens[-1] == 3
            assert all(4 <= t <= 9 for t in tokens[1:-1]) and tokens[1:-1] == sorted(
                set(tokens[1:-1])
            )


def _real_lengths(x: np.ndarray) -> np.ndarray:
    """1 + index of the last step with any nonzero value (0 for an all-zero clip)."""
    nonzero = (x != 0).any(axis=2)
    return np.where(nonzero.any(axis=1), x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def test_padding_and_covarep_like_minus_inf(synth_dir: Path) -> None:
    raw = load_file(synth_dir / "train_valid_test.pt", CARAT_PT)["train"]
    lengths = {m: _real_lengths(np.nan_to_num(raw[PT_KEY[m]], neginf=1.0)) for m in MODALITIES}
    np.testing.assert_array_equal(lengths["text"], lengths["visual"])
    np.testing.assert_array_equal(lengths["text"], lengths["audio"])
    assert (lengths["text"] < 20).mean() > 0.5 and len(set(lengths["text"].tolist())) > 8
    assert np.isneginf(raw["src-audio"]).any()
    assert np.isfinite(raw["src-text"]).all() and np.isfinite(raw["src-visual"]).all()
    ds = load_dataset("mosei", str(synth_dir))
    assert np.isfinite(ds.splits["train"].features["audio"]).all()
    for m in MODALITIES:  # the adapter marks the zero padding
        masks = np.asarray(ds.splits["train"].masks[m])
        np.testing.assert_array_equal(masks.sum(axis=1), lengths["text"])


def _signal(pooled: np.ndarray, present: np.ndarray) -> float:
    """Mean difference between clips with and without a label, in null standard deviations.

    ||mean_1 - mean_0||^2 minus its expectation without any signal, divided by its standard
    deviation without signal: about N(0, 1) when the modality says nothing about the label.
    """
    diff = pooled[present == 1].mean(0) - pooled[present == 0].mean(0)
    var = pooled.var(0) * (1 / (present == 1).sum() + 1 / (present == 0).sum())
    return float((diff @ diff - var.sum()) / np.sqrt(2 * (var**2).sum()))


def test_each_label_is_carried_by_its_modality_only(synth_dir: Path) -> None:
    train = load_dataset("mosei", str(synth_dir)).splits["train"]
    partner = {a: b for pair in PAIRS for a, b in (pair, pair[::-1])}
    assert len({CARRIER[label] for label in MOSEI_LABELS}) == 3
    for j, label in enumerate(MOSEI_LABELS):
        # Hold the co-occurring partner (carried by another modality) absent, so its signal
        # cannot leak into this label through the correlation.
        keep = train.labels[:, MOSEI_LABELS.index(partner[label])] == 0
        for m in MODALITIES:
            score = _signal(train.features[m][keep].mean(axis=1), train.labels[keep, j])
            if m == CARRIER[label]:
                assert score > 10, (label, m, score)
            else:
                assert score < 5, (label, m, score)


def test_labels_co_occur_in_pairs(synth_dir: Path) -> None:
    labels = load_dataset("mosei", str(synth_dir)).splits["train"].labels
    col = {name: labels[:, i] == 1 for i, name in enumerate(MOSEI_LABELS)}
    for leader, follower in PAIRS:
        lift = col[follower][col[leader]].mean() - col[follower][~col[leader]].mean()
        assert lift > 0.4, (leader, follower, lift)
    unrelated = col["sad"][col["happy"]].mean() - col["sad"][~col["happy"]].mean()
    assert abs(unrelated) < 0.15


def test_same_seed_gives_the_same_data(tmp_path: Path) -> None:
    sizes = {"n_train": 6, "n_valid": 2, "n_test": 3, "seq_len": 8}
    for folder, seed in (("a", 5), ("b", 5), ("c", 6)):
        make_synthetic(tmp_path / folder / "train_valid_test.pt", seed=seed, **sizes)
    a, b, c = (load_dataset("mosei", str(tmp_path / f)) for f in "abc")
    for split in SPLITS:
        for m in MODALITIES:
            np.testing.assert_array_equal(a.splits[split].features[m], b.splits[split].features[m])
        np.testing.assert_array_equal(a.splits[split].labels, b.splits[split].labels)
    assert not np.array_equal(
        a.splits["train"].features["text"], c.splits["train"].features["text"]
    )


def test_cli_synth_writes_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "data"
    args = ["synth", "--out", str(out), "--n-train", "12", "--n-valid", "4", "--n-test", "5"]
    result = CliRunner().invoke(main, [*args, "--seq-len", "10", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'train_valid_test.pt'}" in result.output
    assert "train 12, valid 4, test 5" in result.output
    ds = load_dataset("mosei", str(out))
    assert {s: len(ds.splits[s]) for s in SPLITS} == {"train": 12, "valid": 4, "test": 5}
    assert ds.lengths == {m: 10 for m in MODALITIES}
    sidecar = out / "train_valid_test.planted.json"
    assert f"planted truth (each label's carrier modality): {sidecar}" in result.output
    assert read_planted(ds.source) == CARRIER
    bad = CliRunner().invoke(main, ["synth", "--out", str(out), "--seq-len", "2"])
    assert bad.exit_code != 0 and "--seq-len" in bad.output


def test_planted_truth_sidecar_is_read_only_when_sound(
    synth_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = synth_dir / "train_valid_test.pt"
    assert planted_path(data) == synth_dir / "train_valid_test.planted.json"
    record = json.loads(planted_path(data).read_text())
    assert record["carriers"] == CARRIER and record["seed"] == 3
    assert read_planted(data) == CARRIER
    assert read_planted(tmp_path / "other.pt") is None  # no sidecar: no planted truth
    assert read_planted(None) is None
    for damaged in ("{not json", '{"format": "carat-planted/1", "carriers": {"happy": "smell"}}'):
        planted_path(tmp_path / "bad.pt").write_text(damaged)
        assert read_planted(tmp_path / "bad.pt") is None
    assert "no planted check" in caplog.text
