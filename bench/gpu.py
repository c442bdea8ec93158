"""Seconds per epoch and peak GPU memory of the aligned paper preset at MOSEI size, fp32 vs bf16.

The data is synthetic in the real layout: a MOSEI-size aligned ``train_valid_test.pt``
(16,326 / 1,871 / 4,659 clips of 60 steps, 300/35/74 dims; ``--scale`` shrinks it) written
like the authors' file, converted once by ``load_dataset`` and memory-mapped, as a real run
does.  One epoch per precision (the first ``--warmup`` steps are left out of the time and
counted back in proportionally), then the validation split is scored.  The authors report
about 58 s per epoch on one A100 for this preset.

Usage: ``bash bench/gpu.sh`` or ``python bench/gpu.py [--scale 1.0] [--precisions fp32,bf16]
[--device cuda]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import sizes_at, write_files  # noqa: E402

from carat.data import load_dataset  # noqa: E402
from carat.evaluate import make_batch, predict_split  # noqa: E402
from carat.train import _SeedTrainer, resolve_run_config  # noqa: E402

AUTHORS_S_PER_EPOCH = 58.0  # one A100, the aligned paper preset (CARAT issue reports)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def one_epoch(dataset, precision: str, device: str, warmup: int, work: Path) -> dict:
    overrides = [f"train.precision={precision}", f"train.device={device}"]
    cfg = resolve_run_config(dataset, "paper-mosei-aligned", overrides)
    trainer = _SeedTrainer(dataset, cfg, 1, work / precision, "bench", progress=False)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train = dataset.splits["train"]
    order = np.random.default_rng(0).permutation(len(train))
    steps = trainer.steps_per_epoch
    timed_from = min(warmup, steps - 1)
    for step in range(steps):
        if step == timed_from:
            sync(trainer.device)
            start = time.perf_counter()
        rows = order[step * cfg.train.batch_size : (step + 1) * cfg.train.batch_size]
        trainer.optimize(make_batch(train, rows, trainer.device), f"step {step}")
    sync(trainer.device)
    train_s = (time.perf_counter() - start) * steps / (steps - timed_from)
    start = time.perf_counter()
    predict_split(trainer.model, dataset.splits["valid"], 64, trainer.device, trainer.precision)
    sync(trainer.device)
    result = {
        "precision": trainer.precision.name,
        "steps": steps,
        "train_s": train_s,
        "valid_s": time.perf_counter() - start,
    }
    if trainer.device.type == "cuda":
        result["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of MOSEI's clips")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    args = parser.parse_args()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    sizes = sizes_at(args.scale)
    print(f"torch {torch.__version__} on {device_name}; MOSEI x {args.scale:g}: {sizes}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        write_files(work / "data", args.scale, unaligned=False)
        dataset = load_dataset("mosei", work / "data", cache_dir=work / "cache")
        print(f"data written and converted in {time.perf_counter() - started:.0f} s")
        for precision in args.precisions.split(","):
            r = one_epoch(dataset, precision, args.device, args.warmup, work)
            memory = f", peak GPU memory {r['peak_gpu_gb']:.2f} GB" if "peak_gpu_gb" in r else ""
            per_epoch = r["train_s"] + r["valid_s"]
            print(
                f"{r['precision']:>4}: {per_epoch:6.1f} s/epoch ({r['train_s']:.1f} s for "
                f"{r['steps']} training steps + {r['valid_s']:.1f} s validation){memory}; "
                f"authors ~{AUTHORS_S_PER_EPOCH:.0f} s/epoch (A100)"
            )


if __name__ == "__main__":
    main()
