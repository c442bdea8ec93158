"""Numeric precision of training and evaluation (``train.precision``) and ``train.compile``.

``auto`` is bf16 autocast on CUDA (fp16 with loss scaling on GPUs without bf16) and fp32 on
CPU: on the CPUs we measured, bf16 matmuls are about 4x slower than fp32, so a bf16 or fp16
request on a CPU run logs one line and runs fp32.  fp16 needs a gradient scaler (its small
gradients underflow); bf16 and fp32 do not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """What a run computes in: ``fp32``, ``bf16`` or ``fp16`` autocast on ``device_type``."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16; a pass-through scaler otherwise."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def resolve_precision(name: str, device_type: str, bf16_supported: bool = True) -> Precision:
    """The precision a run on ``device_type`` uses when the config asks for ``name``.

    ``bf16_supported`` says whether the GPU has bf16 (``torch.cuda.is_bf16_supported()``).
    """
    if name not in ("auto", *DTYPES):
        raise ValueError(f"precision {name!r} is not one of auto, {', '.join(DTYPES)}")
    if device_type != "cuda":
        if name in ("bf16", "fp16"):
            log.warning("train.precision %s asked for on %s: running fp32", name, device_type)
        return Precision("fp32", device_type)
    if name == "auto":
        name = "bf16" if bf16_supported else "fp16"
    if name == "bf16" and not bf16_supported:
        log.warning("this GPU has no bf16: running fp16 with loss scaling")
        name = "fp16"
    return Precision(name, device_type)


def precision_for(name: str, device: torch.device) -> Precision:
    """:func:`resolve_precision` for a real device (asks CUDA whether it has bf16)."""
    on_cuda = device.type == "cuda"
    return resolve_precision(name, device.type, on_cuda and torch.cuda.is_bf16_supported())


def compiled_step(model: nn.Module, enabled: bool, backend: str = "inductor") -> Callable[..., Any]:
    """``model.training_step``, through ``torch.compile`` when ``enabled``.

    Only the step is compiled: the module itself (its ``state_dict`` keys, checkpoints, the
    saved model) stays the plain one.
    """
    if not enabled:
        return model.training_step
    log.info("compiling the training step with torch.compile (backend %s)", backend)
    return torch.compile(model.training_step, backend=backend)
