"""Model directory: save then load gives identical predictions; nothing executable is loaded."""

import json

import numpy as np
import pytest
import safetensors
import torch

from carat.attribution import METHOD as ATTRIBUTION_METHOD
from carat.config import load_config
from carat.data.fingerprint import dataset_fingerprint
from carat.data.types import MODALITIES, MultimodalDataset, SplitData
from carat.errors import CaratError
from carat.evaluate import evaluate_model, make_batch, predict_split
from carat.modeldir import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelInfo,
    build_model,
    dataset_summary,
    load_model,
    model_card,
    save_model,
)
from carat.train import fit_to_dataset

SMALL = [
    "model.layers={text: 1, visual: 1, audio: 1}",
    "model.hidden=32",
    "model.heads=2",
    "model.intermediate=32",
    "model.latent=16",
    "contrastive.queue_size=64",
]


def small_dataset(
    n: int = 10, labels: tuple[str, ...] = ("happy", "sad", "anger")
) -> MultimodalDataset:
    rng = np.random.default_rng(1)
    dims = {"text": 8, "visual": 4, "audio": 5}
    features = {m: rng.normal(size=(n, 6, dims[m])).astype(np.float32) for m in MODALITIES}
    masks = {m: np.ones((n, 6), np.int64) for m in MODALITIES}
    y = (rng.random((n, len(labels))) < 0.5).astype(np.float32)
    split = SplitData(features, masks, y, [f"clip{i}" for i in range(n)])
    spec = {"text": {"name": "text", "version": "1"}, "alignment": {"mode": "word"}}
    return MultimodalDataset(
        "small", {"train": split, "valid": split, "test": split}, list(labels), True, spec, "mem"
    )


def trained_model(architecture: str, dataset: MultimodalDataset):
    cfg = fit_to_dataset(
        load_config("synthetic", [*SMALL, f"model.architecture={architecture}"]), dataset
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = make_batch(dataset.splits["train"], np.arange(8), torch.device("cpu"))
    model.train()
    for _ in range(3):  # moves the weights, the prototypes and the queue away from their init
        optimizer.zero_grad()
        loss, _ = model.training_step(batch)
        loss.backward()
        optimizer.step()
    model.eval()
    return model, cfg


def info_for(cfg, dataset, metrics=None) -> ModelInfo:
    return ModelInfo(
        config=cfg,
        label_names=dataset.label_names,
        threshold=0.3,
        feature_spec=dataset.feature_spec,
        dataset=dataset_summary(dataset, dataset_fingerprint(dataset)),
        metrics=metrics or {"test": {"micro_f1": 0.5, "acc": 0.25}, "seeds": [1]},
    )


@pytest.mark.parametrize("architecture", ["carat", "early-fusion"])
def test_save_then_load_gives_identical_predictions(tmp_path, architecture):
    dataset = small_dataset()
    model, cfg = trained_model(architecture, dataset)
    save_model(model, tmp_path / "model", info_for(cfg, dataset))
    loaded, info = load_model(tmp_path / "model")
    split = dataset.splits["test"]
    before = predict_split(model, split, 4, torch.device("cpu"))
    after = predict_split(loaded, split, 4, torch.device("cpu"))
    np.testing.assert_array_equal(before.scores, after.scores)
    if architecture == "carat":
        np.testing.assert_array_equal(before.winners, after.winners)
    for name, tensor in model.state_dict().items():  # buffers (prototypes, queue) included
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert info.architecture == architecture
    assert info.label_names == dataset.label_names
    assert info.threshold == 0.3
    assert info.config.to_dict() == cfg.to_dict()


def test_directory_contents_and_card(tmp_path):
    dataset = small_dataset()
    model, cfg = trained_model("carat", dataset)
    model_dir = save_model(model, tmp_path / "m", info_for(cfg, dataset))
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    assert config["label_names"] == ["happy", "sad", "anger"]
    assert config["feature_spec"]["text"]["name"] == "text"
    assert config["dataset"]["fingerprint"] == dataset_fingerprint(dataset)
    assert config["config"]["model"]["dims"] == {"text": 8, "visual": 4, "audio": 5}
    with safetensors.safe_open(str(model_dir / WEIGHTS_FILE), framework="pt") as handle:
        assert len(list(handle.keys())) == len(model.state_dict())
    assert json.loads((model_dir / "metrics.json").read_text())["test"]["micro_f1"] == 0.5
    card = (model_dir / "README.md").read_text()
    for heading in ("## Data", "## Metrics", "## Intended use", "## Limits", "licence"):
        assert heading in card
    assert "PDDL" in card and "happy, sad, anger" in card and "0.5000" in card


def test_card_states_the_attribution_and_how_far_to_trust_it(tmp_path):
    dataset = small_dataset()
    model, cfg = trained_model("carat", dataset)
    check = {
        "attribution": {"correct": 3, "labels": 3, "accuracy": 1.0},
        "maxpool_winner": {"correct": 1, "labels": 3, "accuracy": 1 / 3},
    }
    metrics = {"test": {"micro_f1": 0.5}, "seeds": [1], "explain": {"planted_check": check}}
    card = model_card(info_for(cfg, dataset, metrics=metrics))
    assert f"`{ATTRIBUTION_METHOD}`" in card and "p(all) - p(none)" in card
    assert "Trained without modality dropout" in card and "unseen inputs" in card
    assert "planted one for 3/3 labels" in card and "max-pool winner's for 1/3" in card
    cfg.model.modality_dropout = 0.4
    card = model_card(info_for(cfg, dataset))
    assert "modality dropout at rate 0.4" in card and "Planted check" not in card
    _, base_cfg = trained_model("early-fusion", dataset)
    card = model_card(info_for(base_cfg, dataset))
    assert "carry no attribution" in card and ATTRIBUTION_METHOD not in card


def test_fingerprint_follows_content():
    a, b = small_dataset(), small_dataset()
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    b.splits["test"].features["audio"][0, 0, 0] += 1.0  # (train/valid/test share one split here)
    assert dataset_fingerprint(a) != dataset_fingerprint(b)


def test_load_refuses_what_is_not_a_model_directory(tmp_path):
    with pytest.raises(CaratError, match="not a model directory"):
        load_model(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(CaratError, match="not valid JSON"):
        load_model(tmp_path)


def test_evaluate_refuses_other_labels(tmp_path):
    dataset = small_dataset()
    model, cfg = trained_model("carat", dataset)
    save_model(model, tmp_path / "m", info_for(cfg, dataset))
    metrics = evaluate_model(tmp_path / "m", dataset, device="cpu")
    assert metrics["num_samples"] == 10 and metrics["threshold"] == 0.3
    with pytest.raises(CaratError, match="labels"):
        evaluate_model(tmp_path / "m", small_dataset(labels=("joy", "fear", "calm")), device="cpu")
