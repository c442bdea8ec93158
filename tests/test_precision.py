"""Precision, loss scaling, compiling and device copies: every line that differs on CUDA runs
here on CPU (only the device calls themselves need a GPU)."""

import logging

import numpy as np
import pytest
import torch
from test_configs import SHRINK, tiny_dataset

from carat.config import ConfigError, load_config
from carat.evaluate import make_batch, to_device
from carat.modeldir import build_model
from carat.optim import build_optimizer
from carat.precision import Precision, compiled_step, resolve_precision
from carat.train import StepRunner, fit_to_dataset


@pytest.mark.parametrize(
    ("asked", "device", "bf16", "runs"),
    [
        ("auto", "cpu", False, "fp32"),
        ("bf16", "cpu", False, "fp32"),
        ("fp16", "cpu", True, "fp32"),
        ("auto", "cuda", True, "bf16"),
        ("auto", "cuda", False, "fp16"),
        ("bf16", "cuda", False, "fp16"),
        ("fp16", "cuda", True, "fp16"),
        ("fp32", "cuda", True, "fp32"),
    ],
)
def test_precision_follows_the_device(asked, device, bf16, runs, caplog):
    with caplog.at_level(logging.WARNING, logger="carat.precision"):
        assert resolve_precision(asked, device, bf16) == Precision(runs, device)
    assert bool(caplog.records) == (asked not in ("auto", runs))  # one line when overruled


def test_precision_values_are_checked_when_the_config_is_read():
    assert load_config("paper-mosei-aligned").train.precision == "auto"
    with pytest.raises(ConfigError, match=r"'train.precision' is 'fp8'; use one of"):
        load_config("paper-mosei-aligned", ["train.precision=fp8"])
    with pytest.raises(ValueError, match="precision 'fp8'"):
        resolve_precision("fp8", "cuda")


def _runner(precision: Precision, compile_backend: str | None = None):
    dataset = tiny_dataset(6, aligned=True, n=8)
    overrides = [*SHRINK, f"train.compile={compile_backend is not None}", "optim.name=adamw"]
    cfg = fit_to_dataset(load_config("paper-mosei-aligned", overrides), dataset)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer, scheduler = build_optimizer(model, cfg.optim, total_steps=4)
    runner = StepRunner(
        model, optimizer, scheduler, precision, cfg, compile_backend=compile_backend or "eager"
    )
    batch = make_batch(dataset.splits["train"], np.arange(8), torch.device("cpu"))
    return model, runner, batch


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_a_step_in_each_precision_moves_the_weights(name):
    model, runner, batch = _runner(Precision(name, "cpu"))
    before = [p.detach().clone() for p in model.parameters()]
    # fp16 starts at a loss scale of 2^16 and skips the steps whose gradients overflow, halving
    # the scale each time, until the gradients fit
    for step in range(24 if name == "fp16" else 2):
        loss, terms = runner(batch, f"step {step}")
        assert torch.isfinite(loss), terms
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    scaler_state = runner.scaler.state_dict()
    assert bool(scaler_state) == (name == "fp16")  # loss scaling for fp16 only
    if name == "fp16":
        assert 0 < scaler_state["scale"] < 2.0**16


def test_compiled_step_gives_the_plain_step_loss():
    plain_model, plain, batch = _runner(Precision("fp32", "cpu"))
    compiled_model, compiled, _ = _runner(Precision("fp32", "cpu"), compile_backend="eager")
    assert compiled.training_step is not compiled_model.training_step
    assert plain.training_step == plain_model.training_step
    torch.manual_seed(1)  # the same dropout masks for both
    plain_loss, _ = plain(batch, "plain")
    torch.manual_seed(1)
    compiled_loss, _ = compiled(batch, "compiled")
    torch.testing.assert_close(plain_loss, compiled_loss)
    assert set(compiled_model.state_dict()) == set(plain_model.state_dict())  # no wrapper keys


def test_compiled_step_is_the_method_itself_when_off():
    model, _, _ = _runner(Precision("fp32", "cpu"))
    assert compiled_step(model, enabled=False) == model.training_step


def test_host_rows_reach_the_device_in_the_asked_dtype():
    rows = np.arange(12, dtype=np.int8).reshape(3, 4)[:, ::2]  # not contiguous
    tensor = to_device(rows, torch.device("cpu"), torch.int64)
    assert tensor.dtype == torch.int64 and tensor.tolist() == rows.tolist()
    assert not tensor.is_pinned()  # page-locking is for copies to a GPU only
