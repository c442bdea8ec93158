"""The training loop on the built-in synthetic data, resume, seeds, thresholds and the CLI."""

import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from carat.config import load_config
from carat.data import load_dataset, make_synthetic
from carat.errors import CaratError
from carat.evaluate import predict_split
from carat.metrics import tune_threshold
from carat.modeldir import build_model, load_model
from carat.train import resolve_run_config, run_training
from cli import main

FAST = ["train.num_threads=1"]


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.pt"
    make_synthetic(path, n_train=48, n_valid=21, n_test=13, seed=3, seq_len=10)
    return path


def tiny_config(dataset, *extra):
    return resolve_run_config(
        dataset, "synthetic", [*FAST, "train.batch_size=16", "train.epochs=2", *extra]
    )


def test_carat_learns_the_synthetic_structure_and_beats_the_baseline(tmp_path):
    path = tmp_path / "synth.pt"
    make_synthetic(path, n_train=400, n_valid=100, n_test=200, seed=0, seq_len=30)
    dataset = load_dataset(str(path))
    scores = {}
    for arch in ("carat", "early-fusion"):
        cfg = resolve_run_config(dataset, "synthetic", [*FAST, f"model.architecture={arch}"])
        result = run_training(dataset, cfg, tmp_path / arch, progress=False)
        scores[arch] = result.summary["test"]["micro_f1"]["mean"]
    # predicting every label gives about 0.5 here; the planted labels are learnable
    assert scores["carat"] > 0.75, scores
    assert scores["carat"] > scores["early-fusion"] + 0.05, scores


def test_run_layout_seeds_and_resume_after_interruption(tiny_synth, tmp_path):
    dataset = load_dataset(str(tiny_synth))
    whole = run_training(
        dataset, tiny_config(dataset), tmp_path / "whole", seeds=[1, 2], progress=False
    )

    calls = []

    def interrupt(epoch, row):
        calls.append(epoch)
        if len(calls) == 3:  # seed 2, after its first epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(
            dataset,
            tiny_config(dataset),
            tmp_path / "cut",
            seeds=[1, 2],
            progress=False,
            on_epoch_end=interrupt,
        )
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = run_training(
        dataset,
        tiny_config(dataset),
        tmp_path / "cut",
        seeds=[1, 2],
        progress=False,
        on_epoch_end=interrupt,
    )
    assert calls == [1, 2, 1, 2]  # seed 1 was not trained again, seed 2 went on at epoch 2

    for name in ("metrics.json", "seed_1/epochs.json", "seed_2/epochs.json"):
        assert json.loads((tmp_path / "whole" / name).read_text()) == json.loads(
            (tmp_path / "cut" / name).read_text()
        ), name
    assert resumed.summary == whole.summary

    run = tmp_path / "whole"
    for seed in (1, 2):
        for name in ("checkpoint.pt", "epochs.csv", "epochs.json", "metrics.json", "model"):
            assert (run / f"seed_{seed}" / name).exists(), (seed, name)
    assert len((run / "seed_1" / "epochs.csv").read_text().splitlines()) == 3  # header + 2 epochs
    for name in ("training_curves.png", "per_label_f1.png", "modality_label_map.png"):
        assert (run / "plots" / name).stat().st_size > 1000
    summary = json.loads((run / "metrics.json").read_text())
    values = summary["test"]["micro_f1"]["values"]
    assert summary["seeds"] == [1, 2] and len(values) == 2
    assert summary["test"]["micro_f1"]["mean"] == pytest.approx(np.mean(values))
    assert summary["test"]["micro_f1"]["std"] == pytest.approx(np.std(values, ddof=1))
    best = summary["best_seed"]
    assert summary["per_seed"][str(best)]["valid"]["micro_f1"] == max(
        summary["per_seed"][s]["valid"]["micro_f1"] for s in ("1", "2")
    )
    assert (
        json.loads((run / "model" / "config.json").read_text())["config"]["train"]["seed"] == best
    )
    assert yaml.safe_load((run / "config.yaml").read_text()) == tiny_config(dataset).to_dict()

    # the checkpoint loads without unpickling code
    state = torch.load(run / "seed_1" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["best"]["epoch"] in (1, 2)


def test_test_metrics_come_from_the_best_epoch_and_tuned_threshold_from_validation(
    tiny_synth, tmp_path
):
    dataset = load_dataset(str(tiny_synth))
    cfg = tiny_config(dataset, "eval.threshold=tune", "train.epochs=3")
    result = run_training(dataset, cfg, tmp_path / "run", progress=False)
    history = json.loads((tmp_path / "run" / "seed_1" / "epochs.json").read_text())
    f1s = [row["valid_micro_f1"] for row in history]
    best_epoch = max(i for i, f1 in enumerate(f1s, start=1) if f1 == max(f1s))  # ties: later
    seed = result.per_seed[0]
    assert seed.best_epoch == best_epoch
    assert seed.valid["micro_f1"] == pytest.approx(max(f1s))

    model, info = load_model(result.model_dir)
    valid = predict_split(model, dataset.splits["valid"], 16, torch.device("cpu"))
    assert info.threshold == tune_threshold(dataset.splits["valid"].labels, valid.scores)
    assert seed.threshold == info.threshold
    test = predict_split(model, dataset.splits["test"], 16, torch.device("cpu"))
    assert len(test.scores) == 13  # evaluation keeps the last partial batch


def test_evaluation_is_in_order_and_drops_nothing(tiny_synth):
    dataset = load_dataset(str(tiny_synth))
    cfg = tiny_config(dataset)
    torch.manual_seed(0)
    model = build_model(cfg)
    split = dataset.splits["valid"]  # 21 samples: batches of 4 leave a remainder of 1
    in_fours = predict_split(model, split, 4, torch.device("cpu"))
    one_batch = predict_split(model, split, len(split), torch.device("cpu"))
    assert in_fours.scores.shape == (21, 6)
    np.testing.assert_allclose(in_fours.scores, one_batch.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(in_fours.winners, one_batch.winners)


def test_run_errors_are_clear(tiny_synth, tmp_path):
    dataset = load_dataset(str(tiny_synth))
    with pytest.raises(CaratError, match="fewer than one batch"):
        run_training(dataset, tiny_config(dataset, "train.batch_size=64"), tmp_path / "a")
    run_training(dataset, tiny_config(dataset, "train.epochs=1"), tmp_path / "b", progress=False)
    with pytest.raises(CaratError, match="different config"):
        run_training(dataset, tiny_config(dataset, "optim.lr=0.01"), tmp_path / "b")
    with pytest.raises(CaratError, match="must be a number or 'tune'"):
        tiny_config(dataset, "eval.threshold=best")


def test_default_preset_follows_the_dataset(tiny_synth):
    dataset = load_dataset(str(tiny_synth))
    cfg = resolve_run_config(dataset, dataset_arg=str(tiny_synth), epochs=3, batch_size=8)
    paper = load_config("paper-mosei-aligned")
    assert cfg.optim.name == paper.optim.name and cfg.model.layers == paper.model.layers
    assert (cfg.train.epochs, cfg.train.batch_size) == (3, 8)
    assert cfg.model.dims == dataset.dims and cfg.model.num_labels == 6
    dataset.aligned = False
    cfg = resolve_run_config(dataset, dataset_arg=str(tiny_synth))
    assert cfg.model.aligned is False and cfg.model.ctc_out_len == 500


def test_cli_train_then_evaluate(tiny_synth, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "--dataset", str(tiny_synth), "--config", "synthetic", "--epochs", "1"]
    args += [
        "--batch-size",
        "16",
        "--seeds",
        "4",
        "--set",
        "train.num_threads=1",
        "--out",
        str(out),
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert str(out / "model") in result.output and "micro_f1" in result.output
    run_metrics = json.loads((out / "metrics.json").read_text())
    assert run_metrics["seeds"] == [4]

    result = runner.invoke(main, ["evaluate", str(out / "model"), "--dataset", str(tiny_synth)])
    assert result.exit_code == 0, result.output
    micro_f1 = run_metrics["test"]["micro_f1"]["mean"]
    assert f"micro_f1         {micro_f1:.4f}" in result.output
    assert "13 samples" in result.output

    bad = runner.invoke(main, ["evaluate", str(tmp_path), "--dataset", str(tiny_synth)])
    assert bad.exit_code == 2 and "not a model directory" in bad.output
    bad = runner.invoke(main, ["train", "--dataset", str(tmp_path / "nope.pt"), "--out", str(out)])
    assert bad.exit_code == 2 and "nope.pt" in bad.output
