"""Emotion subtitles in SubRip (``--srt``): watch a recording with its emotions in any player."""

from __future__ import annotations

from pipeline.timeline import Timeline
from pipeline.writers.cues import SUBTITLE_WORDS_CHARS, cue_lines, cue_time
from pipeline.writers.registry import RECORDING, writer


@writer("srt", RECORDING, "emotion subtitles (SRT)")
def to_srt(timeline: Timeline, words_chars: int = SUBTITLE_WORDS_CHARS) -> str:
    """One cue per segment; line 1 the present labels with their probabilities (and the missing
    modalities in brackets), line 2 the first words (up to ``words_chars`` characters; 0 leaves
    it out). SubRip has no escapes and players read ``<`` as a tag, so angle brackets in words
    become ‹ ›."""
    cues = []
    for number, seg in enumerate(timeline.ordered(), start=1):
        lines = cue_lines(seg, timeline.threshold, words_chars)
        text = "\n".join(lines).replace("<", "‹").replace(">", "›")
        times = f"{cue_time(seg.start, ',')} --> {cue_time(seg.end, ',')}"
        cues.append(f"{number}\n{times}\n{text}\n")
    return "\n".join(cues)
