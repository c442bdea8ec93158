"""Benchmark files at MOSEI size: conversion time and peak memory, then what a run needs.

Writes synthetic files in the real layouts at a fraction of MOSEI's size (16,326 / 1,871 /
4,659 clips): the aligned CARAT ``train_valid_test.pt`` (60 steps of 300/35/74 dims, one
float32 array per split and modality, as the authors' file) and the unaligned MulT pickle
``mosei_senti_data_noalign.pkl`` (text 50 x 300, vision 500 x 35, audio 500 x 74) beside it.
Each measurement runs in a fresh process, so peaks do not mix:

- ``convert``: the first ``load_dataset`` (conversion into the cache): wall and CPU seconds,
  peak RSS (``VmHWM``) and its ratio to the file size;
- ``first-step``: a second run: seconds from the process start to the first training step
  (the paper preset, batch 64) starting;
- ``train`` / ``eval``: peak anonymous memory (``RssAnon``, sampled every 10 ms: mapped
  file pages the kernel can drop do not count) over training steps at batch 64 and over
  scoring the validation split, and the process's peak RSS (``VmHWM``, mapped pages included).

Usage::

    python bench/convert.py [--scales 0.125,0.25] [--unaligned-scales 0.0625,0.125]
                            [--work DIR] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MOSEI_SIZES = {"train": 16326, "valid": 1871, "test": 4659}
ALIGNED = {"text": (60, 300), "visual": (60, 35), "audio": (60, 74)}
UNALIGNED = {"text": (50, 300), "vision": (500, 35), "audio": (500, 74)}
PT_KEYS = {"text": "src-text", "visual": "src-visual", "audio": "src-audio"}


def sizes_at(scale: float) -> dict[str, int]:
    return {split: max(64, round(n * scale)) for split, n in MOSEI_SIZES.items()}


def write_files(folder: Path, scale: float, unaligned: bool) -> None:
    """The aligned .pt (and the MulT pickle) at ``scale`` of MOSEI, written by torch/pickle."""
    import torch

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = sizes_at(scale)
    pt: dict[str, object] = {}
    for split, n in sizes.items():
        part: dict[str, object] = {
            PT_KEYS[m]: rng.standard_normal((n, steps, dim), dtype=np.float32)
            for m, (steps, dim) in ALIGNED.items()
        }
        part["tgt"] = [[2, 4 + int(i % 6), 3] for i in range(n)]
        pt[split] = part
    torch.save(pt, folder / "train_valid_test.pt")
    del pt
    if not unaligned:
        return
    mult: dict[str, object] = {}
    for split, n in sizes.items():
        part = {
            key: rng.standard_normal((n, steps, dim), dtype=np.float32)
            for key, (steps, dim) in UNALIGNED.items()
        }
        part["labels"] = np.zeros((n, 1, 1), np.float32)
        mult[split] = part
    with open(folder / "mosei_senti_data_noalign.pkl", "wb") as handle:
        pickle.dump(mult, handle, protocol=4)


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class AnonPeak:
    """Peak ``RssAnon`` of this process, sampled on a thread."""

    def __init__(self) -> None:
        self.peak_kb = status_kb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_kb = max(self.peak_kb, status_kb("RssAnon"))

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, status_kb("RssAnon"))


def child(args: argparse.Namespace) -> dict:
    started_wall = float(args.started)
    from carat.data import load_dataset

    name = args.dataset
    if args.what == "convert":
        import torch  # noqa: F401  (counted in the base, as in any run)

        base_gb = status_kb("VmRSS") / 2**20
        wall, cpu = time.perf_counter(), time.process_time()
        dataset = load_dataset(name, args.data, cache_dir=args.cache)
        return {
            "seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
            "peak_rss_gb": status_kb("VmHWM") / 2**20,
            "base_rss_gb": base_gb,
            "clips": sum(len(s) for s in dataset.splits.values()),
        }
    import torch

    from carat.evaluate import make_batch, predict_split
    from carat.train import _SeedTrainer, resolve_run_config

    dataset = load_dataset(name, args.data, cache_dir=args.cache)
    preset = "paper-mosei-aligned" if name == "mosei" else "paper-mosei-unaligned"
    cfg = resolve_run_config(dataset, preset, ["train.batch_size=64"])
    out = Path(tempfile.mkdtemp())
    trainer = _SeedTrainer(dataset, cfg, 1, out, "bench", progress=False)
    order = np.arange(len(dataset.splits["train"]))
    result: dict[str, float] = {}
    with AnonPeak() as train_peak:
        for step in range(args.steps):
            if step == 0:
                result["first_step_after_start_s"] = time.time() - started_wall
            rows = order[step * 64 : (step + 1) * 64]
            batch = make_batch(dataset.splits["train"], rows, trainer.device)
            trainer.optimize(batch, f"step {step}")
    result["train_rss_anon_gb"] = train_peak.peak_kb / 2**20
    with AnonPeak() as eval_peak, torch.no_grad():
        predict_split(trainer.model, dataset.splits["valid"], 64, torch.device("cpu"))
    result["eval_rss_anon_gb"] = eval_peak.peak_kb / 2**20
    result["peak_rss_gb"] = status_kb("VmHWM") / 2**20
    return result


def spawn(what: str, dataset: str, data: Path, cache: Path, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--dataset", dataset, "--data", str(data)]
    cmd += ["--cache", str(cache), "--steps", str(steps), "--started", repr(time.time())]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{what} {dataset} failed:\n{proc.stderr[-3000:]}")


def gb(path: Path) -> float:
    return path.stat().st_size / 2**30


def measure(folder: Path, dataset: str, steps: int) -> None:
    cache = folder / "cache"
    source = folder / (
        "train_valid_test.pt" if dataset == "mosei" else "mosei_senti_data_noalign.pkl"
    )
    conv = spawn("convert", dataset, folder, cache, steps)
    size = gb(source)
    print(
        f"  convert {source.name} ({size:.2f} GB, {conv['clips']} clips): "
        f"{conv['seconds']:.1f} s ({conv['cpu_seconds']:.1f} s CPU), peak RSS "
        f"{conv['peak_rss_gb']:.2f} GB = {conv['peak_rss_gb'] / size:.2f}x the file; "
        f"{conv['peak_rss_gb'] - conv['base_rss_gb']:.2f} GB above the interpreter's "
        f"{conv['base_rss_gb']:.2f} GB = {(conv['peak_rss_gb'] - conv['base_rss_gb']) / size:.2f}x"
    )
    run = spawn("train", dataset, folder, cache, steps)
    print(
        f"  second run: first training step {run['first_step_after_start_s']:.1f} s after "
        f"the process started; B=64 training RssAnon {run['train_rss_anon_gb']:.2f} GB, "
        f"validation scoring RssAnon {run['eval_rss_anon_gb']:.2f} GB "
        f"(VmHWM incl. mapped pages {run['peak_rss_gb']:.2f} GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.125,0.25", help="aligned file sizes (of MOSEI)")
    parser.add_argument("--unaligned-scales", default="0.0625,0.125")
    parser.add_argument("--work", default=None, help="folder for the files (default: temp)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--started", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.what = args.child
        print("RESULT " + json.dumps(child(args)))
        return
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"MOSEI size = {MOSEI_SIZES} clips"
    )
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for kind, scales in (("mosei", args.scales), ("mosei-unaligned", args.unaligned_scales)):
            for scale in (float(s) for s in scales.split(",") if s):
                folder = Path(tmp) / f"{kind}-{scale}"
                write_files(folder, scale, unaligned=kind == "mosei-unaligned")
                print(f"{kind} at {scale:g} of MOSEI ({sizes_at(scale)}):")
                if kind == "mosei-unaligned":  # its labels come from the aligned file
                    spawn("convert", "mosei", folder, folder / "cache", args.steps)
                measure(folder, kind, args.steps)
                for path in folder.glob("*.p*"):
                    path.unlink()


if __name__ == "__main__":
    main()
