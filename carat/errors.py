"""Errors a user can act on: the CLI prints their one-line message and exits non-zero."""


class CaratError(Exception):
    """Base of the model package's user-facing errors."""


class DataError(CaratError):
    """A dataset file is missing or malformed; the message names the file and the fix."""
