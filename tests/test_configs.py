"""Every preset and ablation config loads, builds and trains on tiny data; quirks are switches."""

import numpy as np
import pytest
import torch

from carat.config import list_presets, load_config
from carat.data.types import MODALITIES, MultimodalDataset, SplitData
from carat.evaluate import make_batch
from carat.modeldir import build_model
from carat.optim import BertAdam, build_optimizer
from carat.train import fit_to_dataset

ABLATIONS = [
    "mrm-only",
    "agg-only",
    "mrm-agg",
    "no-contrastive",
    "no-encdec",
    "no-recon-loss",
    "no-first-level",
    "no-second-level",
    "no-reconstruction",
    "no-sample-shuffle",
    "no-modality-shuffle",
    "no-shuffle",
]
PAPER = ["paper-mosei-aligned", "paper-mosei-unaligned", "paper-m3ed"]
# Sizes only (never a switch the presets differ in), so each training step takes milliseconds.
SHRINK = [
    "model.layers={text: 1, visual: 1, audio: 1}",
    "model.hidden=32",
    "model.heads=2",
    "model.intermediate=32",
    "model.latent=16",
    "model.ctc_out_len=10",
    "contrastive.queue_size=64",
]


def tiny_dataset(num_labels: int, aligned: bool, n: int = 4) -> MultimodalDataset:
    rng = np.random.default_rng(0)
    dims = {"text": 12, "visual": 5, "audio": 7}
    lengths = (
        {"text": 6, "visual": 6, "audio": 6} if aligned else {"text": 5, "visual": 9, "audio": 8}
    )
    features = {m: rng.normal(size=(n, lengths[m], dims[m])).astype(np.float32) for m in MODALITIES}
    masks = {m: np.ones((n, lengths[m]), np.int64) for m in MODALITIES}
    labels = (rng.random((n, num_labels)) < 0.5).astype(np.float32)
    labels[0] = 1.0  # every label has a positive and a negative sample
    labels[1] = 0.0
    split = SplitData(features, masks, labels, [str(i) for i in range(n)])
    return MultimodalDataset(
        "tiny",
        {s: split for s in ("train", "valid", "test")},
        [f"l{i}" for i in range(num_labels)],
        aligned,
    )


def test_all_presets_are_present():
    names = set(list_presets())
    assert {*PAPER, "synthetic", *(f"ablation-{a}" for a in ABLATIONS)} <= names


def tiny_dataset_for(preset: str) -> MultimodalDataset:
    return tiny_dataset(
        7 if preset == "paper-m3ed" else 6, aligned=preset != "paper-mosei-unaligned"
    )


@pytest.mark.parametrize("preset", PAPER)
def test_paper_presets_build_at_full_size(preset):
    cfg = fit_to_dataset(load_config(preset), tiny_dataset_for(preset))
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 5_000_000


@pytest.mark.parametrize("preset", [*PAPER, "synthetic", *(f"ablation-{a}" for a in ABLATIONS)])
def test_preset_builds_and_trains_two_steps(preset):
    cfg = load_config(preset, SHRINK)
    dataset = tiny_dataset_for(preset)
    cfg = fit_to_dataset(cfg, dataset)
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer, scheduler = build_optimizer(model, cfg.optim, total_steps=2)
    batch = make_batch(dataset.splits["train"], np.arange(4), torch.device("cpu"))
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    for _ in range(2):  # BertAdam's first update has lr 0; the second one moves the weights
        optimizer.zero_grad()
        loss, terms = model.training_step(batch)
        assert torch.isfinite(loss), terms
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    model.eval()
    scores = model(batch).scores
    assert scores.shape == (4, dataset.num_labels)
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_paper_preset_is_the_authors_setup():
    cfg = load_config("paper-mosei-aligned")
    assert cfg.optim.name == "bertadam" and cfg.optim.lr == 5e-5 and cfg.optim.warmup == 0.1
    assert cfg.model.layers == {"text": 6, "visual": 4, "audio": 4}
    assert cfg.model.max_positions == {"text": 60, "visual": 500, "audio": 500}
    assert cfg.contrastive.queue_size == 8192 and cfg.contrastive.queue_anchors is True
    assert cfg.model.mask_padding is False
    assert cfg.eval.threshold == 0.25
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seed) == (20, 64, 1)
    unaligned = load_config("paper-mosei-unaligned")
    assert unaligned.model.aligned is False and unaligned.model.ctc_out_len == 500
    assert unaligned.model.max_positions["text"] == 50
    m3ed = load_config("paper-m3ed")
    assert m3ed.model.num_labels == 7 and set(m3ed.model.max_positions.values()) == {100}


def test_every_quirk_is_a_named_switch():
    cfg = load_config(
        "paper-mosei-aligned",
        [
            "model.mask_padding=true",
            "eval.threshold=tune",
            "contrastive.queue_anchors=false",
            "optim.name=adamw",
        ],
    )
    assert cfg.model.mask_padding is True
    assert cfg.eval.threshold == "tune"
    assert cfg.contrastive.queue_anchors is False
    model = build_model(fit_to_dataset(cfg, tiny_dataset(6, True)))
    optimizer, _ = build_optimizer(model, cfg.optim, 10)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert isinstance(
        build_optimizer(model, load_config("paper-mosei-aligned").optim, 10)[0], BertAdam
    )


def test_ablation_configs_flip_only_ablation_switches():
    base = load_config("paper-mosei-aligned").to_dict()
    for name in ABLATIONS:
        cfg = load_config(f"ablation-{name}").to_dict()
        assert cfg["model"]["ablation"] != base["model"]["ablation"], name
        cfg["model"]["ablation"] = base["model"]["ablation"]
        assert cfg == base, name
