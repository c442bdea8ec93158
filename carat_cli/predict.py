"""`carat-cli predict`: a model's emotions for clips or whole recordings, in any writer's format."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from carat_cli.common import examples, progress_bar, user_errors
from carat_cli.options import (
    cache_option,
    face_option,
    segment_options,
    speakers_option,
    speech_options,
)
from pipeline.writers import INPUTS, RECORDING, WRITERS, Writer, get_writer, write_recording_files

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
    for (writer name -> path), in the registry's order."""
    asked = [(w, outputs[w.name]) for w in WRITERS.values() if w.name in outputs]
    printed = [w for w, on in asked if w.scope == INPUTS and on]
    if len(printed) > 1:
        flags = " and ".join(f"--{w.flag}" for w in printed)
        raise click.UsageError(f"{flags} are alternatives; give one")
    files = {w.name: path for w, path in asked if w.scope == RECORDING}
    return (printed[0] if printed else get_writer(DEFAULT_OUTPUT)), files


@click.command(
    epilog=examples(
        "carat-cli predict clip.mp4 --model demo-output/model",
        "carat-cli predict clips/ --model runs/mine/model --csv > predictions.csv",
        "carat-cli predict interview.mp4 --model M --srt emotions.srt --report report.html",
        "carat-cli predict interview.mp4 --model M --speakers 2 --eaf interview.eaf",
        "carat-cli predict lecture.mp4 --model M --segments fixed:10 --plot timeline.png",
        "carat-cli predict interview_fr.mp4 --model M --language fr --translate",
    )
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_dir", required=True, type=click.Path(), help="Model directory.")
@click.option("--transcript", type=click.Path(), help="Transcript of the one clip given.")
@segment_options(
    default=None,
    shown="the model's: as its training data was cut; auto for a model trained on whole clips "
    "or labelled intervals",
)
@speakers_option(
    "auto",
    "segments never straddle a change of speaker and every output names each one's speaker",
)
@speech_options()
@output_options
@cache_option
@face_option()
@user_errors
def predict(
    inputs: tuple[str, ...],
    model_dir: str,
    transcript: str | None,
    segments: str | None,
    min_segment: float | None,
    max_segment: float | None,
    speakers: str,
    language: str | None,
    translate: bool,
    cache: str | None,
    face: str,
    **outputs: Any,
) -> None:
    """Predict the emotions of clips or whole recordings (files, folders, list files or
    archives) with a model: per utterance segment, each label's probability and what each
    modality contributed to it."""
    from pipeline.predict import predict_clips

    printer, files = chosen_outputs(outputs)
    with progress_bar("clip") as progress:
        results = predict_clips(
            inputs,
            model_dir,
            transcript,
            cache_dir=cache,
            progress=progress,
            segments=segments,
            min_segment=min_segment,
            max_segment=max_segment,
            speakers=speakers,
            language=language,
            translate=translate,
            face=face,
        )
    written = write_recording_files(results, files)
    for result in results:
        for note in [] if result.timeline is None else result.timeline.notes:
            click.echo(f"note: {result.source}: {note}", err=True)
    click.echo(printer.render(results), nl=False)
    if printer.name == DEFAULT_OUTPUT:
        for path in written:
            click.echo(f"wrote {path}")
    failed = [r for r in results if r.error is not None]
    for result in failed:
        click.echo(f"error: {result.error}", err=True)
    if failed:
        sys.exit(1)


commands = [predict]
