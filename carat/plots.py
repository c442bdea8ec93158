"""PNG figures of a run: training curves, per-label F1, the max-pool map and the attribution map.

The max-pool map counts, for each label, how often each modality's classifier gives the largest
logit in the max-pool (CARAT-SPEC 1.9) on the test split: the paper's Figure 4 (a). It is titled
as what it is, not as an explanation: CARAT's reconstruction mixes every modality into every
modality's features, so the winner says little about where the evidence is. The attribution map
shows the mean Shapley contribution of each modality (``carat.explain``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from carat.data.types import MODALITIES  # noqa: E402
from carat.explain import MAXPOOL_NAME, ExplainResult  # noqa: E402


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Training loss, validation BCE and validation micro-F1 per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train loss")
    ax_loss.plot(epochs, [row["valid_bce"] for row in history], marker="o", label="valid BCE")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_f1.plot(epochs, [row["valid_micro_f1"] for row in history], marker="o", label="micro-F1")
    ax_f1.plot(epochs, [row["valid_macro_f1"] for row in history], marker="o", label="macro-F1")
    ax_f1.set_xlabel("epoch")
    ax_f1.set_ylabel("validation F1")
    ax_f1.set_ylim(0, 1)
    ax_f1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_per_label_f1(per_label: dict[str, dict[str, float]], path: Path) -> Path:
    """Test F1 of each label as bars, with precision and recall beside it."""
    names = list(per_label)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names)), 4))
    for offset, key in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1"), strict=True):
        ax.bar(x + offset, [per_label[n][key] for n in names], width=0.27, label=key)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def modality_label_map(winners: np.ndarray, num_labels: int) -> np.ndarray:
    """Fraction of samples in which each modality wins each label: ``[C, 3]``, rows sum to 1."""
    counts = np.stack([(winners == m).sum(axis=0) for m in range(len(MODALITIES))], axis=1).astype(
        np.float64
    )
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros((num_labels, len(MODALITIES))), where=total > 0)


def plot_modality_map(winners: np.ndarray, label_names: list[str], path: Path) -> Path:
    """Heat map of :func:`modality_label_map`, one row per label."""
    fractions = modality_label_map(winners, len(label_names))
    fig, ax = plt.subplots(figsize=(5, 0.5 * len(label_names) + 1.5))
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(MODALITIES)), MODALITIES)
    ax.set_yticks(range(len(label_names)), label_names)
    for (row, col), value in np.ndenumerate(fractions):
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(f"{MAXPOOL_NAME}\n(test, all clips)", fontsize=9)
    ax.set_xlabel("modality whose classifier wins the max-pool")
    fig.colorbar(image, ax=ax, label="share of clips")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_attribution_map(result: ExplainResult, path: Path) -> Path:
    """Two heat maps, labels x modalities, over each label's positives: the mean Shapley
    contribution (left, diverging around 0; the largest of each row boxed) and, beside it for
    comparison, the max-pool winner share. With planted truth, the planted cell is starred."""
    names = result.label_names
    fig, (ax_phi, ax_pool) = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 2.2))
    values = np.nan_to_num(result.contributions)
    bound = max(float(np.abs(values).max()), 1e-6)
    image = ax_phi.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    fig.colorbar(image, ax=ax_phi, label="mean contribution to p(label)")
    pool = ax_pool.imshow(
        np.nan_to_num(result.maxpool_share), cmap="Blues", vmin=0, vmax=1, aspect="auto"
    )
    fig.colorbar(pool, ax=ax_pool, label="share of positives")
    planted = result.planted or {}
    for ax, grid, fmt, dark in (
        (ax_phi, result.contributions, "+.3f", 0.6 * bound),
        (ax_pool, result.maxpool_share, ".2f", 0.6),
    ):
        ax.set_xticks(range(len(MODALITIES)), MODALITIES)
        ax.set_yticks(range(len(names)), names)
        for (row, col), value in np.ndenumerate(grid):
            star = "*" if planted.get(names[row]) == MODALITIES[col] else ""
            text = "-" if np.isnan(value) else format(value, fmt) + star
            color = "white" if abs(np.nan_to_num(value)) > dark else "black"
            ax.text(col, row, text, ha="center", va="center", fontsize=8, color=color)
    for row, top in enumerate(result.attribution_top()):
        if top is not None:
            col = MODALITIES.index(top)
            box = plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, lw=2, ec="black")
            ax_phi.add_patch(box)
    ax_phi.set_title(f"attribution: mean {result.method} contribution\n({result.split}, positives)")
    ax_pool.set_title(f"{MAXPOOL_NAME}\n({result.split}, positives)", fontsize=9)
    check = result.planted_check()
    if check is not None:
        a, m = check["attribution"], check["maxpool_winner"]
        fig.suptitle(
            f"* planted carrier. Top modality is the planted one: attribution "
            f"{a['correct']}/{a['labels']}, max-pool winner {m['correct']}/{m['labels']}",
            fontsize=9,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
