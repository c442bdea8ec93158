"""Write one recording's timeline to the files `carat-cli predict` was asked for.

Subtitles, plot and report describe one recording, so they need exactly one input that was
predicted. The report's player loads the recording by a path relative to the report, so the
pair can be moved together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.predict import ClipPrediction
from pipeline.timeline import plot_timeline, render_report, to_srt, to_vtt

FILE_KINDS = ("srt", "vtt", "plot", "report")


def write_timeline_files(
    predictions: Sequence[ClipPrediction], files: Mapping[str, str | os.PathLike | None]
) -> list[Path]:
    """Write each requested file (kind -> path, see ``FILE_KINDS``); returns what was written."""
    wanted = {kind: Path(path) for kind, path in files.items() if path is not None}
    if not wanted:
        return []
    options = ", ".join(f"--{kind}" for kind in wanted)
    if len(predictions) != 1:
        raise PipelineError(
            f"{options}: these files describe one recording, but {len(predictions)} inputs were "
            "given; predict one recording at a time to write them"
        )
    [clip] = predictions
    if clip.timeline is None:
        raise PipelineError(f"{clip.source}: no timeline to write ({clip.error})")
    timeline = clip.timeline
    written = []
    for kind, path in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "srt":
            path.write_text(to_srt(timeline), encoding="utf-8")
        elif kind == "vtt":
            path.write_text(to_vtt(timeline), encoding="utf-8")
        elif kind == "plot":
            plot_timeline(timeline, path)
        else:
            media = timeline.media_path
            if media is not None:
                media = os.path.relpath(Path(media).resolve(), path.resolve().parent)
            render_report(replace(timeline, media_path=media), path)
        written.append(path)
    return written
