"""Options that several commands take, each defined once. Where commands need another default
(segments: whole clips for extract, auto for predict), the command passes it in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DATASET_HELP = "mosei | mosei-unaligned | m3ed | PATH to a dataset file or folder."
SEGMENTS_HELP = (
    "How to cut a recording into utterances: auto (transcript cues, else speech recognition, "
    "else voice activity, else fixed windows), transcript, asr, vad, fixed:SECONDS, or none "
    "(the whole file as one clip)."
)

FACE_HELP = (
    "Whose face gives the visual features: auto (the face whose mouth moves with the voice, "
    "else the largest), largest, or a face track id (1, 2, ...; as the outputs name them)."
)


def stacked(*decorators: Decorator) -> Decorator:
    """Several option decorators as one, in the order they are listed (as in --help)."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def segment_options(default: str | None, shown: str | None = None) -> Decorator:
    """--segments (``default`` when not given; ``shown`` says what an unset default means),
    --min-segment, --max-segment."""
    return stacked(
        click.option("--segments", default=default, show_default=shown or True, help=SEGMENTS_HELP),
        click.option(
            "--min-segment", type=float, help="Shortest segment in seconds (shorter: merged)."
        ),
        click.option(
            "--max-segment", type=float, help="Longest segment in seconds (longer: split)."
        ),
    )


def speakers_option(default: str, how: str) -> Decorator:
    """--speakers auto|N|none (``default`` when not given); ``how``: what it does here."""
    return click.option(
        "--speakers",
        default=default,
        show_default=True,
        help=f"Speaker diarization: auto, none or a number of speakers; {how}.",
    )


def _language_code(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from featurizers.languages import check_language

    try:
        return None if value is None else check_language(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def speech_options() -> Decorator:
    """--language (a checked ISO 639-1 code; unset: detected per segment), --translate."""
    return stacked(
        click.option(
            "--language",
            callback=_language_code,
            help="Spoken language (ISO 639-1 code, e.g. fr) instead of detecting it per segment.",
        ),
        click.option(
            "--translate",
            is_flag=True,
            help="Recognise speech as its English translation (word times then only per sentence).",
        ),
    )


def device_option(default: str | None, shown: str = "") -> Decorator:
    """--device auto|cpu|cuda; ``shown`` says what an unset (None) default means."""
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default=default,
        show_default=shown or True,
        help="Where the model runs (auto: cuda when there is one).",
    )


def batch_size_option(shown: str) -> Decorator:
    """--batch-size; ``shown`` says where it comes from when not given."""
    return click.option(
        "--batch-size", type=click.IntRange(min=1), show_default=shown, help="Batch size."
    )


def _parse_seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


seeds_option = click.option(
    "--seeds",
    callback=_parse_seeds,
    help="Comma-separated seeds, e.g. 1,2,3 [default: train.seed].",
)
workers_option = click.option(
    "--workers", type=click.IntRange(min=1), help="Extraction processes [default: all cores]."
)
preset_option = click.option(
    "--preset", default="default", show_default=True, help="Featurizers: default, contextual, fast."
)
engine_options = stacked(
    click.option(
        "--engine",
        type=click.Choice(["local", "dask"]),
        default="local",
        show_default=True,
        help="Where the work runs: local processes or a Dask cluster.",
    ),
    click.option("--address", help="Dask scheduler address, e.g. tcp://HOST:8786."),
)
dataset_options = stacked(
    click.option("--dataset", required=True, help=DATASET_HELP),
    click.option(
        "--data-dir", type=click.Path(file_okay=False), help="Where benchmark files live."
    ),
)
cache_option = click.option(
    "--cache", type=click.Path(file_okay=False), help="Feature cache [$CARAT_CACHE]."
)


def face_option(prefix: str = "") -> Decorator:
    """--face auto|largest|ID; ``prefix`` says when it applies (e.g. "Interval labels: ")."""
    return click.option("--face", default="auto", show_default=True, help=prefix + FACE_HELP)
