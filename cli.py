"""carat-cli: a thin click layer. Each command parses, calls one pipeline/carat function, prints."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from carat.errors import CaratError
from featurizers.base import MediaError
from pipeline.errors import PipelineError
from pipeline.writers import INPUTS, RECORDING, WRITERS, Writer, get_writer, write_recording_files

USER_ERRORS = (CaratError, MediaError, PipelineError, FileNotFoundError)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user-facing error into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """CARAT multi-modal multi-label emotion recognition, from raw video to predictions."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# Commands are added below, one per pipeline stage.


SEGMENTS_HELP = (
    "How to cut a recording into utterances: auto (transcript cues, else speech recognition, "
    "else voice activity, else fixed windows), transcript, asr, vad, fixed:SECONDS, or none "
    "(the whole file as one clip)."
)


DEFAULT_OUTPUT = "table"  # what predict prints when no other printed format is asked for


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One option per writer: a flag that prints its format instead of the table (--json,
    --csv), or a PATH that a recording's file is written to (--srt, --vtt, --plot, --report)."""
    for output in reversed(list(WRITERS.values())):
        if output.name == DEFAULT_OUTPUT:
            continue
        if output.scope == INPUTS:
            option = click.option(
                f"--{output.flag}",
                output.name,
                is_flag=True,
                help=f"Print {output.describes} instead of a table.",
            )
        else:
            option = click.option(
                f"--{output.flag}",
                output.name,
                type=click.Path(dir_okay=False),
                help=f"Write {output.describes}.",
            )
        func = option(func)
    return func


def chosen_outputs(outputs: dict[str, Any]) -> tuple[Writer, dict[str, str | None]]:
    """The writer that prints (the table unless one flag asks for another) and the files asked
    for (writer name -> path)."""
    asked = [(w, outputs[w.name]) for w in WRITERS.values() if w.name in outputs]  # in order
    printed = [w for w, on in asked if w.scope == INPUTS and on]
    if len(printed) > 1:
        flags = " and ".join(f"--{w.flag}" for w in printed)
        raise click.UsageError(f"{flags} are alternatives; give one")
    files = {w.name: path for w, path in asked if w.scope == RECORDING}
    return (printed[0] if printed else get_writer(DEFAULT_OUTPUT)), files


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_dir", required=True, type=click.Path(), help="Model directory.")
@click.option("--transcript", type=click.Path(), help="Transcript of the one clip given.")
@click.option(
    "--segments",
    default=None,
    help=f"{SEGMENTS_HELP} [default: the model's: as its training data was cut; auto for a "
    "model trained on whole clips or labelled intervals]",
)
@click.option("--min-segment", type=float, help="Shortest segment in seconds (shorter: merged).")
@click.option("--max-segment", type=float, help="Longest segment in seconds (longer: split).")
@output_options
@click.option("--cache", type=click.Path(file_okay=False), help="Feature cache [$CARAT_CACHE].")
@user_errors
def predict(
    inputs: tuple[str, ...],
    model_dir: str,
    transcript: str | None,
    segments: str | None,
    min_segment: float | None,
    max_segment: float | None,
    cache: str | None,
    **outputs: Any,
) -> None:
    """Predict the emotions of clips or whole recordings (files, folders, list files or
    archives) with a model: per utterance segment, each label's probability and what each
    modality contributed to it."""
    from tqdm import tqdm

    from pipeline.predict import predict_clips

    printer, files = chosen_outputs(outputs)
    bar = tqdm(unit="clip", disable=None, leave=False)  # shown on a terminal only

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    try:
        results = predict_clips(
            inputs,
            model_dir,
            transcript,
            cache_dir=cache,
            progress=progress,
            segments=segments,
            min_segment=min_segment,
            max_segment=max_segment,
        )
    finally:
        bar.close()
    written = write_recording_files(results, files)
    click.echo(printer.render(results), nl=False)
    if printer.name == DEFAULT_OUTPUT:
        for path in written:
            click.echo(f"wrote {path}")
    failed = [r for r in results if r.error is not None]
    for result in failed:
        click.echo(f"error: {result.error}", err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.option("--out", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--workers", type=int, default=None, help="Extraction processes [all cores].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the preset.")
@user_errors
def demo(out: str, workers: int | None, epochs: int | None) -> None:
    """Extract, align, train and predict on the built-in sample clips, in a few minutes."""
    import time

    from carat.metrics import format_table as metrics_table
    from pipeline.demo import run_demo

    table = get_writer(DEFAULT_OUTPUT)

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
    click.echo(f"done in {time.perf_counter() - started:.0f} s ({stages})")
    click.echo(
        f"next: carat-cli predict YOUR_RECORDING.mp4 --model {result.model} "
        "--srt emotions.srt --report report.html"
    )


@main.command()
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
@click.option("--folds", default=None, help="Interval labels: 'mosei' or a JSON folds file.")
@click.option("--label-names", default=None, help="Interval labels: the labels, e.g. happy,sad.")
@click.option(
    "--preset", default="default", show_default=True, help="Interval labels: featurizers."
)
@click.option("--workers", type=int, default=None, help="Interval labels: extraction processes.")
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Interval labels: where segments are extracted.",
)
@click.option("--address", default=None, help="Interval labels: Dask scheduler address.")
@click.option("--mode", type=click.Choice(["aligned", "unaligned"]), default="aligned")
@click.option(
    "--max-len",
    default=None,
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
@click.option("--split", "split_rule", default=None, help="e.g. random:0.8,0.1,0.1:SEED.")
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
    mode: str,
    max_len: str | None,
    weighted: bool,
    cap: str,
    split_rule: str | None,
    strict: bool,
) -> None:
    """Align a feature store to words (or cap it) and join labels into a training dataset.

    With interval labels of full videos, their segments are first extracted from --videos into
    FEATURES_DIR (cached per segment, resumable)."""
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
    extract = ExtractOptions(preset=preset, workers=workers, engine=engine, address=address)
    summary = build_dataset(features_dir, labels, out, options, list(videos) or None, extract)
    if summary.extract is not None:
        done = summary.extract
        click.echo(
            f"{done.total} segments of {_count(done.recordings, 'recording')}: "
            f"{done.extracted} extracted, {done.cached} from cache, {len(done.failed)} failed"
        )
        for unit_id, reason in done.failed[:20]:
            click.echo(f"  failed {unit_id}: {reason}", err=True)
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


@main.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seed", type=int, default=0, help="Random seed (default 0).")
@click.option("--n-train", type=click.IntRange(min=1), default=600, help="Training clips (600).")
@click.option("--n-valid", type=click.IntRange(min=1), default=150, help="Validation clips (150).")
@click.option("--n-test", type=click.IntRange(min=1), default=300, help="Test clips (300).")
@click.option("--seq-len", type=click.IntRange(min=4), default=60, help="Steps per clip (60).")
@user_errors
def synth(out: str, seed: int, n_train: int, n_valid: int, n_test: int, seq_len: int) -> None:
    """Write the built-in synthetic MOSEI-shaped dataset as OUT/train_valid_test.pt."""
    from pathlib import Path

    from carat.data import make_synthetic

    info = make_synthetic(
        Path(out) / "train_valid_test.pt", n_train, n_valid, n_test, seed=seed, seq_len=seq_len
    )
    sizes = ", ".join(f"{split} {n}" for split, n in info.sizes.items())
    counts = ", ".join(f"{label} {n}" for label, n in info.label_counts.items())
    click.echo(f"wrote {info.path} ({info.path.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"clips:  {sizes}; {info.seq_len} steps, text 300 / visual 35 / audio 74 dims")
    click.echo(f"labels: {counts}")
    click.echo(f"planted truth (each label's carrier modality): {info.planted_path}")
    click.echo(f"train on it: carat-cli train --dataset mosei --data-dir {out} --out RUN_DIR")


def _parse_seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


DATASET_HELP = "mosei | mosei-unaligned | m3ed | PATH to a dataset file or folder."


@main.command()
@click.option("--dataset", required=True, help=DATASET_HELP)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where benchmark files live.")
@click.option("--config", "config", help="Preset name or YAML file [default: the dataset's].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("--epochs", type=int, help="Override train.epochs.")
@click.option("--batch-size", type=int, help="Override train.batch_size.")
@click.option("--seeds", callback=_parse_seeds, help="Comma-separated seeds, e.g. 1,2,3.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Override train.device.")
@click.option(
    "--arch",
    type=click.Choice(["carat", "early-fusion"]),
    default="carat",
    show_default=True,
    help="Model: CARAT or the early-fusion baseline.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@user_errors
def train(
    dataset: str,
    data_dir: str | None,
    config: str | None,
    overrides: tuple[str, ...],
    epochs: int | None,
    batch_size: int | None,
    seeds: list[int] | None,
    device: str | None,
    arch: str,
    out: str,
) -> None:
    """Train a model (best epoch on validation, test scored once); resumes an interrupted run."""
    from carat.data import load_dataset
    from carat.metrics import format_table
    from carat.train import resolve_run_config, run_training

    data = load_dataset(dataset, data_dir)
    cfg = resolve_run_config(
        data,
        config,
        overrides,
        dataset_arg=dataset,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
    )
    result = run_training(data, cfg, out, seeds=seeds, architecture=arch)
    if not result.is_main:  # other ranks of a torchrun job stay quiet
        return
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"model:         {result.model_dir}")
    click.echo(f"metrics:       {result.run_dir / 'metrics.json'}")
    click.echo(f"plots:         {result.run_dir / 'plots'}")
    seeds_text = ", ".join(str(s) for s in result.seeds)
    click.echo(f"\ntest metrics (seeds {seeds_text}; best seed {result.best_seed}):")
    click.echo(format_table(result.summary["test"]))


def model_on_split(func: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments of a command that runs a saved model over one split of a dataset."""
    options = [
        click.argument("model_dir", type=click.Path(file_okay=False)),
        click.option("--dataset", required=True, help=DATASET_HELP),
        click.option(
            "--data-dir", type=click.Path(file_okay=False), help="Where benchmark files live."
        ),
        click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test"),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto"),
        click.option("--batch-size", type=int, help="Batch size [default: the model's]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@model_on_split
@user_errors
def evaluate(
    model_dir: str,
    dataset: str,
    data_dir: str | None,
    split: str,
    device: str,
    batch_size: int | None,
) -> None:
    """Score a saved model on one split, at the model's own threshold."""
    from carat.data import load_dataset
    from carat.evaluate import evaluate_model
    from carat.metrics import format_table

    data = load_dataset(dataset, data_dir)
    metrics = evaluate_model(model_dir, data, split=split, batch_size=batch_size, device=device)
    click.echo(
        f"{model_dir} on {data.name}/{split} ({metrics['num_samples']} samples, "
        f"threshold {metrics['threshold']:.2f}):"
    )
    click.echo(format_table(metrics))


@main.command()
@model_on_split
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for attribution_map.png (heat map) and explain.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def explain(
    model_dir: str,
    dataset: str,
    data_dir: str | None,
    split: str,
    device: str,
    batch_size: int | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Which modality carries each label: per label, the mean contribution of each modality
    over the split's positives, beside the max-pool winner share (the paper's Figure 4); on
    planted data (`carat-cli synth`), how often each names the planted modality."""
    import json
    from pathlib import Path

    from carat.data import load_dataset
    from carat.explain import explain_model, format_explain
    from carat.plots import plot_attribution_map

    data = load_dataset(dataset, data_dir)
    result = explain_model(model_dir, data, split=split, batch_size=batch_size, device=device)
    record = result.to_dict()
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "explain.json").write_text(json.dumps(record, indent=2) + "\n")
        plot_attribution_map(result, folder / "attribution_map.png")
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"{model_dir} on {data.name}/{split} ({result.num_samples} samples):")
    click.echo(format_explain(result))
    if out is not None:
        click.echo(f"wrote {Path(out) / 'attribution_map.png'} and {Path(out) / 'explain.json'}")


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help="Feature store folder.")
@click.option("--preset", default="default", show_default=True, help="default, contextual, fast.")
@click.option(
    "--modalities", default="text,visual,audio", show_default=True, help="Comma-separated."
)
@click.option("--workers", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--glob", "glob", default=None, help="Only clips whose path matches, e.g. '*.mp4'.")
@click.option("--shard", default=None, help="I/N: this machine's share of the clips (I from 0).")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--address", default=None, help="Dask scheduler, e.g. tcp://HOST:8786.")
@click.option("--strict", is_flag=True, help="Exit non-zero if any clip failed.")
@click.option("--export-csd", type=click.Path(), default=None, help="Also write .csd files here.")
@click.option(
    "--segments",
    default="none",
    show_default=True,
    help="Cut recordings into utterances: auto|transcript|asr|vad|fixed:SECONDS|none "
    "(none: whole clips).",
)
@click.option("--min-segment", type=float, default=None, help="Shortest segment, seconds.")
@click.option("--max-segment", type=float, default=None, help="Longest segment, seconds.")
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
) -> None:
    """Extract features of clips, folders, list files or tar/zip archives into a store."""
    from tqdm import tqdm

    from pipeline.extract import run_extract

    unit = "clip" if segments.strip() == "none" else "segment"
    bar = tqdm(unit=unit, dynamic_ncols=True, smoothing=0.1)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
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
        )
    finally:
        bar.close()
    if summary.total == 0 and shard is not None:
        click.echo(
            f"nothing to do: shard {shard} holds none of the clips given (the other shards do)"
        )
        return
    units = "clips"
    if summary.segmented:
        units = f"segments of {_count(summary.recordings, 'recording')}"
    click.echo(
        f"{summary.total} {units}: {summary.extracted} extracted, {summary.cached} from cache, "
        f"{len(summary.failed)} failed ({summary.partial} of them partly extracted) "
        f"in {summary.seconds:.1f} s"
    )
    shown = 20
    for clip_id, reason in summary.failed[:shown]:
        click.echo(f"  failed {clip_id}: {reason}", err=True)
    if len(summary.failed) > shown:
        click.echo(f"  ... and {len(summary.failed) - shown} more", err=True)
    if summary.failed:
        click.echo(f"errors listed in {summary.errors_file}", err=True)
    for path in summary.exported:
        click.echo(f"wrote {path}")
    if summary.usable == 0 or (strict and summary.failed):
        sys.exit(1)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


if __name__ == "__main__":
    main()
