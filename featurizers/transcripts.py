"""Transcript sidecars: read .json / .srt / .vtt / .txt files into words and cues.

A sidecar either gives every word its time (.json with word times) or gives text whose words
still need times: subtitle cues with a time span (.srt, .vtt) or plain text with none (.txt).
For a long recording, :func:`timed_cues` gives the utterance spans a transcript declares (cues,
Whisper segments, or timed words grouped at pauses) and :func:`restrict` cuts a transcript to
one segment of the recording, in segment time.
All words are normalised the same way (lowercase, no punctuation) whatever their source, so the
word-vector lookup and forced alignment see one spelling.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurizers.base import MediaError

SIDECAR_SUFFIXES = (".json", ".srt", ".vtt", ".txt")

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_TAG = re.compile(r"<[^>]*>|\{[^}]*\}")
_TIMING = re.compile(
    r"^\s*(?P<start>[\d:.,]+)\s*-->\s*(?P<end>[\d:.,]+)"  # "00:00:01,000 --> 00:00:02,500 ..."
)

FORMAT_HELP = {
    ".json": (
        'a list of {"word", "start", "end"}, {"words": [...]}, or whisper-style '
        '{"segments": [{"start", "end", "text", "words": [...]}]}'
    ),
    ".srt": "SubRip cues: an index line, 'HH:MM:SS,mmm --> HH:MM:SS,mmm', then text lines",
    ".vtt": "WebVTT: a 'WEBVTT' header, then cues of '[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm' and text",
    ".txt": "UTF-8 plain text",
}


@dataclass
class Word:
    """One spoken word (normalised: lowercase, no punctuation) and its time span in seconds."""

    text: str
    start: float
    end: float


@dataclass
class Cue:
    """Words known to be spoken in [start, end]; ``None`` times mean anywhere in the clip."""

    words: list[str]
    start: float | None = None
    end: float | None = None


@dataclass
class Transcript:
    """What a sidecar says: words that already have times, or cues whose words need times.

    ``segments``: the spans of a Whisper-style JSON's segments, kept even when their words
    are timed (they are the utterances the transcript declares).
    """

    timed_words: list[Word] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    segments: list[Cue] = field(default_factory=list)


def tokenize(text: str) -> list[str]:
    """Lowercase words without punctuation; internal apostrophes stay ("don't")."""
    return _TOKEN.findall(text.replace("\u2019", "'").lower())


def find_sidecar(clip_path: Path) -> Path | None:
    """The transcript next to a clip with the same stem, in order .json, .srt, .vtt, .txt."""
    for suffix in SIDECAR_SUFFIXES:
        candidate = clip_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_transcript(path: Path) -> Transcript:
    """Parse a sidecar; any problem becomes a one-line MediaError naming the expected format."""
    suffix = path.suffix.lower()
    if suffix not in FORMAT_HELP:
        raise MediaError(
            f"{path}: unknown transcript format {suffix!r}; use one of {', '.join(FORMAT_HELP)}"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
        if suffix == ".json":
            return _parse_json(json.loads(text))
        if suffix == ".txt":
            return Transcript(cues=[Cue(tokenize(text))])
        return Transcript(cues=_parse_cues(text))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MediaError(
            f"{path}: cannot read transcript ({reason}); expected {FORMAT_HELP[suffix]}"
        ) from exc


def _parse_json(data: Any) -> Transcript:
    if isinstance(data, dict):
        if "words" in data:
            return Transcript(timed_words=_timed_words(data["words"]))
        if "segments" in data:
            return _parse_segments(data["segments"])
        if "text" in data:
            return Transcript(cues=[Cue(tokenize(str(data["text"])))])
        raise ValueError('no "words", "segments" or "text" key')
    if isinstance(data, list):
        if any(isinstance(entry, dict) and "words" in entry for entry in data):
            return _parse_segments(data)
        return Transcript(timed_words=_timed_words(data))
    raise ValueError(f"top level is a {type(data).__name__}")


def _parse_segments(segments: list[dict[str, Any]]) -> Transcript:
    """Whisper-style segments: their word times when present, else the segment as a cue."""
    transcript = Transcript()
    for seg in segments:
        if seg.get("words"):
            words = _timed_words(seg["words"])
            transcript.timed_words.extend(words)
            if "start" in seg and "end" in seg:
                span = Cue([w.text for w in words], float(seg["start"]), float(seg["end"]))
                transcript.segments.append(span)
        else:
            cue = Cue(tokenize(str(seg["text"])), float(seg["start"]), float(seg["end"]))
            transcript.cues.append(cue)
    if transcript.timed_words and transcript.cues:
        raise ValueError("some segments have word times and some do not")
    return transcript


def _timed_words(entries: list[dict[str, Any]]) -> list[Word]:
    """Entries {"word" or "text", "start", "end"}; one entry holding several tokens is split."""
    words: list[Word] = []
    for entry in entries:
        raw = entry["word"] if "word" in entry else entry["text"]
        start, end = float(entry["start"]), float(entry["end"])
        if end < start:
            raise ValueError(f"word {raw!r} ends ({end}) before it starts ({start})")
        words.extend(spread_evenly(tokenize(str(raw)), start, end))
    return words


def spread_evenly(tokens: list[str], start: float, end: float) -> list[Word]:
    """Share [start, end] among tokens in proportion to their length (a syllable proxy)."""
    total = sum(len(t) for t in tokens)
    words, t = [], start
    for token in tokens:
        step = (end - start) * len(token) / total
        words.append(Word(token, t, t + step))
        t += step
    return words


def _parse_cues(text: str) -> list[Cue]:
    """SRT and WebVTT share the cue shape: a '-->' timing line followed by text lines."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is None:
            continue  # WEBVTT header, NOTE / STYLE / REGION blocks
        match = _TIMING.match(lines[timing_at])
        if match is None:
            raise ValueError(f"bad cue timing line {lines[timing_at].strip()!r}")
        start, end = _seconds(match["start"]), _seconds(match["end"])
        if end < start:
            raise ValueError(f"cue ends before it starts: {lines[timing_at].strip()!r}")
        words = tokenize(_TAG.sub(" ", " ".join(lines[timing_at + 1 :])))
        if words:
            cues.append(Cue(words, start, end))
    if not cues and text.strip() and "-->" not in text:
        raise ValueError("no cue timing line ('-->') found")
    return cues


def _seconds(stamp: str) -> float:
    """'HH:MM:SS,mmm', 'HH:MM:SS.mmm' or 'MM:SS.mmm' to seconds."""
    parts = stamp.replace(",", ".").split(":")
    if not 2 <= len(parts) <= 3:
        raise ValueError(f"bad time stamp {stamp!r}")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def timed_cues(transcript: Transcript, pause: float) -> list[Cue] | None:
    """The utterance spans a transcript declares, in file order; None when it has no times.

    Subtitle cues and Whisper segments are taken as they are; a list of timed words is cut
    into utterances wherever the gap between two words is at least ``pause`` seconds.
    """
    if transcript.segments:
        return list(transcript.segments)
    if transcript.cues:
        if any(cue.start is None or cue.end is None for cue in transcript.cues):
            return None
        return list(transcript.cues)
    if not transcript.timed_words:
        return []
    groups: list[list[Word]] = [[transcript.timed_words[0]]]
    for word in transcript.timed_words[1:]:
        if word.start - groups[-1][-1].end >= pause:
            groups.append([])
        groups[-1].append(word)
    return [Cue([w.text for w in g], g[0].start, max(w.end for w in g)) for g in groups]


def restrict(transcript: Transcript, start: float, end: float) -> Transcript | None:
    """The part of a recording's transcript inside ``[start, end)``, shifted to start at 0.

    A word belongs where its midpoint is; a cue cut by the range keeps the words whose share
    of the cue (spread by length) falls inside. None when the transcript has no times (plain
    text), since then nothing says which words a segment holds.
    """
    length = end - start

    def inside(a: float, b: float) -> bool:
        return start <= (a + b) / 2 < end

    def shift(t: float) -> float:
        return min(max(t - start, 0.0), length)

    if transcript.timed_words:
        words = [
            Word(w.text, shift(w.start), shift(w.end))
            for w in transcript.timed_words
            if inside(w.start, w.end)
        ]
        return Transcript(timed_words=words)
    cues: list[Cue] = []
    for cue in transcript.cues:
        if cue.start is None or cue.end is None:
            return None
        if cue.end <= start or cue.start >= end:
            continue
        if start <= cue.start and cue.end <= end:
            kept = cue.words
        else:
            kept = [w.text for w in spread_evenly(cue.words, cue.start, cue.end)
                    if inside(w.start, w.end)]  # fmt: skip
        if kept:
            cues.append(Cue(kept, shift(cue.start), shift(cue.end)))
    return Transcript(cues=cues)
