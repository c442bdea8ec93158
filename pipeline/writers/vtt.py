"""Emotion subtitles in WebVTT (``--vtt``): the SRT cues, for browsers' ``<track>``."""

from __future__ import annotations

import html

from pipeline.timeline import Timeline
from pipeline.writers.cues import SUBTITLE_WORDS_CHARS, cue_lines, cue_time
from pipeline.writers.registry import RECORDING, writer


@writer("vtt", RECORDING, "emotion subtitles (WebVTT)")
def to_vtt(timeline: Timeline, words_chars: int = SUBTITLE_WORDS_CHARS) -> str:
    """The cues of the SRT writer (text escaped as WebVTT requires), each identified by its
    segment index."""
    note = f"carat emotions for {timeline.source}; threshold {timeline.threshold:.2f}"
    blocks = ["WEBVTT", "NOTE " + " ".join(note.replace("-->", "→").split())]
    for seg in timeline.ordered():
        lines = cue_lines(seg, timeline.threshold, words_chars)
        text = "\n".join(html.escape(line, quote=False) for line in lines)
        times = f"{cue_time(seg.start, '.')} --> {cue_time(seg.end, '.')}"
        blocks.append(f"segment-{seg.index}\n{times}\n{text}")
    return "\n\n".join(blocks) + "\n"
