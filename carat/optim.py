"""Optimizers: the authors' BertAdam (CARAT-SPEC 2) and AdamW with a linear warm-up/decay.

BertAdam differs from Adam(W) in ways that change results, so it is reproduced exactly:
no bias correction, eps 1e-6, weight decay added to the update before the learning rate, the
learning-rate multiplier taken from the step count *before* it is incremented (the first update
has lr 0), and each parameter's gradient clipped to norm 1.0 on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from carat.config import ConfigError, OptimConfig


def warmup_linear(progress: float, warmup: float) -> float:
    """``x / warmup`` while ``x < warmup``, then a linear decay ``(1 - x) / (1 - warmup)`` to 0."""
    if progress < warmup:
        return progress / warmup
    return max((1.0 - progress) / (1.0 - warmup), 0.0)


class BertAdam(torch.optim.Optimizer):
    """Adam without bias correction, with decoupled weight decay and a built-in schedule.

    ``t_total`` is the number of optimizer steps of the whole run; ``t_total <= 0`` keeps the
    learning rate constant.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        warmup: float = 0.1,
        t_total: int = -1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
    ) -> None:
        if lr < 0.0 or not 0.0 <= warmup < 1.0 or eps < 0.0:
            raise ConfigError(f"BertAdam: invalid lr {lr}, warmup {warmup} or eps {eps}")
        defaults = dict(
            lr=lr,
            warmup=warmup,
            t_total=t_total,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            max_grad_norm=max_grad_norm,
        )
        super().__init__(params, defaults)

    def scheduled_lr(self, group: dict[str, Any], step: int) -> float:
        if group["t_total"] <= 0:
            return group["lr"]
        return group["lr"] * warmup_linear(step / group["t_total"], group["warmup"])

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                if group["max_grad_norm"] > 0:
                    nn.utils.clip_grad_norm_(param, group["max_grad_norm"])
                grad = param.grad
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = exp_avg / (exp_avg_sq.sqrt() + group["eps"])
                if group["weight_decay"] > 0.0:
                    update.add_(param, alpha=group["weight_decay"])
                param.add_(update, alpha=-self.scheduled_lr(group, state["step"]))
                state["step"] += 1
        return loss


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on everything except biases and LayerNorm parameters (the authors' rule)."""
    norm_params = {
        id(p)
        for module in model.modules()
        if isinstance(module, nn.LayerNorm)
        for p in module.parameters()
    }
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith("bias") or id(param) in norm_params:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimizer named by ``cfg.name`` and its scheduler (``None``: BertAdam has its own)."""
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.name == "bertadam":
        optimizer = BertAdam(
            groups,
            lr=cfg.lr,
            warmup=cfg.warmup,
            t_total=total_steps,
            max_grad_norm=cfg.max_grad_norm,
        )
        return optimizer, None
    if cfg.name == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_linear(step / max(total_steps, 1), cfg.warmup)
        )
        return optimizer, scheduler
    raise ConfigError(f"optim.name {cfg.name!r} is not one of: bertadam, adamw")
