"""Scoring a split with a model, in order, with every sample kept (CARAT-SPEC 4).

The authors' validation loader shuffles and drops the last partial batch; here evaluation walks
the split front to back in fixed-size slices and keeps the remainder, so the same model always
gets the same numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from carat.data.types import MODALITIES, Batch, MultimodalDataset, SplitData
from carat.errors import CaratError
from carat.metrics import score_metrics
from carat.modeldir import ModelInfo, load_model
from carat.precision import Precision, precision_for

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Scores ``[N, C]`` in split order, and which modality won each label's max-pool (or None)."""

    scores: np.ndarray
    winners: np.ndarray | None


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CaratError("--device cuda was asked for but torch sees no CUDA device; use cpu")
    if name not in {"cpu", "cuda"}:
        raise CaratError(f"device {name!r} is not one of: auto, cpu, cuda")
    return torch.device(name)


def to_device(rows: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Rows gathered on the host, as ``dtype`` on ``device``.

    For a GPU the rows go through pinned (page-locked) memory and are copied without blocking,
    so the copy overlaps the work already queued on the GPU.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(rows)).to(dtype)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=tensor.is_pinned())


def make_batch(split: SplitData, index: np.ndarray, device: torch.device) -> Batch:
    """Copy the rows ``index`` of a split (in memory or memory-mapped) into tensors."""
    return Batch(
        features={
            m: to_device(split.features[m][index], device, torch.float32) for m in MODALITIES
        },
        masks={m: to_device(split.masks[m][index], device, torch.int64) for m in MODALITIES},
        labels=to_device(split.labels[index], device, torch.float32),
    )


@torch.no_grad()
def predict_split(
    model: nn.Module,
    split: SplitData,
    batch_size: int,
    device: torch.device,
    precision: Precision | None = None,
) -> Predictions:
    """Score every sample of ``split`` in order (eval mode, no shuffling, nothing dropped),
    in ``precision`` (the device's ``auto`` precision when not given)."""
    precision = precision or precision_for("auto", device)
    was_training = model.training
    model.eval()
    scores, winners = [], []
    try:
        for start in range(0, len(split), batch_size):
            index = np.arange(start, min(start + batch_size, len(split)))
            with precision.autocast():
                out = model(make_batch(split, index, device))
            scores.append(out.scores.float().cpu().numpy())
            if getattr(out, "winner", None) is not None:
                winners.append(out.winner.cpu().numpy())
    finally:
        model.train(was_training)
    num_labels = len(split.labels[0]) if len(split) else 0
    return Predictions(
        scores=np.concatenate(scores) if scores else np.zeros((0, num_labels), np.float32),
        winners=np.concatenate(winners) if winners else None,
    )


def check_compatible(info: ModelInfo, dataset: MultimodalDataset, model_dir: Path) -> None:
    """Refuse a dataset whose labels or feature dims differ from what the model was trained on."""
    where = dataset.source or dataset.name
    kind = "aligned" if info.config.model.aligned else "unaligned"
    if list(info.label_names) != list(dataset.label_names):
        raise CaratError(
            f"{model_dir}: the model predicts labels {info.label_names} but dataset "
            f"{where} has {dataset.label_names}; evaluate on the same labels"
        )
    dims = info.config.model.dims
    if dict(dims) != dataset.dims:
        raise CaratError(
            f"{model_dir}: the model expects feature dims {dict(dims)} but dataset "
            f"{where} has {dataset.dims}; use features built the same way"
        )
    if info.config.model.aligned != dataset.aligned:
        raise CaratError(
            f"{model_dir}: the model was trained on {kind} data but dataset {where} is not; "
            "use the matching dataset"
        )


def load_for_split(
    model_dir: str | Path, dataset: MultimodalDataset, split: str, device: str = "auto"
) -> tuple[nn.Module, ModelInfo, torch.device, SplitData]:
    """A saved model checked against ``dataset``, its device, and the split it will read; one
    clear error for a split the dataset lacks or a model that does not fit it."""
    model_dir = Path(model_dir)
    if split not in dataset.splits:
        raise CaratError(
            f"dataset {dataset.name} has no split {split!r}; use one of {list(dataset.splits)}"
        )
    torch_device = resolve_device(device)
    model, info = load_model(model_dir, device=torch_device)
    check_compatible(info, dataset, model_dir)
    return model, info, torch_device, dataset.splits[split]


def evaluate_model(
    model_dir: str | Path,
    dataset: MultimodalDataset,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of a saved model on one split of ``dataset``, at the model's own threshold."""
    model, info, torch_device, data = load_for_split(model_dir, dataset, split, device)
    precision = precision_for(info.config.train.precision, torch_device)
    batch_size = batch_size or info.config.train.batch_size
    preds = predict_split(model, data, batch_size, torch_device, precision)
    metrics = score_metrics(data.labels, preds.scores, info.threshold, dataset.label_names)
    metrics["split"] = split
    log.info("%s on %s/%s: micro-F1 %.4f", model_dir, dataset.name, split, metrics["micro_f1"])
    return metrics
