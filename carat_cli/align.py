"""`carat-cli align`: a feature store and labels -> a training dataset."""

from __future__ import annotations

import click

from carat_cli.common import count, echo_failures, examples, user_errors
from carat_cli.options import (
    engine_options,
    face_option,
    preset_option,
    speakers_option,
    workers_option,
)


@click.command(
    epilog=examples(
        "carat-cli align features/ --labels labels.csv --out dataset/",
        "carat-cli align features/ --labels labels.csv --out dataset/ --mode unaligned "
        "--max-len text=50,visual=500,audio=500",
        "carat-cli align features/ --labels CMU_MOSEI_Labels.csd --videos mosei-videos/ "
        "--folds mosei --out dataset/",
    )
)
@click.argument("features_dir", type=click.Path())
@click.option(
    "--labels",
    required=True,
    type=click.Path(),
    help="Labels CSV (clip_id, labels…), or interval labels of full videos: a CSV "
    "(video_id, start, end, labels…) or a labels .csd.",
)
@click.option("--out", required=True, type=click.Path(), help="Dataset folder to write.")
@click.option(
    "--videos",
    multiple=True,
    type=click.Path(),
    help="Interval labels: the full recordings (folder, archive, list file; repeatable).",
)
@click.option("--folds", help="Interval labels: 'mosei' or a JSON folds file.")
@click.option("--label-names", help="Interval labels: the labels, e.g. happy,sad.")
@preset_option
@workers_option
@engine_options
@speakers_option(
    "none", "with --videos, each labelled interval (not cut) names the speaker heard most in it"
)
@face_option("Interval labels: ")
@click.option("--mode", type=click.Choice(["aligned", "unaligned"]), default="aligned")
@click.option(
    "--max-len",
    help="Steps per modality: N, or text=N,visual=N,audio=N "
    "[aligned: 60 words; unaligned: text 50, visual/audio 500].",
)
@click.option("--weighted", is_flag=True, help="Aligned: weight frames by overlap duration.")
@click.option(
    "--cap",
    type=click.Choice(["pool", "truncate"]),
    default="pool",
    show_default=True,
    help="Unaligned: shorten long sequences by average-pooling into bins, or truncate.",
)
@click.option("--split", "split_rule", help="e.g. random:0.8,0.1,0.1:SEED.")
@click.option("--strict", is_flag=True, help="Fail if any clip lacks labels or features.")
@user_errors
def align(
    features_dir: str,
    labels: str,
    out: str,
    videos: tuple[str, ...],
    folds: str | None,
    label_names: str | None,
    preset: str,
    workers: int | None,
    engine: str,
    address: str | None,
    speakers: str,
    face: str,
    mode: str,
    max_len: str | None,
    weighted: bool,
    cap: str,
    split_rule: str | None,
    strict: bool,
) -> None:
    """Align a feature store to words (or cap it) and join labels into a training dataset.

    With interval labels of full videos, their segments are first extracted from --videos into
    FEATURES_DIR (cached per segment, resumable; --preset, --workers, --engine, --address say
    how)."""
    from pipeline.build import BuildOptions, build_dataset, parse_max_len
    from pipeline.extract import ExtractOptions

    names = [n.strip() for n in label_names.split(",") if n.strip()] if label_names else None
    options = BuildOptions(
        mode=mode,
        max_len=parse_max_len(max_len),
        weighted=weighted,
        cap=cap,
        split_rule=split_rule,
        folds=folds,
        label_names=names,
        strict=strict,
    )
    extract = ExtractOptions(
        preset=preset,
        workers=workers,
        engine=engine,
        address=address,
        speakers=speakers,
        face=face,
    )
    summary = build_dataset(features_dir, labels, out, options, list(videos) or None, extract)
    if summary.extract is not None:
        done = summary.extract
        click.echo(
            f"{done.total} segments of {count(done.recordings, 'recording')}: "
            f"{done.extracted} extracted, {done.cached} from cache, {len(done.failed)} failed"
        )
        echo_failures(done.failed)
    if summary.problems:
        click.echo(f"{len(summary.problems)} labelled intervals left out (named in the warnings)")
    sizes = ", ".join(f"{split} {n}" for split, n in summary.split_sizes.items())
    click.echo(
        f"{summary.joined} clips joined ({summary.mode}; {sizes}; splits from "
        f"{summary.split_source}) in {summary.seconds:.1f} s"
    )
    gaps = {
        "labelled clips without features": summary.labels_without_features,
        "clips without labels": summary.features_without_labels,
        "clips lacking a modality": list(summary.incomplete),
    }
    left_out = [f"{len(clips)} {what}" for what, clips in gaps.items() if clips]
    if left_out:
        click.echo(f"left out (named in the warnings above): {'; '.join(left_out)}")
    click.echo(f"labels: {', '.join(summary.label_names)}")
    click.echo(f"wrote {summary.out}")


commands = [align]
