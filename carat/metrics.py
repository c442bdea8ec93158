"""Multi-label metrics, computed honestly (CARAT-SPEC 4).

The authors report example-based Jaccard accuracy (a sample whose truth and prediction are both
empty scores 0) and sklearn micro metrics, but call them as ``(prediction, truth)``, which swaps
precision and recall. Here every metric takes ``(truth, prediction)`` and precision is
TP / (TP + FP). Divisions by zero give 0, as sklearn's ``zero_division=0`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_THRESHOLD_GRID: tuple[float, ...] = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    return _ratio(2 * precision * recall, precision + recall)


def binarize(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The prediction rule of Eq. 16: a label is on when its score is strictly above."""
    return (np.asarray(scores) > threshold).astype(np.int64)


def jaccard_accuracy(y_true: np.ndarray, y_pred: np.ndarray, empty_ok: bool = False) -> float:
    """Mean over samples of |y ∩ ŷ| / |y ∪ ŷ|.

    With ``empty_ok=False`` (the authors' rule) a sample with both sets empty scores 0;
    with ``empty_ok=True`` it scores 1 (a correct "no emotion" answer).
    """
    y_true = np.asarray(y_true) > 0.5
    y_pred = np.asarray(y_pred) > 0.5
    inter = (y_true & y_pred).sum(axis=1)
    union = (y_true | y_pred).sum(axis=1)
    per_sample = _ratio(inter, union)
    if empty_ok:
        per_sample = np.where(union == 0, 1.0, per_sample)
    return float(per_sample.mean()) if len(per_sample) else 0.0


def multilabel_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str] | None = None
) -> dict[str, Any]:
    """All reported metrics for 0/1 matrices ``[N, C]`` (truth first, then prediction)."""
    y_true = (np.asarray(y_true) > 0.5).astype(np.int64)
    y_pred = (np.asarray(y_pred) > 0.5).astype(np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"truth {y_true.shape} and prediction {y_pred.shape} must both be [N, C]")
    tp = (y_true & y_pred).sum(axis=0)
    fp = ((1 - y_true) & y_pred).sum(axis=0)
    fn = (y_true & (1 - y_pred)).sum(axis=0)

    micro_p = float(_ratio(tp.sum(), tp.sum() + fp.sum()))
    micro_r = float(_ratio(tp.sum(), tp.sum() + fn.sum()))
    label_p = _ratio(tp, tp + fp)
    label_r = _ratio(tp, tp + fn)
    label_f1 = _f1(label_p, label_r)
    names = label_names or [str(i) for i in range(y_true.shape[1])]
    return {
        "acc": jaccard_accuracy(y_true, y_pred, empty_ok=False),
        "acc_empty_ok": jaccard_accuracy(y_true, y_pred, empty_ok=True),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": float(_f1(np.asarray(micro_p), np.asarray(micro_r))),
        "macro_f1": float(label_f1.mean()),
        "hamming_loss": float((y_true != y_pred).mean()),
        "num_samples": int(y_true.shape[0]),
        "per_label": {
            name: {
                "precision": float(label_p[i]),
                "recall": float(label_r[i]),
                "f1": float(label_f1[i]),
                "support": int(y_true[:, i].sum()),
            }
            for i, name in enumerate(names)
        },
    }


def score_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    label_names: list[str] | None = None,
) -> dict[str, Any]:
    """Metrics of probability scores at one threshold; the threshold is recorded with them."""
    metrics = multilabel_metrics(y_true, binarize(scores, threshold), label_names)
    metrics["threshold"] = float(threshold)
    return metrics


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true) > 0.5
    y_pred = np.asarray(y_pred) > 0.5
    tp = (y_true & y_pred).sum()
    return float(_ratio(2 * tp, y_true.sum() + y_pred.sum()))


def tune_threshold(
    y_true: np.ndarray, scores: np.ndarray, grid: tuple[float, ...] = DEFAULT_THRESHOLD_GRID
) -> float:
    """The grid threshold with the best micro-F1. Call it on the validation split only.

    Ties go to the lowest such threshold in the grid, so the choice is deterministic.
    """
    best_threshold, best_f1 = grid[0], -1.0
    for threshold in grid:
        f1 = micro_f1(y_true, binarize(scores, threshold))
        if f1 > best_f1:
            best_threshold, best_f1 = threshold, f1
    return float(best_threshold)


SUMMARY_METRICS: tuple[str, ...] = (
    "acc",
    "acc_empty_ok",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "macro_f1",
    "hamming_loss",
)


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table of the summary metrics and, when present, the per-label ones.

    Values are either floats or ``{"mean", "std"}`` dicts (several seeds).
    """

    def cell(value: Any) -> str:
        if isinstance(value, dict):
            return f"{value['mean']:.4f} ± {value['std']:.4f}"
        return f"{value:.4f}"

    lines = [f"{'metric':<16} value"]
    lines += [f"{name:<16} {cell(metrics[name])}" for name in SUMMARY_METRICS if name in metrics]
    per_label = metrics.get("per_label")
    if per_label:
        lines += ["", f"{'label':<16} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        for name, row in per_label.items():
            lines.append(
                f"{name:<16} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                f"{row['f1']:>9.4f} {row['support']:>8d}"
            )
    return "\n".join(lines)
