"""Errors of the pipeline stages that a user can act on."""


class PipelineError(Exception):
    """One line naming the input, what is wrong with it and what to do."""
