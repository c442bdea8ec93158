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


if __name__ == "__main__":
    main()
