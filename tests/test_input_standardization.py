"""``model.standardize_inputs``: each input dimension is standardised with the training split's
mean and std before the input LayerNorm, and a saved model carries those statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from carat.data import load_dataset, make_synthetic
from carat.data.types import MODALITIES, SplitData
from carat.modeldir import load_model
from carat.modules import StandardizedLayerNorm, fit_input_standardization, input_norm
from carat.train import resolve_run_config, run_training


def test_a_uniform_rescaling_is_visible_only_after_standardisation() -> None:
    """A voice raised in pitch multiplies every frequency by one factor: a per-step LayerNorm
    maps both to the same vector, the standardised one does not."""
    rows = torch.tensor([[120.0, 1500.0, 0.2], [180.0, 2500.0, 0.6], [150.0, 2000.0, 0.4]])
    voice = torch.tensor([[150.0, 2000.0, 0.4]])
    raised = voice * 1.2
    plain = input_norm(3, "audio")
    assert torch.allclose(plain(voice), plain(raised), atol=1e-5)
    standardized = input_norm(3, "audio", standardize=True)
    standardized.fit(rows)
    assert not torch.allclose(standardized(voice), standardized(raised), atol=1e-2)


def test_statistics_come_from_real_steps_and_a_constant_dimension_keeps_std_one() -> None:
    features = np.zeros((2, 3, 2), dtype=np.float32)
    features[:, :2, 0] = [[1.0, 3.0], [5.0, 7.0]]  # real steps of dimension 0
    features[:, 2, 0] = 1000.0  # padding: must not count
    features[:, :, 1] = 4.0  # constant dimension
    masks = np.array([[1, 1, 0], [1, 1, 0]])

    split = SplitData(
        features={m: features for m in MODALITIES},
        masks={m: masks for m in MODALITIES},
        labels=np.zeros((2, 1), dtype=np.float32),
        ids=["a", "b"],
    )
    model = nn.ModuleDict({m: input_norm(2, m, standardize=True) for m in MODALITIES})
    fit_input_standardization(model, split)
    norm = model["audio"]
    assert norm.mean.tolist() == pytest.approx([4.0, 4.0])
    assert norm.std.tolist() == pytest.approx([np.std([1.0, 3.0, 5.0, 7.0]), 1.0])


def test_a_trained_model_saves_the_training_splits_statistics(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    make_synthetic(path, n_train=16, n_valid=8, n_test=8, seed=3, seq_len=6)
    dataset = load_dataset(str(path))
    overrides = ["model.standardize_inputs=true", "train.epochs=1", "train.batch_size=8"]
    cfg = resolve_run_config(dataset, "synthetic", [*overrides, "train.num_threads=1"])
    run = run_training(dataset, cfg, tmp_path / "run", progress=False)
    model, _ = load_model(run.model_dir)
    train = dataset.splits["train"]
    norms = [m for m in model.modules() if isinstance(m, StandardizedLayerNorm)]
    assert sorted(n.modality for n in norms) == sorted(MODALITIES)
    for norm in norms:
        rows = train.features[norm.modality][train.masks[norm.modality].astype(bool)]
        assert np.allclose(norm.mean.numpy(), rows.mean(axis=0), atol=1e-4)
        assert np.allclose(norm.std.numpy(), rows.std(axis=0), rtol=1e-3)
