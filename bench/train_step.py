"""Training-step speed and peak memory of CARAT on random MOSEI-shaped batches.

Cases (each in a fresh subprocess, so peak RSS figures do not mix):

* ``aligned``: the paper preset (text/visual/audio 60 steps of 300/35/74, C=6), every
  queue row an anchor, as the authors' code;
* ``aligned-batch-anchors``: the same with ``contrastive.queue_anchors: false``;
* ``unaligned``: text 50 steps, visual/audio 500 steps through the soft re-sampler;
* ``loss-reference``: the authors' contrastive loss written naively (full N x N logits
  and masks) and their per-sample prototype loop, against ours, on one batch.

A step is forward + every loss + backward + ``torch.optim.AdamW`` step. On CUDA the
training cases also run under bf16 autocast. Usage::

    python bench/train_step.py [--quick] [--steps N] [--batch-size 64] [--cases a,b]
                               [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from carat.config import CaratConfig
from carat.contrastive import supcon_loss
from carat.data.types import Batch
from carat.model import CARAT, count_parameters
from carat.prototypes import PrototypeBank

TRAIN_CASES = ("aligned", "aligned-batch-anchors", "unaligned")
ALL_CASES = (*TRAIN_CASES, "loss-reference")


def case_config(case: str) -> tuple[CaratConfig, dict[str, tuple[int, int]]]:
    """The config and per-modality (steps, dims) of one case."""
    cfg = CaratConfig()
    shapes = {"text": (60, 300), "visual": (60, 35), "audio": (60, 74)}
    if case == "aligned-batch-anchors":
        cfg.contrastive.queue_anchors = False
    elif case == "unaligned":
        cfg.model.aligned = False
        cfg.model.ctc_out_len = 500
        shapes = {"text": (50, 300), "visual": (500, 35), "audio": (500, 74)}
    return cfg, shapes


def random_batch(shapes, batch_size: int, num_labels: int, device: str, gen) -> Batch:
    features = {
        m: torch.randn(batch_size, steps, dim, generator=gen).to(device)
        for m, (steps, dim) in shapes.items()
    }
    masks = {
        m: torch.ones(x.shape[:2], dtype=torch.long, device=device) for m, x in features.items()
    }
    labels = (torch.rand(batch_size, num_labels, generator=gen) < 0.3).float().to(device)
    return Batch(features=features, masks=masks, labels=labels)


def run_training(case: str, device: str, batch_size: int, warmup: int, steps: int) -> dict:
    torch.manual_seed(0)
    cfg, shapes = case_config(case)
    model = CARAT(cfg).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    gen = torch.Generator().manual_seed(0)
    batches = [random_batch(shapes, batch_size, 6, device, gen) for _ in range(2)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    times, cpu_times = [], []
    for i in range(warmup + steps):
        batch = batches[i % 2]
        if device == "cuda":
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        with autocast:
            loss, _ = model.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    result = {
        "case": case,
        "device": device,
        "params": count_parameters(model),
        "s_per_step": float(np.median(times)),
        "cpu_s_per_step": float(np.median(cpu_times)),
        "samples_per_s": batch_size / float(np.median(times)),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if device == "cuda":
        result["cuda_max_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def naive_supcon(features, ids, queue, queue_ids, tau=0.07, base_tau=0.07):
    """The authors' formulation: every N x N logit and mask materialised."""
    feats = torch.cat([features, queue.detach()])
    labels = torch.cat([ids, queue_ids]).view(-1, 1)
    n = feats.shape[0]
    mask = torch.eq(labels, labels.T).float()
    logits = feats @ feats.T / tau
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    not_self = torch.scatter(torch.ones_like(mask), 1, torch.arange(n).view(-1, 1), 0)
    mask = mask * not_self
    exp_logits = torch.exp(logits) * not_self
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True) + 1e-12)
    mean_log_prob_pos = (mask * log_prob).sum(1) / (mask.sum(1) + 1e-12)
    return (-(tau / base_tau) * mean_log_prob_pos).mean()


def sequential_prototypes(pos, neg, z_hat, labels, momentum=0.99):
    """The authors' per-sample, per-label Python loop."""
    for i in range(z_hat.shape[0]):
        for m in range(z_hat.shape[1]):
            for j in range(z_hat.shape[2]):
                bank = pos if labels[i, j] == 1 else neg
                bank[m, j] = momentum * bank[m, j] + (1 - momentum) * z_hat[i, m, j]


def timed(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu_start


def run_reference(batch_size: int) -> dict:
    """Contrastive loss (fwd + bwd) and prototype update: naive vs ours, one batch."""
    gen = torch.Generator().manual_seed(0)
    n, c, dz, q = batch_size * 9 * 6, 6, 64, 8192
    feats = F.normalize(torch.randn(n, dz, generator=gen), dim=1)
    ids = torch.randint(0, 6 * c, (n,), generator=gen).float()
    queue = F.normalize(torch.randn(q, dz, generator=gen), dim=1)
    queue_ids = torch.randint(0, 6 * c, (q,), generator=gen).float()
    values = {}

    def contrastive(loss_fn, key):
        def run():
            x = feats.clone().requires_grad_(True)
            loss = loss_fn(x)
            loss.backward()
            values[key] = loss.item()

        return run

    naive_s = timed(contrastive(lambda x: naive_supcon(x, ids, queue, queue_ids), "naive"))
    ours_s = timed(contrastive(lambda x: supcon_loss(x, ids, queue, queue_ids), "ours"))
    batch_only_s = timed(
        contrastive(lambda x: supcon_loss(x, ids, queue, queue_ids, queue_anchors=False), "b")
    )

    z_hat = F.normalize(torch.randn(batch_size, 3, c, dz, generator=gen), dim=-1)
    labels = (torch.rand(batch_size, c, generator=gen) < 0.3).float()
    pos, neg = torch.zeros(3, c, dz), torch.zeros(3, c, dz)
    loop_s = timed(lambda: sequential_prototypes(pos, neg, z_hat, labels))
    bank = PrototypeBank(3, c, dz, 0.99)
    vector_s = timed(lambda: bank.update(z_hat, labels))
    return {
        "case": "loss-reference",
        "N": n + q,
        "naive_loss": values["naive"],
        "our_loss": values["ours"],
        "naive_contrastive_s": naive_s,
        "our_contrastive_s": ours_s,
        "our_contrastive_batch_anchors_s": batch_only_s,
        "loop_prototypes_s": loop_s,
        "our_prototypes_s": vector_s,
        "prototype_max_diff": float(
            max((bank.pos - pos).abs().max(), (bank.neg - neg).abs().max())
        ),
        "speedup_wall": (naive_s[0] + loop_s[0]) / (ours_s[0] + vector_s[0]),
        "speedup_cpu": (naive_s[1] + loop_s[1]) / (ours_s[1] + vector_s[1]),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def child(args: argparse.Namespace) -> None:
    if args.case == "loss-reference":
        result = run_reference(args.batch_size)
    else:
        result = run_training(args.case, args.device, args.batch_size, args.warmup, args.steps)
    print("RESULT " + json.dumps(result))


def spawn(case: str, device: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--case",
        case,
        "--device",
        device,
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"case {case} on {device} failed:\n{proc.stderr[-3000:]}")


def report(result: dict) -> None:
    if result["case"] == "loss-reference":
        r = result

        def pair(key: str) -> str:
            wall, cpu = r[key]
            return f"{wall:.3f} s ({cpu:.3f} s CPU)"

        print(f"loss-reference, one batch, N = {r['N']} contrastive rows:")
        print(f"  contrastive fwd+bwd, naive N x N:      {pair('naive_contrastive_s')}")
        print(f"  contrastive fwd+bwd, ours:             {pair('our_contrastive_s')}")
        print(f"  contrastive fwd+bwd, ours batch-only:  {pair('our_contrastive_batch_anchors_s')}")
        print(f"  loss values: naive {r['naive_loss']:.6f}, ours {r['our_loss']:.6f}")
        print(f"  prototypes, per-sample loop:           {pair('loop_prototypes_s')}")
        print(f"  prototypes, ours (closed form):        {pair('our_prototypes_s')}")
        print(f"  prototype max |difference|: {r['prototype_max_diff']:.1e}")
        print(
            f"  speed-up (contrastive + prototypes): {r['speedup_wall']:.1f}x wall, "
            f"{r['speedup_cpu']:.1f}x CPU; peak RSS {r['peak_rss_gb']:.2f} GB"
        )
        return
    line = (
        f"{result['case']:<22} {result['device']:<4} {result['s_per_step']:7.3f} s/step "
        f"({result['cpu_s_per_step']:.2f} s CPU) {result['samples_per_s']:7.1f} samples/s  "
        f"peak RSS {result['peak_rss_gb']:.2f} GB"
    )
    if "cuda_max_allocated_gb" in result:
        line += f"  CUDA max allocated {result['cuda_max_allocated_gb']:.2f} GB"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cases", default=",".join(ALL_CASES))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"median of {args.steps} steps after {args.warmup} warm-up; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    for case in args.cases.split(","):
        if case not in ALL_CASES:
            parser.error(f"unknown case {case!r}; cases: {', '.join(ALL_CASES)}")
        report(spawn(case, "cpu", args))
        if torch.cuda.is_available() and case in TRAIN_CASES:
            report(spawn(case, "cuda", args))


if __name__ == "__main__":
    main()
