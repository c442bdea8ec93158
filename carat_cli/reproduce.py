"""`reproduce`: the paper's tables over seeds (the work is in pipeline/reproduce.py)."""

from __future__ import annotations

import sys
from typing import Any

import click

from carat_cli.common import examples, user_errors
from carat_cli.options import engine_options

DATA_DIR_HELP = "Where benchmark files live (train_valid_test.pt, mosei_senti_data_noalign.pkl)."
CACHE_HELP = "Where converted benchmark files go [$CARAT_DATASET_CACHE or ~/.cache/carat]."


@click.command(
    epilog=examples(
        "carat-cli reproduce --data-dir DATA --out repro --seeds 5",
        "carat-cli reproduce --data-dir DATA --out repro --seeds 5 --shard 0/4",
        "carat-cli reproduce --data-dir DATA --out repro --tables 1 --dry-run",
        "carat-cli reproduce --data-dir syn --out r --seeds 2 "
        "--presets paper-mosei-aligned,ablation-no-shuffle --epochs 3",
    )
)
@click.option("--data-dir", required=True, type=click.Path(file_okay=False), help=DATA_DIR_HELP)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="1..N.")
@click.option("--tables", default="1,2,3", show_default=True, help="Paper tables to run.")
@click.option("--presets", default=None, help="Only the rows of these presets (comma-separated).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="For every run.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs of every run.")
@click.option("--shard", default=None, help="I/N: this machine's share of the runs (I from 0).")
@engine_options
@click.option("--cache-dir", type=click.Path(file_okay=False), help=CACHE_HELP)
@click.option("--dry-run", is_flag=True, help="Print the plan and the estimate, run nothing.")
@user_errors
def reproduce(
    data_dir: str,
    out: str,
    seeds: int,
    tables: str,
    presets: str | None,
    overrides: tuple[str, ...],
    epochs: int | None,
    shard: str | None,
    engine: str,
    address: str | None,
    cache_dir: str | None,
    dry_run: bool,
) -> None:
    """Run the paper's Table 1 (and 2: M3ED) rows and Table 3 ablations over seeds, then write
    OUT/reproduction.md and .csv beside the published values; finished runs are skipped."""
    from pipeline import reproduce as repro

    settings = (*overrides, *([f"train.epochs={epochs}"] if epochs is not None else []))
    try:
        wanted = tuple(int(t) for t in tables.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{tables!r} is not a list like 1,3", param_hint="--tables"
        ) from None
    rows = tuple(p.strip() for p in presets.split(",") if p.strip()) if presets else ()
    state = repro.prepare(
        data_dir, out, list(range(1, seeds + 1)), shard, settings, wanted, rows, cache_dir
    )
    plan = state.plan
    click.echo(
        f"{len(plan.rows)} rows x {seeds} seeds = {len(plan.jobs)} runs; this shard: "
        f"{len(state.mine)}, {len(state.finished_before)} already finished"
    )
    for name, reason in plan.skipped.items():
        click.echo(f"  left out {name}: {reason}")
    pending = len(state.mine) - len(state.finished_before)
    click.echo(f"estimated time for the {pending} runs left: {state.estimate_s / 3600:.2f} h")
    if dry_run:
        return

    def done(job: Any, error: str | None) -> None:
        click.echo(f"  {job.name}: {'failed: ' + error if error else 'done'}")

    # locally one run at a time, in this process with every core; on Dask one per worker
    repro.run(state, data_dir, out, settings, engine, 1, address, cache_dir, done)
    click.echo(f"wrote {state.report_md} and {state.report_csv}")
    if state.failed:
        sys.exit(1)


commands = [reproduce]
