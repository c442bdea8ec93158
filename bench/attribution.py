"""Attribution figures: planted-check accuracy, and the cost of the attribution per clip.

1. Planted check. For each seed: the built-in synthetic data (each label planted in one
   modality), a small CARAT trained on it (``configs/synthetic-attribution.yaml``, modality
   dropout on; and the same with dropout off for reference), then over the test split's
   positives the fraction of labels whose top modality is the planted one, for the default
   attribution (exact Shapley over masked subsets) and for the max-pool winner (the paper's
   Figure 4 statistic).
2. Cost. Model forward (a plain prediction) against ``carat.attribution.shapley`` (the
   prediction and its attribution, from one label-wise attention pass and the 8 subsets of
   the head in one batch): one clip, a batch of 64, and the whole test split in batches of 64,
   for the trained synthetic model and for a paper-size model (paper-mosei-aligned, random
   weights: cost does not depend on them) on 300 MOSEI-shaped clips of 60 steps.

Usage::

    python bench/attribution.py [--seeds 0,1,2] [--rate R] [--epochs N] [--n-train N]
                                [--seq-len 30] [--threads 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from carat.attribution import METHOD, shapley
from carat.config import load_config
from carat.data import load_dataset, make_synthetic
from carat.data.synth import read_planted
from carat.data.types import MultimodalDataset
from carat.evaluate import make_batch, predict_split
from carat.explain import explain_split
from carat.model import CARAT
from carat.modeldir import load_model
from carat.train import fit_to_dataset, resolve_run_config, run_training

PRESET = "synthetic-attribution"


def planted_run(
    dataset: MultimodalDataset, out: Path, seed: int, overrides: list[str]
) -> tuple[float, dict, CARAT]:
    """Train one seed; micro-F1, the planted check and the trained model."""
    cfg = resolve_run_config(dataset, PRESET, overrides)
    result = run_training(dataset, cfg, out, seeds=[seed], progress=False)
    model, _ = load_model(result.model_dir)
    explained = explain_split(
        model,
        dataset.splits["test"],
        dataset.label_names,
        64,
        torch.device("cpu"),
        planted=read_planted(dataset.source),
    )
    return result.summary["test"]["micro_f1"]["mean"], explained.planted_check(), model


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def cost_rows(name: str, model: CARAT, dataset: MultimodalDataset, repeats: int) -> None:
    model.eval()
    test = dataset.splits["test"]
    name = f"{name} ({dataset.lengths['text']} steps)"
    cpu = torch.device("cpu")
    for size in (1, 64):
        batch = make_batch(test, np.arange(min(size, len(test))), cpu)
        plain = median_seconds(lambda b=batch: model(b), repeats)
        attributed = median_seconds(lambda b=batch: shapley(model, b), repeats)
        print(
            f"{name:<33} batch {size:>3}   forward {1e3 * plain:8.2f} ms   "
            f"{METHOD} {1e3 * attributed:8.2f} ms   ratio {attributed / plain:5.2f}x"
        )
    labels = dataset.label_names
    plain = median_seconds(lambda: predict_split(model, test, 64, cpu), max(3, repeats // 10))
    attributed = median_seconds(
        lambda: explain_split(model, test, labels, 64, cpu), max(3, repeats // 10)
    )
    n = len(test)
    print(
        f"{name:<33} test split ({n} clips, batches of 64)   predict {1e3 * plain / n:6.3f} "
        f"ms/clip   explain {1e3 * attributed / n:6.3f} ms/clip   ratio {attributed / plain:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (data and model)")
    parser.add_argument("--rate", type=float, default=None, help="modality dropout [preset's]")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs [preset's]")
    parser.add_argument("--n-train", type=int, default=600, help="synthetic training clips")
    parser.add_argument("--seq-len", type=int, default=30, help="synthetic steps per clip")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    common = [f"train.num_threads={args.threads}"]
    common += [f"train.epochs={args.epochs}"] if args.epochs is not None else []
    dropout = [f"model.modality_dropout={args.rate}"] if args.rate is not None else []
    rate = load_config(PRESET, dropout).model.modality_dropout

    print(
        f"planted check: {PRESET}, {args.n_train} training clips of {args.seq_len} steps, "
        "top modality per label over the 200 test clips' positives"
    )
    print(f"{'dropout':>7} {'seed':>4} {'micro-F1':>8} {METHOD:>15} {'max-pool winner':>16}")
    totals: dict[float, list[tuple[int, int, int]]] = {rate: [], 0.0: []}
    trained = None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            path = Path(tmp) / f"data-{seed}" / "train_valid_test.pt"
            make_synthetic(
                path,
                n_train=args.n_train,
                n_valid=args.n_train // 4,
                n_test=200,
                seed=seed,
                seq_len=args.seq_len,
            )
            dataset = load_dataset(str(path))
            for r in (rate, 0.0):
                f1, check, model = planted_run(
                    dataset,
                    Path(tmp) / f"run-{seed}-{r}",
                    seed,
                    [*common, f"model.modality_dropout={r}"],
                )
                a, m = check["attribution"], check["maxpool_winner"]
                totals[r].append((a["correct"], m["correct"], a["labels"]))
                print(
                    f"{r:>7.2f} {seed:>4} {f1:>8.3f} {a['correct']:>13}/{a['labels']} "
                    f"{m['correct']:>14}/{m['labels']}"
                )
                if r == rate:
                    trained = model, dataset
        for r, rows in totals.items():
            labels = sum(n for _, _, n in rows)
            print(
                f"dropout {r:.2f}, all seeds: {METHOD} {sum(a for a, _, _ in rows)}/{labels}, "
                f"max-pool winner {sum(m for _, m, _ in rows)}/{labels}"
            )

        print(f"\ncost of the attribution ({args.threads} thread(s), median of {args.repeats})")
        model, dataset = trained
        cost_rows("synthetic-attribution", model, dataset, args.repeats)
        path = Path(tmp) / "mosei-shaped" / "train_valid_test.pt"
        make_synthetic(path, n_train=8, n_valid=8, n_test=300, seq_len=60)
        mosei_shaped = load_dataset(str(path))
        paper = fit_to_dataset(load_config("paper-mosei-aligned"), mosei_shaped)
        torch.manual_seed(0)
        cost_rows("paper-mosei-aligned", CARAT(paper), mosei_shaped, args.repeats)


if __name__ == "__main__":
    main()
