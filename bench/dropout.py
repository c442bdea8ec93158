"""CPU cost of the model's dropout, the boolean-mask form against the scaled-keep-mask form,
on one activation of the aligned paper preset (batch 64, 60 steps, 256 units); forward and
backward, process CPU time (robust to a busy machine) and wall time, same process, alternated.

Usage: ``python bench/dropout.py [--repeats 100]``
"""

from __future__ import annotations

import argparse
import time

import torch

from carat.modules import Dropout

P = 0.3


def boolean_mask(x: torch.Tensor) -> torch.Tensor:
    """The previous form: a bool mask, ``masked_fill`` (a copy), then the scale in place."""
    return x.masked_fill(torch.rand_like(x) < P, 0.0).mul_(1.0 / (1.0 - P))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    x = torch.randn(64, 60, 256, requires_grad=True)
    ours = Dropout(P).train()
    torch.manual_seed(1)
    before = boolean_mask(x)
    torch.manual_seed(1)
    print(f"same output as the boolean form: {torch.equal(before, ours(x))}")
    for _ in range(args.rounds):
        for name, fn in (("boolean mask + masked_fill", boolean_mask), ("scaled keep mask", ours)):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.repeats):
                fn(x).sum().backward()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"{name:<28} {1000 * cpu / args.repeats:6.2f} ms CPU, "
                f"{1000 * wall / args.repeats:6.2f} ms wall per forward+backward"
            )


if __name__ == "__main__":
    main()
