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


def _marginal_pairs() -> list[tuple[int, int, int, float]]:
    """``(modality i, row of S, row of S + {i}, weight)`` for every subset S without i, with
    the Shapley weight ``|S|! (n - |S| - 1)! / n!``. Summing weighted differences of the pairs
    (not one dot product over all 8 rows) keeps a modality that changes nothing at exactly 0."""
    n = len(MODALITIES)
    rows = {tuple(subset): row for row, subset in enumerate(SUBSETS.tolist())}
    pairs = []
    for subset, row in rows.items():
        size = sum(subset)
        for i in range(n):
            if not subset[i]:
                with_i = tuple(True if k == i else v for k, v in enumerate(subset))
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                pairs.append((i, row, rows[with_i], weight))
    return pairs


PAIRS = _marginal_pairs()


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
    contributions = torch.zeros(*values.shape[::2], len(MODALITIES), dtype=torch.float64)
    for i, without, with_i, weight in PAIRS:
        gain = (values[:, with_i] - values[:, without]).double().cpu()
        contributions[..., i] += weight * gain
    full = len(SUBSETS) - 1  # the last subset has all three
    winner = out.winner.reshape(b, len(SUBSETS), -1)[:, full]
    return Attribution(values[:, full], contributions.float().to(lsr.device), values[:, 0], winner)
