"""The paper's tables over seeds: which runs they need, one run, and the report beside the paper.

Every (preset, seed) is one job with its own run directory ``OUT/runs/<preset>-s<seed>/`` (the
layout of :func:`carat.train.run_training`); a job whose ``metrics.json`` exists is finished and
never run again, and an interrupted one resumes from its last epoch.  The report reads only what
the run directories hold, so it can be written on any machine once every shard is done.

The published values live in ``carat/published.yaml`` with their source and whether each was
checked against the paper.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from carat.config import load_config
from carat.data import load_dataset
from carat.data.types import MultimodalDataset
from carat.errors import CaratError
from carat.evaluate import make_batch, resolve_device
from carat.modeldir import build_model
from carat.precision import precision_for
from carat.train import DEFAULT_PRESETS, resolve_run_config, run_training

log = logging.getLogger(__name__)

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")
RUNS = "runs"
# (our metric, its column in the report, the published value it is compared with)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("acc", "Acc (authors' Jaccard)", "acc"),
    ("acc_empty_ok", "Acc (ours: empty = 1)", ""),
    ("micro_f1", "micro-F1", "micro_f1"),
    ("micro_precision", "P", "published_r"),  # the authors' printed "R" is the precision
    ("micro_recall", "R", "published_p"),  # and their "P" the recall (CARAT-SPEC 4)
)
DEFINITIONS = """\
Metric definitions (test split, every sample, the model of the best validation epoch):

- **Acc (authors' Jaccard)**: mean over clips of |truth ∩ predicted| / |truth ∪ predicted|, a
  clip with no true and no predicted label scoring 0 (the authors' code; compare this one with
  the paper).
- **Acc (ours: empty = 1)**: the same, but a clip with no true and no predicted label scores 1
  (it was predicted exactly); the paper has no such column.
- **micro-F1, P, R**: micro-averaged over all clips and labels. The authors' code swaps
  precision and recall when it prints them, so the paper's "P" column is compared with our
  recall and its "R" column with our precision.
"""


@dataclass(frozen=True)
class Row:
    """One row of a paper table and what it runs."""

    table: int
    name: str
    dataset: str  # mosei | mosei-unaligned | m3ed
    preset: str
    published: dict[str, float | None]
    verified: bool


@dataclass(frozen=True)
class Job:
    """One training run: a preset on its dataset with one seed."""

    row: Row
    seed: int

    @property
    def name(self) -> str:
        return f"{self.row.preset}-s{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / RUNS / self.name

    def finished(self, out: Path) -> bool:
        return (self.run_dir(out) / "metrics.json").is_file()


@dataclass
class Plan:
    """The jobs of a reproduction and the rows left out (with why)."""

    rows: list[Row]
    jobs: list[Job]
    skipped: dict[str, str] = field(default_factory=dict)  # row name -> reason


def published_rows(path: Path = PUBLISHED_FILE) -> tuple[list[Row], str]:
    """The rows of ``published.yaml`` and its source line."""
    data = yaml.safe_load(path.read_text())
    rows = [
        Row(
            table=int(item["table"]),
            name=str(item["row"]),
            dataset=str(item["dataset"]),
            preset=str(item["preset"]),
            published={key: item.get(key) for _, _, key in METRICS if key},
            verified=bool(item.get("verified", False)),
        )
        for item in data["rows"]
    ]
    return rows, str(data["source"])


def dataset_available(dataset: str, data_dir: Path) -> str | None:
    """None when ``dataset``'s files are in ``data_dir``, else why the row is left out."""
    from carat.data import M3ED_FILES, MOSEI_PT, MOSEI_UNALIGNED_PKL

    needed = {
        "mosei": [MOSEI_PT],
        "mosei-unaligned": [MOSEI_UNALIGNED_PKL, MOSEI_PT],
    }.get(dataset)
    if needed is None:  # m3ed: any of its file names
        if any((data_dir / name).is_file() for name in M3ED_FILES):
            return None
        return f"no M3ED file ({', '.join(M3ED_FILES[:2])}, ...) in {data_dir}"
    missing = [name for name in needed if not (data_dir / name).is_file()]
    return f"{', '.join(missing)} not in {data_dir}" if missing else None


def plan(
    data_dir: str | Path,
    seeds: list[int],
    tables: tuple[int, ...] = (1, 2, 3),
    presets: tuple[str, ...] = (),
) -> Plan:
    """Every job the rows of ``tables`` (only those of ``presets``, if given) need on the files
    in ``data_dir``, in a fixed order."""
    rows, _ = published_rows()
    unknown = set(presets) - {row.preset for row in rows}
    if unknown:
        known = ", ".join(row.preset for row in rows)
        raise CaratError(f"no paper table row runs {sorted(unknown)}; rows run: {known}")
    chosen, skipped = [], {}
    for row in rows:
        if row.table not in tables or (presets and row.preset not in presets):
            continue
        reason = dataset_available(row.dataset, Path(data_dir))
        if reason is None:
            chosen.append(row)
        else:
            skipped[row.name] = reason
    if not chosen:
        raise CaratError(
            f"{data_dir}: no benchmark file for any row "
            f"({'; '.join(sorted(set(skipped.values())))}); "
            "put train_valid_test.pt (and mosei_senti_data_noalign.pkl) there"
        )
    jobs = [Job(row, seed) for row in chosen for seed in seeds]
    return Plan(chosen, jobs, skipped)


def run_job(
    job: Job,
    data_dir: str | Path,
    out: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    cache_dir: str | Path | None = None,
) -> Path:
    """Train one job (resuming it if it was interrupted); returns its run directory."""
    dataset = load_dataset(job.row.dataset, data_dir, cache_dir=cache_dir)
    cfg = resolve_run_config(dataset, job.row.preset, [*overrides, f"train.seed={job.seed}"])
    result = run_training(dataset, cfg, job.run_dir(Path(out)), seeds=[job.seed], progress=False)
    return result.run_dir


def seconds_per_step(
    dataset: MultimodalDataset, preset: str, overrides: list[str] | tuple[str, ...] = ()
) -> float:
    """Wall seconds of one training step of ``preset`` on ``dataset`` here (after a warm-up)."""
    cfg = resolve_run_config(dataset, preset, overrides)
    device = resolve_device(cfg.train.device)
    precision = precision_for(cfg.train.precision, device)
    model = build_model(cfg).to(device).train()
    rows = np.arange(min(cfg.train.batch_size, len(dataset.splits["train"])))
    batch = make_batch(dataset.splits["train"], rows, device)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        with precision.autocast():
            loss, _ = model.training_step(batch)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[-1]


def estimate_seconds(
    jobs: list[Job],
    data_dir: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    cache_dir: str | Path | None = None,
) -> float:
    """Seconds the ``jobs`` take here, one after another: one timed step per dataset (the full
    model, an upper bound for the ablations) times the steps of every epoch, plus evaluation
    (a forward pass costs about a third of a step)."""
    total = 0.0
    step_cost: dict[str, float] = {}
    for job in jobs:
        dataset = load_dataset(job.row.dataset, data_dir, cache_dir=cache_dir)
        if job.row.dataset not in step_cost:
            full_model = DEFAULT_PRESETS[job.row.dataset]
            step_cost[job.row.dataset] = seconds_per_step(dataset, full_model, overrides)
        cfg = load_config(job.row.preset, list(overrides))
        sizes = {name: len(split) for name, split in dataset.splits.items()}
        train_steps = sizes["train"] // cfg.train.batch_size
        eval_steps = -(-(sizes["valid"]) // cfg.train.batch_size)
        per_epoch = (train_steps + eval_steps / 3) * step_cost[job.row.dataset]
        total += cfg.train.epochs * per_epoch
    return total


def _seed_metrics(run_dir: Path) -> dict[str, float]:
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {ours: float(summary["test"][ours]["mean"]) for ours, _, _ in METRICS}


@dataclass
class RowResult:
    row: Row
    seeds: list[int]  # the seeds whose runs are finished
    planned: int
    mean: dict[str, float]
    std: dict[str, float]


def collect(plan_: Plan, out: str | Path) -> list[RowResult]:
    """Mean and sample std over the finished seeds of every planned row."""
    results = []
    for row in plan_.rows:
        jobs = [job for job in plan_.jobs if job.row == row]
        done = [job for job in jobs if job.finished(Path(out))]
        values = [_seed_metrics(job.run_dir(Path(out))) for job in done]
        mean = {k: float(np.mean([v[k] for v in values])) for k, _, _ in METRICS} if values else {}
        std = {
            k: float(np.std([v[k] for v in values], ddof=1)) if len(values) > 1 else 0.0
            for k, _, _ in METRICS
        }
        results.append(RowResult(row, [job.seed for job in done], len(jobs), mean, std))
    return results


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def report_csv(results: list[RowResult]) -> str:
    """One line per row and metric: ours (mean, std over seeds), published, difference."""
    handle = io.StringIO()
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(
        ["table", "row", "dataset", "preset", "seeds_done", "seeds_planned", "metric",
         "mean", "std", "published", "difference", "published_verified"]
    )  # fmt: skip
    for result in results:
        for ours, _, theirs in METRICS:
            published = result.row.published.get(theirs) if theirs else None
            mean = result.mean.get(ours)
            difference = mean - published if mean is not None and published is not None else None
            writer.writerow(
                [result.row.table, result.row.name, result.row.dataset, result.row.preset,
                 len(result.seeds), result.planned, ours, _number(mean),
                 _number(result.std.get(ours) if mean is not None else None),
                 _number(published), _number(difference), result.row.verified]
            )  # fmt: skip
    return handle.getvalue()


def _cell(result: RowResult, ours: str, theirs: str) -> str:
    if ours not in result.mean:
        return "not run yet"
    text = f"{result.mean[ours]:.4f} ± {result.std[ours]:.4f}"
    published = result.row.published.get(theirs) if theirs else None
    if published is not None:
        mark = "" if result.row.verified else "*"
        text += f" (paper {published:.3f}{mark}, {result.mean[ours] - published:+.4f})"
    return text


def report_markdown(results: list[RowResult], plan_: Plan, source: str, note: str = "") -> str:
    """The reproduction report: one table per paper table, then definitions and sources."""
    lines = ["# Reproduction of the CARAT paper's tables", ""]
    if note:
        lines += [note, ""]
    titles = {
        1: "Table 1 (CMU-MOSEI)",
        2: "Table 2 (M3ED)",
        3: "Table 3 (ablations, aligned MOSEI)",
    }
    for table in sorted({r.row.table for r in results}):
        header = ["row", "preset", "seeds", *(column for _, column, _ in METRICS)]
        lines += [f"## {titles.get(table, f'Table {table}')}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for result in (r for r in results if r.row.table == table):
            cells = [_cell(result, ours, theirs) for ours, _, theirs in METRICS]
            seeds = f"{len(result.seeds)}/{result.planned}"
            lines.append(
                f"| {result.row.name} | `{result.row.preset}` | {seeds} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    if plan_.skipped:
        lines += ["Rows not run (their files were not given):", ""]
        lines += [f"- {name}: {reason}" for name, reason in plan_.skipped.items()]
        lines.append("")
    lines += [
        "Each cell: mean ± sample standard deviation over the finished seeds, then the paper's "
        "value and our difference from it. `*`: a published value we could not check against "
        "the paper (see `carat/published.yaml`); a row without a paper value has none recorded.",
        "",
        DEFINITIONS,
        f"Published values: {source}.",
        "",
    ]
    return "\n".join(lines)
