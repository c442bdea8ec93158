"""PNG figures of a run: training curves, per-label F1, and the modality-to-label map.

The map counts, for each label, how often each modality's classifier gives the largest logit
in the max-pool (CARAT-SPEC 1.9) on the test split: the paper's Figure 4 (a).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from carat.data.types import MODALITIES  # noqa: E402


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
    ax.set_title("modality winning each label's max-pool (test)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
