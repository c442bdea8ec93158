"""`carat-cli demo`: the whole path on the built-in sample, with what each stage gave."""

from __future__ import annotations

import click

from carat_cli.common import examples, user_errors
from carat_cli.options import workers_option


@click.command(
    epilog=examples(
        "carat-cli demo",
        "carat-cli demo --out /tmp/carat-demo --workers 2 --epochs 5",
    )
)
@click.option("--out", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@workers_option
@click.option("--epochs", type=click.IntRange(min=1), help="Override the preset.")
@user_errors
def demo(out: str, workers: int | None, epochs: int | None) -> None:
    """Extract, align, train and predict on the built-in sample clips, in a few minutes."""
    import time

    from carat.metrics import format_table as metrics_table
    from pipeline.demo import run_demo
    from pipeline.writers import get_writer

    table = get_writer("table")
    started = time.perf_counter()
    result = run_demo(out, workers=workers, epochs=epochs, report=click.echo)
    click.echo(f"\ntest metrics of the demo model ({result.build.split_sizes['test']} clips):")
    click.echo(metrics_table(result.test_metrics))
    click.echo("\npredictions on the held-out clips:\n")
    click.echo(table.render(result.predictions), nl=False)
    if result.recording is not None:
        right, total = result.utterances_right
        click.echo("\nthe sample recording, cut into utterances:\n")
        click.echo(table.render([result.recording]), nl=False)
        click.echo(f"{right} of {total} utterances get exactly their true labels")
    click.echo(f"\nfeatures:     {result.features}  ({result.extract.total} clips)")
    click.echo(f"dataset:      {result.dataset}  ({result.build.split_sizes})")
    click.echo(f"training run: {result.run_dir}  (config.yaml, metrics.json, plots/)")
    click.echo(f"model:        {result.model}")
    click.echo(f"predictions:  {result.predictions_file}")
    for path in result.timeline_files:
        click.echo(f"timeline:     {path}")
    stages = ", ".join(f"{stage} {s:.0f} s" for stage, s in result.seconds.items())
    # timings on stderr, so that stdout is the same on every run (docs/demo.md)
    click.echo(f"done in {time.perf_counter() - started:.0f} s ({stages})", err=True)
    click.echo(
        f"next: carat-cli predict YOUR_RECORDING.mp4 --model {result.model} "
        "--srt emotions.srt --report report.html"
    )


commands = [demo]
