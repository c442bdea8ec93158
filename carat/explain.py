"""Which modality carries each label, over a whole split, and whether that matches known truth.

For every label, the mean Shapley contribution of each modality (``carat.attribution``) over
the split's positives (clips whose truth is 1 for that label): what the model's probability of
the label owes to each modality where the label is really there. Beside it, over the same clips,
the share of clips in which each modality wins CARAT's max-pool: the paper's Figure 4 statistic,
kept under that name because it is not an attribution.

When the dataset has planted truth (the built-in synthetic data records, per label, the one
modality that carries it), the result also scores both statistics against it: the fraction of
labels whose top modality is the planted one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from carat.attribution import METHOD, shapley
from carat.data.synth import read_planted
from carat.data.types import MODALITIES, MultimodalDataset, SplitData
from carat.errors import CaratError
from carat.evaluate import load_for_split, make_batch
from carat.model import CARAT

log = logging.getLogger(__name__)

MAXPOOL_NAME = "max-pool winner share (paper Fig. 4), not an attribution"


@dataclass
class ExplainResult:
    """Per label (rows, ``label_names`` order) and modality (columns, text/visual/audio)."""

    label_names: list[str]
    split: str
    num_samples: int
    positives: list[int]  # clips with truth 1, per label
    contributions: np.ndarray  # [C,3] mean Shapley contribution over positives (NaN: none)
    maxpool_share: np.ndarray  # [C,3] share of positives whose max-pool each modality wins
    planted: dict[str, str] | None = None  # label -> carrier modality, when known by design
    method: str = METHOD

    def attribution_top(self) -> list[str | None]:
        """Per label, the modality with the largest mean contribution (None: no positives)."""
        return _top(self.contributions, self.positives)

    def maxpool_top(self) -> list[str | None]:
        """Per label, the modality that most often wins the max-pool over the positives."""
        return _top(self.maxpool_share, self.positives)

    def planted_check(self) -> dict[str, Any] | None:
        """How often each statistic names the planted modality: None without planted truth."""
        if self.planted is None:
            return None
        truth = [self.planted.get(name) for name in self.label_names]
        # a label without positives in this split cannot be checked
        checked = [i for i, t in enumerate(truth) if t is not None and self.positives[i] > 0]

        def score(top: list[str | None]) -> dict[str, Any]:
            hits = [top[i] == truth[i] for i in checked]
            return {
                "correct": int(sum(hits)),
                "labels": len(checked),
                "accuracy": float(np.mean(hits)) if hits else None,
            }

        return {
            "planted": {self.label_names[i]: truth[i] for i in checked},
            "attribution": score(self.attribution_top()),
            "maxpool_winner": score(self.maxpool_top()),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN becomes None)."""

        def rows(values: np.ndarray) -> dict[str, dict[str, float | None]]:
            return {
                name: {
                    m: (None if np.isnan(v) else float(v))
                    for m, v in zip(MODALITIES, row, strict=True)
                }
                for name, row in zip(self.label_names, values, strict=True)
            }

        return {
            "method": self.method,
            "split": self.split,
            "num_samples": self.num_samples,
            "positives": dict(zip(self.label_names, self.positives, strict=True)),
            "mean_contribution_over_positives": rows(self.contributions),
            "attribution_top": dict(zip(self.label_names, self.attribution_top(), strict=True)),
            "maxpool_winner_share_over_positives": rows(self.maxpool_share),
            "maxpool_winner_top": dict(zip(self.label_names, self.maxpool_top(), strict=True)),
            "planted_check": self.planted_check(),
        }


def _top(values: np.ndarray, positives: list[int]) -> list[str | None]:
    return [
        MODALITIES[int(np.argmax(row))] if n > 0 else None
        for row, n in zip(values, positives, strict=True)
    ]


@torch.no_grad()
def explain_split(
    model: nn.Module,
    split: SplitData,
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    split_name: str = "test",
    planted: dict[str, str] | None = None,
) -> ExplainResult:
    """Shapley contributions of every clip of ``split`` (batched, eval mode), averaged per
    label over its positives, with the max-pool winner share over the same clips."""
    if not isinstance(model, CARAT):
        raise CaratError(
            f"attribution needs a CARAT model (its masked path for absent modalities); "
            f"this one is {type(model).__name__}"
        )
    was_training = model.training
    model.eval()
    contributions, winners = [], []
    try:
        for start in range(0, len(split), batch_size):
            index = np.arange(start, min(start + batch_size, len(split)))
            attribution = shapley(model, make_batch(split, index, device))
            contributions.append(attribution.contributions.cpu().numpy())
            winners.append(attribution.maxpool_winner.cpu().numpy())
    finally:
        model.train(was_training)
    c = len(label_names)
    phi = np.concatenate(contributions) if contributions else np.zeros((0, c, len(MODALITIES)))
    won = np.concatenate(winners) if winners else np.zeros((0, c), np.int64)
    positive = split.labels >= 0.5  # [N,C]
    counts = positive.sum(axis=0)
    mean = np.full((c, len(MODALITIES)), np.nan)
    share = np.full((c, len(MODALITIES)), np.nan)
    for label in range(c):
        rows = positive[:, label]
        if rows.any():
            mean[label] = phi[rows, label].mean(axis=0)
            share[label] = np.bincount(won[rows, label], minlength=len(MODALITIES)) / rows.sum()
    return ExplainResult(
        label_names=list(label_names),
        split=split_name,
        num_samples=len(split),
        positives=[int(n) for n in counts],
        contributions=mean,
        maxpool_share=share,
        planted=planted,
    )


def explain_model(
    model_dir: str | Path,
    dataset: MultimodalDataset,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
) -> ExplainResult:
    """:func:`explain_split` for a saved model on one split of ``dataset``; planted truth is
    read from the dataset's sidecar when it has one (``carat-cli synth`` writes it)."""
    model, info, torch_device, data = load_for_split(model_dir, dataset, split, device)
    result = explain_split(
        model,
        data,
        dataset.label_names,
        batch_size or info.config.train.batch_size,
        torch_device,
        split_name=split,
        planted=read_planted(dataset.source),
    )
    log.info("%s on %s/%s: attribution by %s", model_dir, dataset.name, split, result.method)
    return result


def format_explain(result: ExplainResult) -> str:
    """The result as a plain-text table, with the planted check below it when there is one."""

    def cells(row: np.ndarray, fmt: str) -> str:
        return " ".join("      -" if np.isnan(v) else format(v, fmt) for v in row)

    heads = " ".join(f"{m:>7}" for m in MODALITIES)
    width = max(len(name) for name in [*result.label_names, "label"])
    lines = [
        f"left: mean contribution of each modality to p(label) over the label's positives "
        f"({result.method})",
        f"right: {MAXPOOL_NAME}, over the same clips",
        f"{'label':<{width}} {'n+':>5} {heads}  {'top':<7} | {heads}  {'top':<7}"
        + ("  planted" if result.planted else ""),
    ]
    tops, pool_tops = result.attribution_top(), result.maxpool_top()
    for i, name in enumerate(result.label_names):
        line = (
            f"{name:<{width}} {result.positives[i]:>5} {cells(result.contributions[i], '+7.3f')}"
            f"  {tops[i] or '-':<7} | {cells(result.maxpool_share[i], '7.2f')}"
            f"  {pool_tops[i] or '-':<7}"
        )
        if result.planted:
            line += f"  {result.planted.get(name, '-')}"
        lines.append(line)
    check = result.planted_check()
    if check is not None:
        lines.append("")
        lines.append("planted check (labels whose top modality is the planted carrier):")
        for key, title in (("attribution", result.method), ("maxpool_winner", "max-pool winner")):
            s = check[key]
            share = "-" if s["accuracy"] is None else f"{s['accuracy']:.2f}"
            lines.append(f"  {title:<16} {s['correct']}/{s['labels']} ({share})")
    return "\n".join(lines)
