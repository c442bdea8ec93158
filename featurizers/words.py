"""The words of a clip and their times: from a transcript sidecar, else offline speech recognition.

Order of trust: an explicit ``transcript=`` file, then a sidecar beside the clip with the same stem
(.json, .srt, .vtt, .txt), then Whisper. Words whose times are unknown or coarse (plain text,
subtitle cues, Whisper's onsets) are forced-aligned to the audio one short utterance at a time;
where alignment fails, the rough times are kept and a warning is logged.

A segment of a recording (``featurizers.media.SegmentClip``) takes the part of the recording's
transcript inside its range, in segment time; without one, the words recognised while the
recording was segmented (``clip.text``) are aligned to the segment's sound, else Whisper runs
on the segment alone. A clip without sound has words only from a transcript.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import numpy as np

from featurizers import asr as speech
from featurizers.transcripts import (
    Cue,
    Transcript,
    Word,
    find_sidecar,
    read_transcript,
    restrict,
    spread_evenly,
    tokenize,
)

__all__ = ["Speech", "Word", "get_speech", "get_words", "words_source"]

log = logging.getLogger(__name__)

SAMPLE_RATE = speech.SAMPLE_RATE
ENGLISH = "en"  # the language of forced alignment's acoustic model (pocketsphinx en-us)
# Plain text is forced-aligned in one pass over up to this much speech (about 40x real time on
# one core; a 240-s clip of synthetic speech aligned with onsets within 0.12 s). Longer speech,
# or a pass that fails, is first cut into utterances at Whisper's segments (several times slower).
MAX_ALIGN_SECONDS = 300.0
_PAD = 0.5  # seconds of audio around an utterance's rough span given to the aligner
_MAX_SHIFT = 1.0  # an aligned onset this far outside Whisper's word span means a bad alignment
_SURE_LANGUAGE = 0.5  # a detected language below this probability is reported as uncertain
_SILENCE_RMS = 1e-3  # peak frame RMS below this (about -60 dBFS) is taken as no speech


def words_source(clip_path: Path, transcript: Path | None = None) -> Path | None:
    """The transcript file that :func:`get_words` will use, or None for speech recognition."""
    return Path(transcript) if transcript is not None else find_sidecar(Path(clip_path))


@dataclass
class Speech:
    """A clip's words and the language they were spoken in."""

    words: list[Word]
    language: str | None = None  # ISO 639-1 code; None when not known (a transcript, silence)
    translated: bool = False  # the words are Whisper's English translation of the speech

    @property
    def words_language(self) -> str | None:
        """The language the words are written in (English after translation)."""
        return ENGLISH if self.translated else self.language


def get_words(
    clip: Any,  # featurizers.media.MediaClip or SegmentClip
    transcript: Path | None = None,
    asr: str = speech.DEFAULT_ASR,
    align: bool = True,
    language: str | None = None,
) -> list[Word]:
    """The clip's words in order with start/end seconds; [] when nothing is said."""
    return get_speech(clip, transcript, asr, align, language).words


def get_speech(
    clip: Any,  # featurizers.media.MediaClip or SegmentClip
    transcript: Path | None = None,
    asr: str = speech.DEFAULT_ASR,
    align: bool = True,
    language: str | None = None,
    translate: bool = False,
    wanted: str | None = None,
) -> Speech:
    """The clip's words in order with start/end seconds (none when nothing is said).

    ``language`` forces the spoken language (a code); None detects it from the sound.
    ``translate`` recognises the speech as its English translation. ``wanted``: the only
    language the caller can use; speech detected in another one is not transcribed (its words
    would be dropped anyway). A transcript's language is the forced one, else unknown (None).
    """
    source = words_source(Path(clip.path), transcript)
    parsed = _transcript_for(clip, source) if source is not None else None
    if parsed is None:
        known = None if translate else getattr(clip, "text", None)
        if not clip.info.has_audio:
            log.warning("%s: no audio stream and no transcript; no words", clip)
            return Speech([], language)
        audio = clip.audio(SAMPLE_RATE)
        if _speech_span(audio) is None:
            return Speech([], language)
        spoken = language or _detected(clip, audio, asr)
        if wanted is not None and spoken != wanted and not translate:
            return Speech([], spoken)
        # forced alignment knows English only: other languages (and a translation, whose words
        # are not the spoken ones) keep Whisper's times
        alignable = align and not translate and spoken == ENGLISH
        if not known:
            return _recognise(audio, asr, alignable, spoken, translate)
        parsed = Transcript(cues=[Cue(tokenize(known))])
        return Speech(_timed(clip, parsed, asr, alignable, spoken), spoken)
    alignable = align and language in (None, ENGLISH)
    return Speech(_timed(clip, parsed, asr, alignable, language), language)


def _detected(clip: Any, audio: np.ndarray, asr: str) -> str:
    code, probability = speech.detect_language(audio, asr)
    if probability < _SURE_LANGUAGE:
        log.warning(
            "%s: the spoken language is uncertain (%s, p=%.2f); give it with --language if wrong",
            clip,
            code,
            probability,
        )
    return code


def _timed(
    clip: Any, parsed: Transcript, asr: str, align: bool, language: str | None
) -> list[Word]:
    """The transcript's words with times: given ones, else aligned to (or spread over) speech."""
    if parsed.timed_words:
        return parsed.timed_words
    cues = [cue for cue in parsed.cues if cue.words]
    if not cues:
        return []
    if not clip.info.has_audio:  # nothing to align to: spread each cue over its span
        end = clip.info.duration
        return [w for c in cues for w in spread_evenly(c.words, c.start or 0.0, c.end or end)]
    audio = clip.audio(SAMPLE_RATE)
    if len(cues) == 1 and cues[0].start is None:
        return _time_plain_text(audio, cues[0].words, asr, align, language)
    return _time_cues(audio, cues, align)


def _transcript_for(clip: Any, source: Path) -> Transcript | None:
    """The transcript, cut to the clip's range when it is a segment of a recording; None when
    a plain-text transcript cannot say which of its words a segment holds."""
    parsed = read_transcript(source)
    start = getattr(clip, "start", None)
    if start is None:
        return parsed
    part = restrict(parsed, start, start + clip.info.duration)
    if part is None:
        log.warning(
            "%s: plain text says nothing of when each word is said, so it cannot be cut to "
            "the segment %s; using speech recognition there (give a .srt/.vtt/.json instead)",
            source,
            clip,
        )
    return part


def _recognise(
    audio: np.ndarray, asr: str, align: bool, language: str | None, translate: bool
) -> Speech:
    recognised = speech.transcribe(audio, asr, language, word_times=not align, translate=translate)
    utterances = recognised.utterances
    found = Speech([w for u in utterances for w in u], recognised.language, translate)
    if not align or not found.words:
        return found
    # Align all recognised words in one pass (Whisper's segment times are rough); kept when
    # most words stay near the segment times (a guard against hallucinated text)
    whole = _align_speech(audio, [w.text for w in found.words])
    if whole is not None:
        shifts = [abs(a.start - r.start) for a, r in zip(whole, found.words, strict=True)]
        if float(np.median(shifts)) <= _MAX_SHIFT:
            return replace(found, words=whole)
    return replace(found, words=_refine(audio, utterances, max_shift=_MAX_SHIFT))


def _time_cues(audio: np.ndarray, cues: list[Cue], align: bool) -> list[Word]:
    """Subtitle cues: each cue's words spread over its speech, then aligned within the cue."""
    rough = [_spread_over_speech(audio, cue.words, cue.start, cue.end) for cue in cues]
    return _refine(audio, rough, max_shift=None) if align else [w for c in rough for w in c]


def _time_plain_text(
    audio: np.ndarray, words: list[str], asr: str, align: bool, language: str | None
) -> list[Word]:
    """Plain text: one alignment over the speech when it is not too long, else (or when that
    fails) cut into utterances found by Whisper."""
    duration = len(audio) / SAMPLE_RATE
    if not align:
        return _spread_over_speech(audio, words, 0.0, duration)
    aligned = _align_speech(audio, words)
    if aligned is not None:
        return aligned
    recognised = speech.transcribe(audio, asr, language).utterances
    utterances = _anchor_to_recognition(words, recognised, duration)
    if utterances is None:
        log.warning("speech recognition matched none of the transcript; spreading words evenly")
        return _spread_over_speech(audio, words, 0.0, duration)
    return _refine(audio, utterances, max_shift=_MAX_SHIFT)


def _align_speech(audio: np.ndarray, words: list[str]) -> list[Word] | None:
    """One alignment pass over the clip's speech, or None when it is too long or fails."""
    duration = len(audio) / SAMPLE_RATE
    span = _speech_span(audio) or (0.0, duration)
    if span[1] - span[0] > MAX_ALIGN_SECONDS:
        return None
    return _align_span(audio, words, span[0] - _PAD, span[1] + _PAD)


def _refine(audio: np.ndarray, utterances: list[list[Word]], max_shift: float | None) -> list[Word]:
    """Forced-align each utterance inside its rough span; keep the rough times where it fails."""
    duration = len(audio) / SAMPLE_RATE
    words: list[Word] = []
    failed = 0
    for i, rough in enumerate(utterances):
        # the aligner may look PAD beyond the rough span, but not past halfway to a neighbour
        lo = rough[0].start - _PAD
        hi = rough[-1].end + _PAD
        if i > 0:
            lo = max(lo, (utterances[i - 1][-1].end + rough[0].start) / 2)
        if i + 1 < len(utterances):
            hi = min(hi, (rough[-1].end + utterances[i + 1][0].start) / 2)
        aligned = _align_span(audio, [w.text for w in rough], max(lo, 0.0), min(hi, duration))
        if aligned is not None and max_shift is not None:
            # Whisper stretches a word over a pause before it, so measure from its whole span
            shifts = [
                max(r.start - a.start, a.start - r.end) for a, r in zip(aligned, rough, strict=True)
            ]
            if max(shifts) > max_shift:
                aligned = None
        if aligned is None:
            failed += 1
            aligned = rough
        words.extend(aligned)
    if failed:
        log.warning(
            "forced alignment failed on %d of %d utterances; kept their rough word times",
            failed,
            len(utterances),
        )
    return words


def _align_span(audio: np.ndarray, words: list[str], start: float, end: float) -> list[Word] | None:
    start = max(start, 0.0)
    a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
    return speech.force_align(audio[a:b], words, offset=start)


def _anchor_to_recognition(
    words: list[str], utterances: list[list[Word]], duration: float
) -> list[list[Word]] | None:
    """Give an exact transcript Whisper's rough times and its utterance boundaries.

    Transcript words that match a recognised word take its time and utterance; runs that do not
    match share the gap between their matched neighbours and join the utterance before them.
    """
    recognised = [(w, u) for u, utterance in enumerate(utterances) for w in utterance]
    matcher = SequenceMatcher(a=words, b=[w.text for w, _ in recognised], autojunk=False)
    anchor: dict[int, int] = {}
    for a, b, size in matcher.get_matching_blocks():
        anchor.update((a + k, b + k) for k in range(size))
    if not anchor:
        return None
    timed: list[tuple[Word, int]] = []
    i = 0
    while i < len(words):
        if i in anchor:
            w, u = recognised[anchor[i]]
            timed.append((Word(words[i], w.start, w.end), u))
            i += 1
            continue
        j = next((k for k in range(i, len(words)) if k in anchor), len(words))
        prev = timed[-1] if timed else None
        nxt = recognised[anchor[j]] if j < len(words) else None
        lo = prev[0].end if prev else max(0.0, nxt[0].start - 0.3 * (j - i))
        hi = nxt[0].start if nxt else min(duration, lo + 0.3 * (j - i))
        group = prev[1] if prev else nxt[1]
        timed.extend((w, group) for w in spread_evenly(words[i:j], lo, max(hi, lo)))
        i = j
    grouped: list[list[Word]] = []
    for k, (w, u) in enumerate(timed):
        if k == 0 or u != timed[k - 1][1]:
            grouped.append([])
        grouped[-1].append(w)
    return grouped


def _spread_over_speech(
    audio: np.ndarray, words: list[str], start: float | None, end: float | None
) -> list[Word]:
    """Rough times: words share the voiced part of [start, end] by their length."""
    start = 0.0 if start is None else start
    end = len(audio) / SAMPLE_RATE if end is None else end
    a = int(start * SAMPLE_RATE)
    span = _speech_span(audio[a : int(end * SAMPLE_RATE)])
    lo, hi = (start + span[0], start + span[1]) if span else (start, end)
    return spread_evenly(words, lo, hi)


def _speech_span(audio: np.ndarray, frame: int = 320) -> tuple[float, float] | None:
    """First and last 20-ms frame within 34 dB of the loudest one, or None if silent."""
    n = len(audio) // frame
    if n == 0:
        return None
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    if rms.max() < _SILENCE_RMS:
        return None
    loud = np.flatnonzero(rms >= 0.02 * rms.max())
    return float(loud[0] * frame / SAMPLE_RATE), float((loud[-1] + 1) * frame / SAMPLE_RATE)
