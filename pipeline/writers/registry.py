"""The writer registry: every output format of ``predict`` is a :class:`Writer` found by name.

A writer module renders one format and registers itself with :func:`writer`. What it renders
is either every input's prediction (``INPUTS``: the table, JSON, CSV, printed by the CLI) or one
recording's :class:`~pipeline.timeline.Timeline` (``RECORDING``: subtitles, plot, report, written
to files). Rendering is pure (it returns the text or bytes); :meth:`Writer.write` puts them in a
file or a stream.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.predict import ClipPrediction

log = logging.getLogger(__name__)

INPUTS = "inputs"  # renders a sequence of ClipPrediction (every input given to predict)
RECORDING = "recording"  # renders the Timeline of one recording
Scope = Literal["inputs", "recording"]
Render = Callable[..., str | bytes]


@dataclass(frozen=True)
class Writer:
    """One output format. ``flag``: predict's option for it; ``describes``: what it is, for
    the option's help ("emotion subtitles (SubRip)")."""

    name: str
    scope: Scope
    render: Render
    flag: str
    describes: str

    def write(self, result: Any, target: str | os.PathLike | IO, **options: Any) -> None:
        """Render ``result`` and write it to ``target``: a file path (its folder is created)
        or an open stream (text, or binary for a binary format)."""
        content = self.render(result, **options)
        if not isinstance(target, str | os.PathLike):
            target.write(content)
            return
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        log.info("wrote %s (%s)", path, self.name)


WRITERS: dict[str, Writer] = {}


def writer(
    name: str, scope: Scope, describes: str, flag: str | None = None
) -> Callable[[Render], Render]:
    """Register the decorated render function as the writer ``name``."""

    def register(render: Render) -> Render:
        WRITERS[name] = Writer(name, scope, render, flag or name, describes)
        return render

    return register


def get_writer(name: str) -> Writer:
    """The writer called ``name``, or a PipelineError listing the ones there are."""
    try:
        return WRITERS[name]
    except KeyError:
        known = ", ".join(WRITERS)
        raise PipelineError(f"no output format {name!r}; the formats are: {known}") from None


def write_recording_files(
    predictions: Sequence[ClipPrediction], targets: Mapping[str, str | os.PathLike | None]
) -> list[Path]:
    """Write the one predicted recording's timeline with each writer named in ``targets``
    (writer name -> path; None: not wanted); returns the paths written. A file refers to the
    recording by a path relative to itself (:meth:`Timeline.seen_from`)."""
    wanted = {get_writer(name): Path(path) for name, path in targets.items() if path is not None}
    if not wanted:
        return []
    flags = ", ".join(f"--{w.flag}" for w in wanted)
    if any(w.scope != RECORDING for w in wanted):
        raise PipelineError(f"{flags}: only a recording's files can be written here")
    if len(predictions) != 1:
        raise PipelineError(
            f"{flags}: these files describe one recording, but {len(predictions)} inputs were "
            "given; predict one recording at a time to write them"
        )
    [clip] = predictions
    if clip.timeline is None:
        raise PipelineError(f"{clip.source}: no timeline to write ({clip.error})")
    for chosen, path in wanted.items():
        chosen.write(clip.timeline.seen_from(path.parent), path)
    return list(wanted.values())
