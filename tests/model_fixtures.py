"""Tiny CARAT configs and random batches shared by the model tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from carat.config import Ablation, CaratConfig
from carat.data.types import Batch

B, C, L = 4, 3, 5
DIMS = {"text": 7, "visual": 5, "audio": 4}


def tiny_config(aligned: bool = True, **ablation: bool) -> CaratConfig:
    cfg = CaratConfig()
    mc = cfg.model
    mc.num_labels = C
    mc.dims = dict(DIMS)
    mc.max_positions = {"text": 8, "visual": 8, "audio": 8}
    mc.layers = {"text": 2, "visual": 1, "audio": 1}
    mc.hidden, mc.latent, mc.heads, mc.intermediate = 16, 8, 2, 16
    mc.aligned = aligned
    mc.ctc_out_len = 6
    mc.ablation = Ablation(**ablation)
    cfg.contrastive.queue_size = 40
    return cfg


def random_batch(seed: int = 0, length: int = L, batch: int = B) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    features = {m: torch.randn(batch, length, d, generator=gen) for m, d in DIMS.items()}
    masks = {m: torch.ones(batch, length, dtype=torch.long) for m in DIMS}
    labels = (torch.rand(batch, C, generator=gen) < 0.5).float()
    labels[0] = torch.tensor([1.0, 0.0, 1.0])  # both polarities present for every label
    labels[1] = 1.0 - labels[0]
    return Batch(features=features, masks=masks, labels=labels)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads: on tiny tensors more threads only add waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
