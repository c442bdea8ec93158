"""``carat-cli reproduce``: the paper's tables as jobs spread over machines or a Dask cluster.

Jobs come from :func:`carat.reproduce.plan`; ``--shard I/N`` keeps the jobs whose name hashes
to I (the same split on every machine, no coordinator), finished jobs are skipped, and the rest
run on the engine (``local``: one job at a time by default, since one training run already
uses every core; ``dask``: one job per Dask worker).  A job that fails is recorded and the
others go on.  The report covers every finished job in the output folder, so after the last
shard any machine that sees the folder writes the complete tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from carat.errors import CaratError
from carat.reproduce import (
    Job,
    Plan,
    collect,
    estimate_seconds,
    plan,
    published_rows,
    report_csv,
    report_markdown,
    run_job,
)
from pipeline.engine import TaskFailure, make_engine
from pipeline.sources import Shard

log = logging.getLogger(__name__)

REPORT_MD, REPORT_CSV = "reproduction.md", "reproduction.csv"


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run one job (pickled to it)."""

    job: Job
    data_dir: str
    out: str
    overrides: tuple[str, ...]
    cache_dir: str | None


def _run(spec: JobSpec) -> str:
    return str(run_job(spec.job, spec.data_dir, spec.out, spec.overrides, spec.cache_dir))


@dataclass
class Reproduction:
    """What a ``reproduce`` call did."""

    plan: Plan
    mine: list[Job]  # this shard's jobs
    finished_before: list[Job]
    estimate_s: float
    ran: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    report_md: Path | None = None
    report_csv: Path | None = None


def prepare(
    data_dir: str | Path,
    out: str | Path,
    seeds: list[int],
    shard: str | None = None,
    overrides: tuple[str, ...] = (),
    tables: tuple[int, ...] = (1, 2, 3),
    presets: tuple[str, ...] = (),
    cache_dir: str | Path | None = None,
) -> Reproduction:
    """The plan, this shard's jobs, those already finished and the time the rest will take."""
    full = plan(data_dir, seeds, tables, presets)
    chooser = Shard.parse(shard) if shard else None
    mine = [job for job in full.jobs if chooser is None or chooser.takes(job.name)]
    done = [job for job in mine if job.finished(Path(out))]
    pending = [job for job in mine if job not in done]
    estimate = estimate_seconds(pending, data_dir, overrides, cache_dir) if pending else 0.0
    return Reproduction(full, mine, done, estimate)


def run(
    state: Reproduction,
    data_dir: str | Path,
    out: str | Path,
    overrides: tuple[str, ...] = (),
    engine: str = "local",
    workers: int | None = 1,
    address: str | None = None,
    cache_dir: str | Path | None = None,
    on_done: Callable[[Job, str | None], None] | None = None,
) -> Reproduction:
    """Run this shard's unfinished jobs, then write the report of everything finished."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [
        JobSpec(job, str(data_dir), str(out), tuple(overrides), cache_dir and str(cache_dir))
        for job in state.mine
        if job not in state.finished_before
    ]
    for spec, error in _results(specs, engine, workers, address):
        if error is None:
            state.ran.append(spec.job)
        else:
            log.error("%s failed: %s", spec.job.name, error)
            state.failed.append((spec.job, error))
        if on_done is not None:
            on_done(spec.job, error)
    write_report(state, out)
    return state


def _results(
    specs: list[JobSpec], engine: str, workers: int | None, address: str | None
) -> Iterator[tuple[JobSpec, str | None]]:
    """Each job with None or the reason it failed.  One local worker runs the jobs in this
    process with every core (a pool worker would get one thread); several, or Dask, go
    through the engine."""
    if engine == "local" and (workers or 1) <= 1:
        for spec in specs:
            try:
                _run(spec)
            except CaratError as exc:
                yield spec, str(exc)
            else:
                yield spec, None
        return
    with make_engine(engine, workers=workers, address=address, retries=0) as pool:
        for spec, result in pool.map_unordered(_run, specs):
            yield spec, result.reason if isinstance(result, TaskFailure) else None


def write_report(state: Reproduction, out: str | Path) -> None:
    """``reproduction.md`` and ``.csv`` from every finished job in ``out``."""
    out = Path(out)
    results = collect(state.plan, out)
    _, source = published_rows()
    unfinished = sum(r.planned - len(r.seeds) for r in results)
    note = f"{unfinished} planned runs are not finished yet." if unfinished else ""
    state.report_md = out / REPORT_MD
    state.report_csv = out / REPORT_CSV
    state.report_md.write_text(report_markdown(results, state.plan, source, note), "utf-8")
    state.report_csv.write_text(report_csv(results), "utf-8")
