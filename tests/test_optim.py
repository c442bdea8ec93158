"""BertAdam against a direct formula, the schedule, parameter groups and the factory."""

import numpy as np
import pytest
import torch
from torch import nn

from carat.config import ConfigError, OptimConfig
from carat.optim import BertAdam, build_optimizer, parameter_groups, warmup_linear


def test_warmup_linear_shape():
    assert warmup_linear(0.0, 0.1) == 0.0
    assert warmup_linear(0.05, 0.1) == pytest.approx(0.5)
    assert warmup_linear(0.1, 0.1) == pytest.approx(1.0)
    assert warmup_linear(0.55, 0.1) == pytest.approx(0.5)
    assert warmup_linear(1.0, 0.1) == pytest.approx(0.0)


def reference_bertadam(p0, grads, lr, warmup, t_total, wd, eps=1e-6, b1=0.9, b2=0.999, clip=1.0):
    """Direct float64 transcription of CARAT-SPEC 2's BertAdam."""
    p = p0.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for step, g in enumerate(grads):
        g = g.astype(np.float64)
        norm = np.linalg.norm(g)
        if norm > clip:
            g = g * clip / (norm + 1e-6)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        update = m / (np.sqrt(v) + eps) + wd * p
        x = step / t_total
        mult = x / warmup if x < warmup else (1 - x) / (1 - warmup)
        p = p - lr * mult * update
    return p


def test_bertadam_matches_direct_formula_and_first_step_has_lr_zero():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5,)).astype(np.float32)
    # one gradient with norm above 1 exercises the per-parameter clipping
    grads = [rng.normal(size=(5,)).astype(np.float32) * s for s in (0.1, 3.0, 0.5, 0.2, 1.5)]
    param = nn.Parameter(torch.tensor(p0))
    opt = BertAdam([param], lr=0.1, warmup=0.2, t_total=10, weight_decay=0.01)
    for i, g in enumerate(grads):
        param.grad = torch.tensor(g)
        opt.step()
        if i == 0:
            assert torch.equal(param.detach(), torch.tensor(p0)), "first update must have lr 0"
        expected = reference_bertadam(p0, grads[: i + 1], 0.1, 0.2, 10, 0.01)
        np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(param.detach().numpy(), p0)


def test_weight_decay_skips_biases_and_layernorm():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    decay, no_decay = parameter_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[2].bias),
    }


def test_adamw_schedule_warms_up_then_decays():
    model = nn.Linear(2, 1)
    opt, sched = build_optimizer(model, OptimConfig(name="adamw", lr=1.0, warmup=0.5), 4)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.5])


def test_factory_builds_bertadam_and_refuses_unknown_names():
    model = nn.Linear(2, 1)
    opt, sched = build_optimizer(model, OptimConfig(), 100)
    assert isinstance(opt, BertAdam) and sched is None
    assert opt.param_groups[0]["t_total"] == 100
    with pytest.raises(ConfigError, match="sgd"):
        build_optimizer(model, OptimConfig(name="sgd"), 100)
