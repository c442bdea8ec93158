"""Which modality carries each label: exact Shapley values over the three modalities.

The value of a set of modalities is the model's Eq. 16 probability when only those modalities
are present and the others take the model's masked path (``CARAT.head`` with ``present``), never
zero-filled data. With three modalities the exact Shapley value needs the 8 subsets; the
label-wise attention (the expensive part) runs once per clip and only the small head runs on
the 8 copies, in one batch. Contributions add up to ``p(all) - p(none)``, where ``p(none)`` is
the model's data-free prior. The winner of CARAT's max-pool is a different statistic (the
paper's Figure 4): it is kept as ``maxpool_winner`` and never presented as an explanation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from carat.data.types import MODALITIES, Batch

METHOD = "shapley-masked"  # the attribution a model's outputs carry (model card, JSON)

# the 8 subsets of (text, visual, audio) as presence rows, the empty set first
SUBSETS = torch.tensor(list(itertools.product([False, True], repeat=len(MODALITIES))))


@dataclass
class Attribution:
    """Per sample and label: the probability, each modality's contribution, and the prior."""

    scores: torch.Tensor  # [B,C] probability with every present modality
    contributions: torch.Tensor  # [B,C,3] Shapley value of text, visual, audio
    prior: torch.Tensor  # [B,C] probability with no modality (the model's data-free output)
    maxpool_winner: torch.Tensor  # [B,C] long: the modality whose classifier wins the max-pool

    def driven_by(self) -> torch.Tensor:
        """``[B,C]`` long: the modality with the largest positive contribution, -1 if none."""
        best = self.contributions.max(dim=-1)
        return torch.where(best.values > 0, best.indices, torch.full_like(best.indices, -1))


def _shapley_weights() -> torch.Tensor:
    """``[8,3]``: +w where a subset contains modality i, -w where it lacks i, with
    ``w = |S|! (n - |S| - 1)! / n!`` of the subset S without i (the standard formula,
    rearranged so that phi = v(subsets) @ weights)."""
    n = len(MODALITIES)
    weights = torch.zeros(len(SUBSETS), n, dtype=torch.float64)
    for row, subset in enumerate(SUBSETS.tolist()):
        size = sum(subset)
        for i in range(n):
            if subset[i]:  # S ∪ {i} with |S| = size - 1
                weights[row, i] = (
                    math.factorial(size - 1) * math.factorial(n - size) / math.factorial(n)
                )
            else:  # S without i, |S| = size
                weights[row, i] = (
                    -math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                )
    return weights


WEIGHTS = _shapley_weights()


@torch.no_grad()
def shapley(model: torch.nn.Module, batch: Batch) -> Attribution:
    """Exact Shapley contributions of the three modalities for every sample of ``batch``.

    ``model`` is a CARAT in eval mode. A modality already absent from a sample (``present``)
    stays absent in every subset, so its contribution is exactly 0.
    """
    lsr = model.label_features(batch)  # [B,3,C,d]: once per sample
    b = lsr.shape[0]
    base = model.presence(batch)
    if base is None:
        base = torch.ones(b, len(MODALITIES), dtype=torch.bool)
    base = base.to(lsr.device)
    subsets = SUBSETS.to(lsr.device)
    present = (subsets[None] & base[:, None]).reshape(b * len(SUBSETS), -1)
    inter = model.head(lsr.repeat_interleave(len(SUBSETS), dim=0), present)
    out = model.predict_from(inter)
    values = out.scores.float().reshape(b, len(SUBSETS), -1)  # [B,8,C]
    contributions = torch.einsum("bsc,si->bci", values.double(), WEIGHTS.to(lsr.device)).float()
    full = len(SUBSETS) - 1  # the last subset has all three
    winner = out.winner.reshape(b, len(SUBSETS), -1)[:, full]
    return Attribution(values[:, full], contributions, values[:, 0], winner)
