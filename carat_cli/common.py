"""What every command shares: one-line user errors, the progress bar, help examples."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from carat.errors import CaratError
from featurizers.base import MediaError
from pipeline.errors import PipelineError

USER_ERRORS = (CaratError, MediaError, PipelineError, FileNotFoundError)
Progress = Callable[[int, int], None]


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


@contextmanager
def progress_bar(unit: str) -> Iterator[Progress]:
    """A ``progress(done, total)`` callback that draws a bar on stderr, on a terminal only."""
    from tqdm import tqdm

    bar = tqdm(unit=unit, disable=None, leave=False, dynamic_ncols=True, smoothing=0.1)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


def examples(*lines: str) -> str:
    """The Examples block that ends a command's --help (click's ``epilog``), kept as written."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def echo_failures(failed: Sequence[tuple[str, str]], shown: int = 20) -> None:
    """The first ``shown`` failed units (id, reason) on stderr, then how many more there are."""
    for unit_id, reason in failed[:shown]:
        click.echo(f"  failed {unit_id}: {reason}", err=True)
    if len(failed) > shown:
        click.echo(f"  ... and {len(failed) - shown} more", err=True)


def count(number: int, noun: str) -> str:
    """``1 recording``, ``3 recordings``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
