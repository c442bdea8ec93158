"""Attribution validated against known truth: a CARAT trained with modality dropout on planted
data names each label's planted modality; the explain command, the run's plots and the card."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from carat.attribution import METHOD, shapley
from carat.data import load_dataset, make_synthetic
from carat.data.synth import CARRIER
from carat.data.types import MODALITIES
from carat.errors import CaratError
from carat.evaluate import make_batch
from carat.explain import (
    MAXPOOL_NAME,
    ExplainResult,
    explain_model,
    explain_split,
    format_explain,
)
from carat.modeldir import build_model, load_model
from carat.train import resolve_run_config, run_training
from cli import main


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The planted check's model: configs/synthetic-attribution.yaml on the synthetic data."""
    root = tmp_path_factory.mktemp("planted")
    data_dir = root / "data"
    make_synthetic(
        data_dir / "train_valid_test.pt", n_train=600, n_valid=150, n_test=200, seed=0, seq_len=30
    )
    dataset = load_dataset("mosei", data_dir)
    cfg = resolve_run_config(dataset, "synthetic-attribution", ["train.num_threads=1"])
    result = run_training(dataset, cfg, root / "run", progress=False)
    return {"data": data_dir, "run": result.run_dir, "model": result.model_dir}


def test_attribution_recovers_the_planted_modality_for_every_label(planted_run) -> None:
    dataset = load_dataset("mosei", planted_run["data"])
    result = explain_model(planted_run["model"], dataset, device="cpu")
    check = result.planted_check()
    assert check["planted"] == CARRIER
    assert check["attribution"]["correct"] == 6, result.to_dict()
    assert dict(zip(result.label_names, result.attribution_top(), strict=True)) == CARRIER
    # contributions are probabilities' shares: the planted one is positive for every label
    for i, name in enumerate(result.label_names):
        assert result.contributions[i, ["text", "visual", "audio"].index(CARRIER[name])] > 0


def test_every_run_plots_and_records_the_attribution(planted_run) -> None:
    run = planted_run["run"]
    for figure in ("attribution_map.png", "modality_label_map.png"):
        assert (run / "plots" / figure).stat().st_size > 1000
    metrics = json.loads((run / "metrics.json").read_text())
    explain = metrics["explain"]
    assert explain["method"] == METHOD and explain["planted_check"]["attribution"]["correct"] == 6
    assert json.loads((planted_run["model"] / "metrics.json").read_text())["explain"] == explain
    card = (planted_run["model"] / "README.md").read_text()
    assert "## Attribution" in card and f"`{METHOD}`" in card
    assert "p(all) - p(none)" in card and "modality dropout at rate 0.3" in card
    assert "planted one for 6/6 labels" in card


def test_explain_command_prints_plots_and_writes_json(planted_run, tmp_path) -> None:
    out = tmp_path / "explained"
    args = ["explain", str(planted_run["model"]), "--dataset", "mosei"]
    args += ["--data-dir", str(planted_run["data"]), "--device", "cpu", "--out", str(out)]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert METHOD in table.output and MAXPOOL_NAME in table.output
    assert "planted check" in table.output and f"{METHOD}   6/6" in table.output
    for name in ("happy", "sad", "anger", "surprise", "disgust", "fear"):
        assert name in table.output
    assert (out / "attribution_map.png").stat().st_size > 1000
    saved = json.loads((out / "explain.json").read_text())

    printed = CliRunner().invoke(main, [*args[:-2], "--json"])
    assert printed.exit_code == 0, printed.output
    record = json.loads(printed.output)
    assert record == saved
    assert record["split"] == "test" and record["num_samples"] == 200
    assert set(record["mean_contribution_over_positives"]["fear"]) == {"text", "visual", "audio"}


def test_without_planted_truth_there_is_no_planted_check(planted_run, tmp_path) -> None:
    shutil.copy(planted_run["data"] / "train_valid_test.pt", tmp_path / "copy.pt")
    result = CliRunner().invoke(
        main, ["explain", str(planted_run["model"]), "--dataset", str(tmp_path / "copy.pt")]
    )
    assert result.exit_code == 0, result.output
    assert "planted check" not in result.output and METHOD in result.output


def test_split_means_match_one_batch_shapley_over_positives(planted_run) -> None:
    """Batching and the per-label averaging over positives change nothing."""
    model, _ = load_model(planted_run["model"])
    split = load_dataset("mosei", planted_run["data"]).splits["valid"]
    labels = ["happy", "sad", "anger", "surprise", "disgust", "fear"]
    result = explain_split(model, split, labels, 7, torch.device("cpu"), "valid")
    whole = shapley(model, make_batch(split, np.arange(len(split)), torch.device("cpu")))
    for c in range(len(labels)):
        positives = split.labels[:, c] == 1
        expected = whole.contributions[positives, c].mean(0).numpy()
        np.testing.assert_allclose(result.contributions[c], expected, atol=1e-5)
        winners = whole.maxpool_winner[positives, c].numpy()
        share = np.bincount(winners, minlength=3) / positives.sum()
        np.testing.assert_allclose(result.maxpool_share[c], share)
        assert result.positives[c] == int(positives.sum())


def test_explain_refuses_a_model_without_a_masked_path(planted_run) -> None:
    dataset = load_dataset("mosei", planted_run["data"])
    _, info = load_model(planted_run["model"])
    baseline_cfg = copy.deepcopy(info.config)
    baseline_cfg.model.architecture = "early-fusion"
    baseline = build_model(baseline_cfg)
    with pytest.raises(CaratError, match="needs a CARAT model"):
        explain_split(baseline, dataset.splits["test"], dataset.label_names, 8, "cpu")


def test_explain_command_says_what_is_wrong_in_one_line(planted_run, tmp_path) -> None:
    data = ["--dataset", "mosei", "--data-dir", str(planted_run["data"])]
    missing = CliRunner().invoke(main, ["explain", str(tmp_path / "nope"), *data])
    assert missing.exit_code == 2 and "not a model directory" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    no_data = CliRunner().invoke(
        main,
        ["explain", str(planted_run["model"]), "--dataset", "mosei", "--data-dir", str(tmp_path)],
    )
    assert no_data.exit_code == 2 and "train_valid_test.pt" in no_data.output


def test_planted_check_scores_each_statistic_and_skips_labels_without_positives() -> None:
    nan = [np.nan] * 3
    result = ExplainResult(
        label_names=["a", "b", "c"],
        split="test",
        num_samples=5,
        positives=[3, 2, 0],
        contributions=np.array([[0.3, 0.1, 0.0], [0.0, -0.1, 0.2], nan]),
        maxpool_share=np.array([[0.2, 0.8, 0.0], [0.0, 0.0, 1.0], nan]),
        planted={"a": "text", "b": "visual", "c": "audio"},
    )
    check = result.planted_check()
    assert check["planted"] == {"a": "text", "b": "visual"}
    assert check["attribution"] == {"correct": 1, "labels": 2, "accuracy": 0.5}
    assert check["maxpool_winner"] == {"correct": 0, "labels": 2, "accuracy": 0.0}
    record = result.to_dict()
    assert record["attribution_top"] == {"a": "text", "b": "audio", "c": None}
    assert record["mean_contribution_over_positives"]["c"] == dict.fromkeys(MODALITIES)
    json.dumps(record, allow_nan=False)  # NaN never reaches the JSON
    assert "1/2 (0.50)" in format_explain(result)
