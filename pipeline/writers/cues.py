"""What the subtitle writers (SRT, WebVTT) share: cue times and a cue's lines."""

from __future__ import annotations

from pipeline.timeline import SegmentResult, segment_line, short_words

SUBTITLE_WORDS_CHARS = 42  # the usual subtitle line length; the words line is cut there


def cue_time(seconds: float, separator: str) -> str:
    """``hh:mm:ss`` then ``separator`` and milliseconds (``,`` for SubRip, ``.`` for WebVTT)."""
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def cue_lines(seg: SegmentResult, threshold: float, words_chars: int) -> list[str]:
    """Line 1 the segment's emotions (and missing modalities), after its speaker when the
    recording was diarized (``S2: sad 0.62``); line 2 its first words, up to ``words_chars``
    characters (0 leaves it out)."""
    speaker = f"{seg.speaker}: " if seg.speaker else ""
    lines = [speaker + segment_line(seg, threshold)]
    if words_chars > 0 and seg.words:
        lines.append(short_words(seg.words, words_chars))
    # A cue's text may not hold an arrow or a blank line: either would end the cue early.
    return [" ".join(line.replace("-->", "→").split()) for line in lines]
