"""The training loop: seeds, epochs, model selection on validation, one test pass, outputs.

Layout of a run directory::

    RUN_DIR/config.yaml           the fully resolved config
    RUN_DIR/metrics.json          test/valid metrics per seed and mean ± std over seeds
    RUN_DIR/model/                the model directory of the best seed (by validation micro-F1)
    RUN_DIR/plots/                that seed's figures (training curves, per-label F1, the
                                  max-pool winner map and the attribution map)
    RUN_DIR/seed_N/               per seed: checkpoint.pt, epochs.csv, epochs.json,
                                  metrics.json, model/, plots/

Each epoch ends with a checkpoint (weights, optimizer, prototype/queue buffers, every RNG
state, history and the best weights so far), so an interrupted run started again with the same
arguments resumes after the last finished epoch and ends with the same numbers; seeds already
finished are not trained again.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from carat import distributed
from carat.config import CaratConfig, ConfigError, load_config
from carat.data.fingerprint import dataset_fingerprint
from carat.data.synth import read_planted
from carat.data.types import Batch, MultimodalDataset
from carat.distributed import DistContext
from carat.errors import CaratError
from carat.evaluate import make_batch, predict_split, resolve_device
from carat.explain import explain_split
from carat.metrics import SUMMARY_METRICS, score_metrics, tune_threshold
from carat.model import CARAT
from carat.modeldir import (
    ModelInfo,
    build_model,
    dataset_summary,
    read_info,
    save_model,
    write_metrics,
)
from carat.modules import fit_input_standardization
from carat.optim import build_optimizer
from carat.plots import (
    plot_attribution_map,
    plot_modality_map,
    plot_per_label_f1,
    plot_training_curves,
)
from carat.precision import Precision, compiled_step, precision_for

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
DEFAULT_PRESETS = {
    "mosei": "paper-mosei-aligned",
    "mosei-unaligned": "paper-mosei-unaligned",
    "m3ed": "paper-m3ed",
}

EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class SeedResult:
    seed: int
    best_epoch: int
    threshold: float
    valid: dict[str, Any]
    test: dict[str, Any]
    run_dir: Path
    explain: dict[str, Any] | None = None  # carat.explain on the test split (CARAT only)


@dataclass
class RunResult:
    run_dir: Path
    model_dir: Path
    seeds: list[int]
    best_seed: int
    summary: dict[str, Any]
    per_seed: list[SeedResult] = field(default_factory=list)
    is_main: bool = True  # False on the other ranks of a distributed run


def default_preset(dataset_arg: str, dataset: MultimodalDataset) -> str:
    """The ``paper`` preset for a benchmark name; for a path, the one matching its alignment."""
    if dataset_arg in DEFAULT_PRESETS:
        return DEFAULT_PRESETS[dataset_arg]
    return "paper-mosei-aligned" if dataset.aligned else "paper-mosei-unaligned"


def resolve_run_config(
    dataset: MultimodalDataset,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    dataset_arg: str = "",
    epochs: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> CaratConfig:
    """Preset (the dataset's default if none) + overrides + CLI flags, fitted to the dataset:
    the one place a run's config is made."""
    shortcuts = [f"train.epochs={epochs}"] if epochs is not None else []
    shortcuts += [f"train.batch_size={batch_size}"] if batch_size is not None else []
    shortcuts += [f"train.device={device}"] if device is not None else []
    cfg = load_config(config or default_preset(dataset_arg, dataset), [*overrides, *shortcuts])
    return fit_to_dataset(cfg, dataset)


def fit_to_dataset(cfg: CaratConfig, dataset: MultimodalDataset) -> CaratConfig:
    """A copy of ``cfg`` whose label count, input dims, alignment and position table sizes
    come from the data (``cfg`` itself is left as it was)."""
    cfg = copy.deepcopy(cfg)
    if cfg.model.aligned != dataset.aligned:
        log.warning(
            "config says aligned=%s but dataset %s is %s; following the dataset",
            cfg.model.aligned,
            dataset.name,
            "aligned" if dataset.aligned else "unaligned",
        )
    cfg.model.aligned = dataset.aligned
    cfg.model.num_labels = dataset.num_labels
    cfg.model.dims = dict(dataset.dims)
    for modality, length in dataset.lengths.items():
        if length > cfg.model.max_positions.get(modality, 0):
            log.warning("%s sequences have %d steps: max_positions raised to it", modality, length)
            cfg.model.max_positions[modality] = length
    return cfg


def check_fitted(cfg: CaratConfig, dataset: MultimodalDataset) -> None:
    """Refuse a config that was not fitted to ``dataset`` (labels, dims, alignment)."""
    fitted = fit_to_dataset(cfg, dataset)
    if fitted.model != cfg.model:
        raise ConfigError(
            f"the config does not fit dataset {dataset.name} ({dataset.num_labels} labels, "
            f"dims {dataset.dims}, {'aligned' if dataset.aligned else 'unaligned'}); "
            "make it with resolve_run_config or fit_to_dataset"
        )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA); cuDNN deterministic as the authors'."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _rng_states(order_rng: np.random.Generator, model: nn.Module) -> dict[str, Any]:
    """Every RNG state as plain lists/ints/tensors, so ``weights_only=True`` can load it."""
    legacy = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            **legacy,
            "state": {"key": legacy["state"]["key"].tolist(), "pos": legacy["state"]["pos"]},
        },
        "torch": torch.get_rng_state(),
        "order": order_rng.bit_generator.state,
        "model": model.rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(
    states: dict[str, Any], order_rng: np.random.Generator, model: nn.Module
) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = states["numpy"]
    np.random.set_state(
        {
            **numpy_state,
            "state": {
                "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
                "pos": numpy_state["state"]["pos"],
            },
        }
    )
    torch.set_rng_state(states["torch"])
    order_rng.bit_generator.state = states["order"]
    model.rng.bit_generator.state = states["model"]
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _write_history(seed_dir: Path, history: list[dict[str, Any]]) -> None:
    _write_json(seed_dir / "epochs.json", history)
    columns = list(dict.fromkeys(key for row in history for key in row))
    with open(seed_dir / "epochs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def _bce(labels: np.ndarray, scores: np.ndarray) -> float:
    p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())


def _pick_threshold(cfg: CaratConfig, labels: np.ndarray, scores: np.ndarray) -> float:
    if cfg.eval.threshold == "tune":
        return tune_threshold(labels, scores)
    return float(cfg.eval.threshold)


class StepRunner:
    """One optimisation step: forward and losses in the run's precision, backward (scaled
    for fp16), gradients averaged over ranks, clipped, optimizer and schedule stepped."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        precision: Precision,
        cfg: CaratConfig,
        ctx: DistContext | None = None,
        compile_backend: str = "inductor",
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.precision = precision
        self.max_grad_norm = cfg.optim.max_grad_norm
        self.ctx = ctx
        self.scaler = precision.grad_scaler()
        self.training_step = compiled_step(model, cfg.train.compile, compile_backend)

    def __call__(self, batch: Batch, where: str) -> tuple[torch.Tensor, dict[str, Any]]:
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss, terms = self.training_step(batch)
        if not torch.isfinite(loss):
            raise CaratError(
                f"{where}: the loss is {loss.item()}; check the features for inf/NaN "
                "or lower optim.lr"
            )
        self.scaler.scale(loss).backward()
        if self.ctx is not None:
            distributed.average_gradients(self.model, self.ctx)
        self.scaler.unscale_(self.optimizer)
        if self.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, terms


class _SeedTrainer:
    """Trains one seed in ``seed_dir``; resumes from its checkpoint when one exists."""

    def __init__(
        self,
        dataset: MultimodalDataset,
        cfg: CaratConfig,
        seed: int,
        seed_dir: Path,
        fingerprint: str,
        progress: bool,
        ctx: DistContext | None = None,
    ) -> None:
        self.ctx = ctx
        self.is_main = ctx is None or ctx.is_main
        self.dataset = dataset
        self.cfg = cfg
        self.seed = seed
        self.seed_dir = seed_dir
        self.fingerprint = fingerprint
        self.progress = progress and self.is_main
        self.device = distributed.device_for(ctx, resolve_device(cfg.train.device))
        self.precision = precision_for(cfg.train.precision, self.device)
        self.train_split = dataset.splits["train"]
        batch_size = cfg.train.batch_size
        n_train = len(self.train_split)
        self.steps_per_epoch = (
            n_train // batch_size if cfg.train.drop_last else math.ceil(n_train / batch_size)
        )
        if self.steps_per_epoch == 0:
            raise CaratError(
                f"dataset {dataset.name}: {n_train} training samples are fewer than one batch "
                f"of {batch_size}; lower --batch-size"
            )
        self.local_batch = distributed.local_batch_size(ctx, batch_size)
        if ctx is not None and not cfg.train.drop_last:
            raise CaratError("distributed training needs train.drop_last: true (equal batches)")

        seed_everything(seed)
        self.model = build_model(cfg)
        fit_input_standardization(self.model, self.train_split)  # no-op unless configured
        self.model.to(self.device)
        streams = np.random.SeedSequence(seed).spawn(2)
        self.model.rng = np.random.default_rng(streams[0])
        self.order_rng = np.random.default_rng(streams[1])
        if ctx is not None:
            distributed.broadcast_parameters(self.model)
            distributed.share_state_updates(self.model)
            torch.manual_seed(seed + 7919 * ctx.rank)  # each rank its own dropout masks
        self.optimizer, self.scheduler = build_optimizer(
            self.model, cfg.optim, self.steps_per_epoch * cfg.train.epochs
        )
        self.optimize = StepRunner(
            self.model, self.optimizer, self.scheduler, self.precision, cfg, ctx
        )
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": -1, "f1": -1.0, "threshold": 0.0, "state": None}

    def checkpoint(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "config": self.cfg.to_dict(),
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.optimize.scaler.state_dict(),
            "rng": self._all_rng_states(),
            "history": self.history,
            "best": self.best,
        }

    def _all_rng_states(self) -> dict[str, Any] | list[dict[str, Any]]:
        """One process: its RNG states; several: every rank's, in rank order."""
        states = _rng_states(self.order_rng, self.model)
        return states if self.ctx is None else distributed.gather_objects(states)

    def resume(self) -> None:
        path = self.seed_dir / CHECKPOINT
        if not path.exists():
            return
        # on CPU: RNG states must stay there; load_state_dict moves the rest to the device
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["config"] != self.cfg.to_dict() or state["fingerprint"] != self.fingerprint:
            raise CaratError(
                f"{path}: this checkpoint belongs to a run with another config or dataset; "
                "use a new --out folder or delete the old one"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.optimize.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        if isinstance(rng, list) != (self.ctx is not None) or (
            self.ctx is not None and len(rng) != self.ctx.world
        ):
            raise CaratError(
                f"{path}: the checkpoint was written by another number of processes; "
                "resume with the same torchrun --nproc-per-node"
            )
        _restore_rng_states(
            rng if self.ctx is None else rng[self.ctx.rank], self.order_rng, self.model
        )
        self.epoch = state["epoch"]
        self.history = state["history"]
        self.best = state["best"]
        log.info("seed %d: resumed after epoch %d from %s", self.seed, self.epoch, path)

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        batch_size = self.cfg.train.batch_size
        order = self.order_rng.permutation(len(self.train_split))
        totals: dict[str, float] = {}
        bar = tqdm(
            range(self.steps_per_epoch),
            desc=f"seed {self.seed} epoch {self.epoch + 1}/{self.cfg.train.epochs}",
            disable=not self.progress,
            leave=False,
        )
        for step in bar:
            index = order[step * batch_size : (step + 1) * batch_size]
            if self.ctx is not None:  # this rank's slice of the global batch
                index = index[
                    self.ctx.rank * self.local_batch : (self.ctx.rank + 1) * self.local_batch
                ]
            batch = make_batch(self.train_split, index, self.device)
            where = f"seed {self.seed}, epoch {self.epoch + 1}, step {step + 1}"
            loss, terms = self.optimize(batch, where)
            for key, value in {"loss": loss.detach(), **terms}.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        return {f"train_{key}": value / self.steps_per_epoch for key, value in totals.items()}

    def validate(self) -> tuple[dict[str, Any], float]:
        """Rank 0 scores the validation split; every rank gets its result."""
        if self.ctx is None:
            return self._validate()
        return distributed.broadcast_object(self._validate() if self.is_main else None)

    def _validate(self) -> tuple[dict[str, Any], float]:
        split = self.dataset.splits["valid"]
        preds = predict_split(
            self.model, split, self.cfg.train.batch_size, self.device, self.precision
        )
        threshold = _pick_threshold(self.cfg, split.labels, preds.scores)
        metrics = score_metrics(split.labels, preds.scores, threshold, self.dataset.label_names)
        metrics["bce"] = _bce(split.labels, preds.scores)
        return metrics, threshold

    def run(self, on_epoch_end: EpochCallback | None) -> None:
        self.resume()
        while self.epoch < self.cfg.train.epochs:
            row: dict[str, Any] = {"epoch": self.epoch + 1, **self.train_epoch()}
            valid, threshold = self.validate()
            row.update({f"valid_{k}": v for k, v in valid.items() if k in SUMMARY_METRICS})
            row.update({"valid_bce": valid["bce"], "threshold": threshold})
            if valid["micro_f1"] >= self.best["f1"]:
                state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                self.best = {
                    "epoch": self.epoch + 1,
                    "f1": valid["micro_f1"],
                    "threshold": threshold,
                    "state": state,
                }
            self.epoch += 1
            self.history.append(row)
            if self.ctx is not None:
                distributed.check_in_sync(self.model)
            checkpoint = self.checkpoint()  # every rank takes part (RNG states are gathered)
            if self.is_main:
                _write_history(self.seed_dir, self.history)
                _atomic_torch_save(checkpoint, self.seed_dir / CHECKPOINT)
            log.info(
                "seed %d epoch %d: train loss %.4f, valid micro-F1 %.4f",
                self.seed,
                self.epoch,
                row["train_loss"],
                valid["micro_f1"],
            )
            if on_epoch_end is not None:
                on_epoch_end(self.epoch, row)

    def finish(self) -> None:
        """Reload the best epoch's weights, score valid and test once, attribute the test
        split once (CARAT), save model and plots."""
        self.model.load_state_dict(self.best["state"])
        threshold = self.best["threshold"]
        results = {}
        winners = None
        for split_name in ("valid", "test"):
            split = self.dataset.splits[split_name]
            preds = predict_split(
                self.model, split, self.cfg.train.batch_size, self.device, self.precision
            )
            metrics = score_metrics(split.labels, preds.scores, threshold, self.dataset.label_names)
            results[split_name] = metrics
            winners = preds.winners
        explanation = None
        if isinstance(self.model, CARAT):
            explanation = explain_split(
                self.model,
                self.dataset.splits["test"],
                self.dataset.label_names,
                self.cfg.train.batch_size,
                self.device,
                planted=read_planted(self.dataset.source),
            )
        result = SeedResult(
            seed=self.seed,
            best_epoch=self.best["epoch"],
            threshold=threshold,
            valid=results["valid"],
            test=results["test"],
            run_dir=self.seed_dir,
            explain=None if explanation is None else explanation.to_dict(),
        )
        seed_metrics = _seed_metrics(result)
        save_model(self.model, self.seed_dir / "model", self.model_info(seed_metrics))
        plots = self.seed_dir / "plots"
        plots.mkdir(exist_ok=True)
        plot_training_curves(self.history, plots / "training_curves.png")
        plot_per_label_f1(result.test["per_label"], plots / "per_label_f1.png")
        if winners is not None:
            plot_modality_map(winners, self.dataset.label_names, plots / "modality_label_map.png")
        if explanation is not None:
            plot_attribution_map(explanation, plots / "attribution_map.png")
        _write_json(self.seed_dir / "metrics.json", seed_metrics)

    def model_info(self, metrics: dict[str, Any]) -> ModelInfo:
        return ModelInfo(
            config=self.cfg,
            label_names=list(self.dataset.label_names),
            threshold=self.best["threshold"],
            feature_spec=self.dataset.feature_spec,
            dataset=dataset_summary(self.dataset, self.fingerprint),
            metrics=metrics,
        )


def _seed_metrics(result: SeedResult) -> dict[str, Any]:
    metrics = {
        "seeds": [result.seed],
        "seed": result.seed,
        "best_epoch": result.best_epoch,
        "threshold": result.threshold,
        "valid": result.valid,
        "test": result.test,
    }
    if result.explain is not None:
        metrics["explain"] = result.explain
    return metrics


def _seed_result(seed_dir: Path) -> SeedResult:
    data = json.loads((seed_dir / "metrics.json").read_text())
    return SeedResult(
        seed=data["seed"],
        best_epoch=data["best_epoch"],
        threshold=data["threshold"],
        valid=data["valid"],
        test=data["test"],
        run_dir=seed_dir,
        explain=data.get("explain"),
    )


def summarize(results: list[SeedResult]) -> dict[str, Any]:
    """Mean ± std (sample std; 0 for one seed) of each summary metric over seeds."""

    def stats(split: str, name: str) -> dict[str, Any]:
        values = [float(getattr(r, split)[name]) for r in results]
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return {"mean": float(np.mean(values)), "std": std, "values": values}

    best = max(results, key=lambda r: r.valid["micro_f1"])
    summary = {
        "seeds": [r.seed for r in results],
        "best_seed": best.seed,
        "threshold": best.threshold,
        "valid": {name: stats("valid", name) for name in SUMMARY_METRICS},
        "test": {name: stats("test", name) for name in SUMMARY_METRICS},
        "per_seed": {
            str(r.seed): {
                "best_epoch": r.best_epoch,
                "threshold": r.threshold,
                "valid": r.valid,
                "test": r.test,
            }
            for r in results
        },
    }
    if best.explain is not None:  # the saved model is the best seed's
        summary["explain"] = best.explain
    for r in results:
        if r.explain is not None and r.explain.get("planted_check") is not None:
            summary["per_seed"][str(r.seed)]["planted_check"] = r.explain["planted_check"]
    return summary


def _check_run_dir(run_dir: Path, cfg: CaratConfig) -> None:
    """A run directory holds one config; a second run with another config is refused."""
    saved = run_dir / "config.yaml"
    if saved.exists() and yaml.safe_load(saved.read_text()) != cfg.to_dict():
        raise CaratError(
            f"{saved}: {run_dir} already holds a run with a different config; "
            "use a new --out folder (or delete the old run) to start another"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def run_training(
    dataset: MultimodalDataset,
    cfg: CaratConfig,
    out_dir: str | Path,
    seeds: list[int] | None = None,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
) -> RunResult:
    """Train one model per seed, pick the best seed on validation, write the run directory.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains its share of each batch and
    rank 0 evaluates and writes the same layout as a single process.
    """
    run_dir = Path(out_dir)
    check_fitted(cfg, dataset)
    seeds = list(seeds) if seeds else [cfg.train.seed]
    cfg = copy.deepcopy(cfg)
    cfg.train.seed = seeds[0]  # the saved config names the run's first seed
    ctx = distributed.init_from_env(cfg.train.device)
    is_main = ctx is None or ctx.is_main
    if is_main:
        _check_run_dir(run_dir, cfg)
    distributed.barrier()
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    elif ctx is not None:
        torch.set_num_threads(1)  # several processes share the cores
    fingerprint = dataset_fingerprint(dataset)
    results = []
    for seed in seeds:
        seed_dir = run_dir / f"seed_{seed}"
        if (seed_dir / "metrics.json").exists():
            log.info("seed %d already finished in %s", seed, seed_dir)
            results.append(_seed_result(seed_dir))
            continue
        seed_dir.mkdir(parents=True, exist_ok=True)
        seed_cfg = copy.deepcopy(cfg)
        seed_cfg.train.seed = seed
        trainer = _SeedTrainer(dataset, seed_cfg, seed, seed_dir, fingerprint, progress, ctx)
        trainer.run(on_epoch_end)
        if is_main:
            trainer.finish()
        distributed.barrier()
        results.append(_seed_result(seed_dir))

    summary = summarize(results)
    model_dir = run_dir / "model"
    if is_main:
        best_dir = run_dir / f"seed_{summary['best_seed']}"
        shutil.copytree(best_dir / "model", model_dir, dirs_exist_ok=True)
        shutil.copytree(best_dir / "plots", run_dir / "plots", dirs_exist_ok=True)
        info = read_info(model_dir)
        info.metrics = summary
        write_metrics(model_dir, info)
        _write_json(run_dir / "metrics.json", summary)
        log.info("run finished: %s", run_dir)
    distributed.barrier()
    distributed.shutdown(ctx)
    return RunResult(
        run_dir=run_dir,
        model_dir=model_dir,
        seeds=seeds,
        best_seed=summary["best_seed"],
        summary=summary,
        per_seed=results,
        is_main=is_main,
    )
