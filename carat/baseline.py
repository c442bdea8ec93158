"""Early-fusion baseline: mean-pooled features of all modalities, concatenated, then an MLP.

It answers "does CARAT's machinery help at all?" on any dataset: same inputs, same training
loop, same metrics, one sigmoid per label. It follows CARAT's interface (``forward`` returns an
object with ``scores``; ``training_step`` returns the loss and its terms) so the trainer, the
evaluator and the model directory treat both alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from carat.config import CaratConfig
from carat.data.types import MODALITIES, Batch
from carat.modules import input_norm


@dataclass
class BaselineOutput:
    """``scores`` are probabilities ``[B, C]``; the baseline has no per-modality classifiers."""

    scores: torch.Tensor
    logits: torch.Tensor
    modality_logits: torch.Tensor | None = None
    winner: torch.Tensor | None = None


class EarlyFusionBaseline(nn.Module):
    """LayerNorm per modality -> (masked) mean over time -> concat -> MLP -> C logits."""

    def __init__(self, cfg: CaratConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dims = cfg.model.dims
        self.norms = nn.ModuleDict(
            {m: input_norm(dims[m], m, cfg.model.standardize_inputs) for m in MODALITIES}
        )
        hidden = cfg.model.hidden
        self.mlp = nn.Sequential(
            nn.Linear(sum(dims[m] for m in MODALITIES), hidden),
            nn.ReLU(),
            nn.Dropout(cfg.model.dropout),
            nn.Linear(hidden, cfg.model.num_labels),
        )
        self.loss_fn = nn.BCEWithLogitsLoss()
        # the shuffles' random stream; the trainer gives it each seed's own stream
        self.rng = np.random.default_rng(0)

    def _pool(self, batch: Batch, modality: str) -> torch.Tensor:
        x = self.norms[modality](batch.features[modality].float())
        if not self.cfg.model.mask_padding:
            return x.mean(dim=1)
        mask = batch.masks[modality].to(x.dtype).unsqueeze(-1)
        return (x * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)

    def forward(self, batch: Batch) -> BaselineOutput:
        pooled = torch.cat([self._pool(batch, m) for m in MODALITIES], dim=-1)
        logits = self.mlp(pooled)
        return BaselineOutput(scores=torch.sigmoid(logits), logits=logits)

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = self(batch)
        loss = self.loss_fn(out.logits.float(), batch.labels.float())
        return loss, {"bce": float(loss.detach())}
