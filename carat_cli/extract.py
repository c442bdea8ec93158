"""`carat-cli extract`: clips, folders, list files and archives -> a feature store."""

from __future__ import annotations

import sys

import click

from carat_cli.common import count, echo_failures, examples, progress_bar, user_errors
from carat_cli.options import (
    engine_options,
    face_option,
    preset_option,
    segment_options,
    speakers_option,
    workers_option,
)


@click.command(
    epilog=examples(
        "carat-cli extract videos/ --out features/",
        "carat-cli extract batch-07.tar.gz more.lst --out features/ --glob '*.mp4' --strict",
        "carat-cli extract interviews/ --out features/ --segments auto",
        "carat-cli extract /data/archive.tar --out /local/features-0 --shard 0/8",
        "carat-cli extract /shared/archive.tar --out /shared/features --engine dask "
        "--address tcp://head:8786",
    )
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help="Feature store folder.")
@preset_option
@click.option(
    "--modalities", default="text,visual,audio", show_default=True, help="Comma-separated."
)
@workers_option
@click.option("--glob", "glob", help="Only clips whose path matches, e.g. '*.mp4'.")
@click.option("--shard", help="I/N: this machine's share of the clips (I from 0).")
@engine_options
@click.option("--strict", is_flag=True, help="Exit non-zero if any clip failed.")
@click.option("--export-csd", type=click.Path(), help="Also write .csd files here.")
@segment_options(default="none")
@speakers_option(
    "none", "with --segments, segments are cut where the speaker changes and record their speaker"
)
@face_option()
@user_errors
def extract(
    inputs: tuple[str, ...],
    out: str,
    preset: str,
    modalities: str,
    workers: int | None,
    glob: str | None,
    shard: str | None,
    engine: str,
    address: str | None,
    strict: bool,
    export_csd: str | None,
    segments: str,
    min_segment: float | None,
    max_segment: float | None,
    speakers: str,
    face: str,
) -> None:
    """Extract features of clips, folders, list files or tar/zip archives into a store
    (cached per clip and featurizer, resumable)."""
    from pipeline.extract import run_extract

    unit = "clip" if segments.strip() == "none" else "segment"
    with progress_bar(unit) as progress:
        summary = run_extract(
            inputs,
            out,
            preset=preset,
            modalities=modalities,
            workers=workers,
            glob=glob,
            shard=shard,
            engine=engine,
            address=address,
            export_csd=export_csd,
            progress=progress,
            segments=segments,
            min_segment=min_segment,
            max_segment=max_segment,
            speakers=speakers,
            face=face,
        )
    if summary.total == 0 and shard is not None:
        click.echo(
            f"nothing to do: shard {shard} holds none of the clips given (the other shards do)"
        )
        return
    units = "clips"
    if summary.segmented:
        units = f"segments of {count(summary.recordings, 'recording')}"
    click.echo(
        f"{summary.total} {units}: {summary.extracted} extracted, {summary.cached} from cache, "
        f"{len(summary.failed)} failed ({summary.partial} of them partly extracted) "
        f"in {summary.seconds:.1f} s"
    )
    echo_failures(summary.failed)
    if summary.failed:
        click.echo(f"errors listed in {summary.errors_file}", err=True)
    for path in summary.exported:
        click.echo(f"wrote {path}")
    if summary.usable == 0 or (strict and summary.failed):
        sys.exit(1)


commands = [extract]
