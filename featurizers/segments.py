"""Cut a long recording into utterance segments, the unit that features and predictions use.

Sources, in the order ``auto`` tries them: the cues of a transcript (.srt / .vtt / Whisper-style
.json segments, or timed words cut at pauses), Whisper's segments (speech recognition), voice
activity (the Silero model inside the faster-whisper wheel), fixed windows. Speech units are
then shaped to look like CMU-MOSEI utterances: one shorter than ``min_len`` joins a near
neighbour (or is widened into the silence around it), one longer than ``max_len`` is split at
its longest pause near the middle (else into equal pieces). Audio is streamed in blocks, so
planning an hour-long file holds a minute of sound at most.

A recording shorter than ``min_len``, or with only one segment found, is one segment covering
it all (source ``"whole"``): the single-clip behaviour. Under ``auto`` so is a clip no longer
than ``max_len`` (a pre-cut utterance: cutting it would throw away a plain-text transcript and
run speech recognition twice); an explicit source still cuts it.

With ``speakers`` (auto or a count) the recording is diarized first (``featurizers.speakers``):
every speech unit is cut where the speaker changes, each segment carries its speaker, and
segments of two speakers are never joined. A short clip with two voices is cut too.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from featurizers.asr import DEFAULT_ASR, SAMPLE_RATE, WHISPER_DECODING, load_whisper
from featurizers.base import MediaError
from featurizers.media import MediaClip
from featurizers.span import WHOLE, Span
from featurizers.speakers import SpeakerOptionError, Turn, diarize, parse_speakers
from featurizers.transcripts import (
    Cue,
    Word,
    find_sidecar,
    read_transcript,
    spread_evenly,
    timed_cues,
    tokenize,
)

log = logging.getLogger(__name__)

HOW = ("auto", "transcript", "asr", "vad", "fixed", "none")
DEFAULT_WINDOW = 10.0  # seconds per fixed window when none is given
_HOW_HELP = "auto, transcript, asr, vad, fixed:SECONDS (e.g. fixed:10) or none"
_END_TOLERANCE_S = 0.5  # a cue may end this far past the recording (rounding, trailing frames)
_OVERLAP_TOLERANCE_S = 0.1  # cues overlapping by less than this are trimmed, not refused
_MIN_UNIT_S = 0.05  # shorter pieces left after clipping are dropped
# Speech recognition runs on a rolling buffer of this many seconds; utterances ending within
# _ASR_EDGE_S of the buffer's end wait for the next block, so none is cut at a block edge.
_ASR_BLOCK_S = 60.0
_ASR_EDGE_S = 3.0
# Voice activity: Silero gives one speech probability per 512 samples (32 ms). Blocks are
# whole numbers of windows; each starts with _VAD_WARMUP windows of the block before, whose
# outputs are dropped, so the model's state has settled where the block's own windows begin.
_VAD_WINDOW = 512
_VAD_BLOCK_WINDOWS = 1000
_VAD_WARMUP = 32
_VAD_ON, _VAD_OFF = 0.5, 0.35  # hysteresis: speech starts above ON, ends below OFF
_VAD_MIN_SPEECH_S = 0.1
_VAD_PAD_S = 0.05
_SNAP_S = 0.5  # how far voice activity may move the edge of a recognised utterance
_TURN_PAUSE_S = 0.3  # diarization embeds speech stretches joined across shorter silences


class SegmentOptionError(MediaError, ValueError):
    """A segmentation option that makes no sense (one line saying what is accepted)."""


@dataclass(frozen=True)
class SegmentationSpec:
    """How to cut a recording (part of the featurizer spec that travels with data and models).

    ``pause``: a silence at least this long ends an utterance (voice activity, timed words,
    recognised words). ``merge_gap``: a short utterance joins a neighbour at most this far away.
    ``asr``/``language``: the speech model used by ``asr`` segmentation, and the spoken
    language's code (None: Whisper detects it in each minute-long block it reads).
    ``speakers``: auto, none or a count (see ``featurizers.speakers``).
    """

    how: str = "auto"
    window: float | None = None
    min_len: float = 3.0
    max_len: float = 30.0
    pause: float = 0.7
    merge_gap: float = 1.0
    asr: str = DEFAULT_ASR
    language: str | None = None
    speakers: str = "none"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "speakers", parse_speakers(self.speakers))
        except SpeakerOptionError as exc:
            raise SegmentOptionError(str(exc)) from None
        if self.how not in HOW:
            raise SegmentOptionError(f"segments {self.how!r}: use one of {_HOW_HELP}")
        if self.window is not None and not self.window > 0:
            raise SegmentOptionError(
                f"segments fixed:{self.window:g}: the window must be a positive number of "
                "seconds, e.g. fixed:10"
            )
        if not 0 <= self.min_len < self.max_len:
            raise SegmentOptionError(
                f"segment lengths min {self.min_len:g} s, max {self.max_len:g} s: need "
                "0 <= min < max (defaults 3 and 30)"
            )
        if not self.pause > 0 or self.merge_gap < 0:
            raise SegmentOptionError(
                f"segment pause {self.pause:g} s / merge gap {self.merge_gap:g} s: the pause "
                "must be positive and the merge gap not negative"
            )

    @property
    def fixed_window(self) -> float:
        return self.window if self.window is not None else DEFAULT_WINDOW

    @classmethod
    def parse(cls, text: str, **limits: Any) -> SegmentationSpec:
        """A ``--segments`` value: auto | transcript | asr | vad | fixed[:SECONDS] | none.

        ``limits`` are the other fields (``min_len``, ``max_len``, ``pause``, ...).
        """
        value = text.strip().lower()
        window = None
        how, _, rest = value.partition(":")
        if how == "fixed" and rest:
            try:
                window = float(rest)
            except ValueError:
                raise SegmentOptionError(
                    f"segments {text!r}: fixed windows take seconds, e.g. fixed:10"
                ) from None
        elif rest or how not in HOW:
            raise SegmentOptionError(f"segments {text!r}: use one of {_HOW_HELP}")
        return cls._make(how=how, window=window, **limits)

    def to_dict(self) -> dict[str, Any]:
        """Its fields; ``speakers`` only when set, so plans and specs stored before it still
        match."""
        data = asdict(self)
        if data["speakers"] == "none":
            del data["speakers"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationSpec:
        return cls._make(**data)

    @classmethod
    def _make(cls, **values: Any) -> SegmentationSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SegmentOptionError(
                f"segment option {unknown[0]!r} is unknown; the options are {', '.join(known)}"
            )
        return cls(**values)


@dataclass
class _Unit:
    """A span of speech while shaping: its words (times rough for cues) and the pauses inside
    it (where it may be split)."""

    start: float
    end: float
    words: list[Word] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)
    speaker: str | None = None

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def text(self) -> str | None:
        return " ".join(w.text for w in self.words) or None


def plan_segments(
    clip: MediaClip, spec: SegmentationSpec, transcript: Path | None = None
) -> list[Span]:
    """The recording's segments as spans: sorted, non-overlapping, inside ``[0, duration]``.

    ``transcript``: an explicit transcript file (else a sidecar beside the recording). An
    explicit ``spec.how`` that cannot work (``transcript`` without one, ``asr``/``vad`` on a
    file without sound) raises ``MediaError``; so does a transcript whose cues overlap, run
    out of order or outlast the recording.
    """
    duration = clip.info.duration
    if spec.how == "none" or duration < spec.min_len:
        return [Span(0.0, duration, WHOLE)]
    turns = speaker_turns(clip, spec)
    voices = {t.speaker for t in turns}
    if spec.how == "auto" and duration <= spec.max_len and len(voices) <= 1:
        # no longer than one utterance may be: a pre-cut clip, kept whole with its own words
        return [Span(0.0, duration, WHOLE, speaker=next(iter(voices), None))]
    if spec.how == "fixed":
        return _finish(_shape(_fixed(duration, spec), spec, duration, turns), "fixed", duration)
    tries = ("transcript", "asr", "vad") if spec.how == "auto" else (spec.how,)
    for source in tries:
        units = _FINDERS[source](clip, spec, transcript, spec.how == source)
        if units:
            return _finish(_shape(units, spec, duration, turns), source, duration)
        if units is not None:
            log.info("%s: %s found no speech", clip, source)
    if spec.how != "auto":
        log.warning("%s: %s segmentation found no speech; using fixed windows", clip, spec.how)
    return _finish(_shape(_fixed(duration, spec), spec, duration, turns), "fixed", duration)


def speaker_turns(clip: MediaClip, spec: SegmentationSpec) -> list[Turn]:
    """Who speaks when (empty without ``speakers``, sound or speech)."""
    if spec.speakers == "none" or not clip.info.has_audio:
        return []
    return diarize(clip, _speech_regions(clip, _TURN_PAUSE_S), spec.speakers)


# --- sources -----------------------------------------------------------------------------------


def _from_transcript(
    clip: MediaClip, spec: SegmentationSpec, transcript: Path | None, explicit: bool
) -> list[_Unit] | None:
    path = Path(transcript) if transcript is not None else find_sidecar(Path(clip.path))
    if path is None:
        if explicit:
            raise MediaError(
                f"{clip.path}: no transcript to segment by; put NAME.srt/.vtt/.json beside "
                "the recording, pass --transcript, or use --segments asr"
            )
        return None
    parsed = read_transcript(path)
    cues = timed_cues(parsed, spec.pause)
    if cues is None:
        if explicit:
            raise MediaError(
                f"{path}: plain text has no times to segment by; use a .srt, .vtt or timed "
                ".json transcript, or --segments asr"
            )
        log.info("%s: transcript has no times; segmenting by speech instead", path)
        return None
    _check_cues(cues, path, clip)
    units = []
    for cue in cues:
        inner = [w for w in parsed.timed_words if cue.start <= w.start and w.end <= cue.end]
        words = inner or spread_evenly(cue.words, cue.start, cue.end)
        units.append(_Unit(cue.start, cue.end, words, _gaps(inner)))
    return units


def _gaps(words: list[Word]) -> list[tuple[float, float]]:
    return [(a.end, b.start) for a, b in pairwise(words) if b.start > a.end]


def _check_cues(cues: list[Cue], path: Path, clip: MediaClip) -> None:
    duration = clip.info.duration
    for i, cue in enumerate(cues):
        where = f"cue {i + 1} ({cue.start:.2f}-{cue.end:.2f} s)"
        if cue.end > duration + _END_TOLERANCE_S:
            raise MediaError(
                f"{path}: {where} ends after the recording {clip.path.name} "
                f"({duration:.2f} s); the transcript is for another file or its times are "
                "wrong: fix it or use --segments asr"
            )
        if i == 0:
            continue
        before = cues[i - 1]
        if cue.start < before.start:
            raise MediaError(
                f"{path}: {where} starts before cue {i} ({before.start:.2f} s); "
                "put the cues in time order"
            )
        if cue.start < before.end - _OVERLAP_TOLERANCE_S:
            raise MediaError(
                f"{path}: {where} overlaps cue {i} (ends {before.end:.2f} s); "
                "fix the cue times so each ends before the next starts"
            )


def _trim_overlaps(units: list[_Unit]) -> list[_Unit]:
    for before, after in pairwise(units):
        if after.start < before.end:
            before.end = after.start
    return units


def _from_asr(
    clip: MediaClip, spec: SegmentationSpec, transcript: Path | None, explicit: bool
) -> list[_Unit] | None:
    """Whisper's segments over a rolling buffer of the streamed sound."""
    if not _has_sound(clip, "speech recognition", explicit):
        return None
    model = load_whisper(spec.asr)
    units: list[_Unit] = []
    buffer = np.zeros(0, np.float32)
    buffer_start = 0.0
    for t0, block, last in _with_last(clip.audio_blocks(SAMPLE_RATE, _ASR_BLOCK_S)):
        if not len(buffer):
            buffer_start = t0
        buffer = np.concatenate([buffer, block])
        buffer_end = buffer_start + len(buffer) / SAMPLE_RATE
        found = _snap_to_speech(_recognise(model, buffer, buffer_start, spec), buffer, buffer_start)
        ready = found if last else [u for u in found if u.end < buffer_end - _ASR_EDGE_S]
        if not ready and found and buffer_end - buffer_start > 3 * _ASR_BLOCK_S:
            ready = found  # one unbroken stretch of speech: take it rather than grow
        units.extend(ready)
        if ready:
            keep_from = ready[-1].end
        elif found:
            keep_from = found[0].start
        else:
            keep_from = buffer_end - _ASR_EDGE_S
        cut = max(0, int(round((keep_from - buffer_start) * SAMPLE_RATE)))
        buffer, buffer_start = buffer[cut:], buffer_start + cut / SAMPLE_RATE
    return units


def _recognise(model: Any, audio: np.ndarray, offset: float, spec: SegmentationSpec) -> list[_Unit]:
    """Whisper segments of ``audio`` as units, tightened to their words and cut at long pauses."""
    segments, _ = model.transcribe(
        audio, language=spec.language, word_timestamps=True, vad_filter=True, **WHISPER_DECODING
    )
    units = []
    for segment in segments:
        words = [
            token
            for w in segment.words or []
            for token in spread_evenly(
                tokenize(w.word), offset + float(w.start), offset + float(w.end)
            )
        ]
        if not words:
            continue
        piece = [words[0]]
        for word in words[1:]:
            if word.start - piece[-1].end >= spec.pause:
                units.append(_word_unit(piece))
                piece = []
            piece.append(word)
        units.append(_word_unit(piece))
    return units


def _word_unit(words: list[Word]) -> _Unit:
    return _Unit(words[0].start, words[-1].end, words, _gaps(words))


def _from_vad(
    clip: MediaClip, spec: SegmentationSpec, transcript: Path | None, explicit: bool
) -> list[_Unit] | None:
    """Speech regions from Silero's per-window probabilities, grouped at ``spec.pause``."""
    if not _has_sound(clip, "voice activity detection", explicit):
        return None
    return _voice_units(clip, spec.pause)


def _voice_units(clip: MediaClip, pause: float) -> list[_Unit]:
    """Stretches of speech (Silero), joined across silences shorter than ``pause``."""
    probs = _speech_probabilities(clip)
    step = _VAD_WINDOW / SAMPLE_RATE
    regions: list[tuple[float, float]] = []
    onset: int | None = None
    for i, p in enumerate(probs):
        if onset is None and p >= _VAD_ON:
            onset = i
        elif onset is not None and p < _VAD_OFF:
            regions.append((onset * step, i * step))
            onset = None
    if onset is not None:
        regions.append((onset * step, len(probs) * step))
    regions = [(a, b) for a, b in regions if b - a >= _VAD_MIN_SPEECH_S]
    units: list[_Unit] = []
    for a, b in regions:
        a, b = max(a - _VAD_PAD_S, 0.0), b + _VAD_PAD_S
        if units and a - units[-1].end < pause:
            if a > units[-1].end:
                units[-1].pauses.append((units[-1].end, a))
            units[-1].end = max(units[-1].end, b)
        else:
            units.append(_Unit(a, b))
    return units


def _speech_regions(clip: MediaClip, pause: float) -> list[tuple[float, float]]:
    return [(u.start, min(u.end, clip.info.duration)) for u in _voice_units(clip, pause)]


def _speech_probabilities(clip: MediaClip) -> np.ndarray:
    """Silero's speech probability per 32-ms window of the whole track, streamed in blocks."""
    block_s = _VAD_BLOCK_WINDOWS * _VAD_WINDOW / SAMPLE_RATE
    warm = np.zeros(0, np.float32)
    out = []
    for _, block in clip.audio_blocks(SAMPLE_RATE, block_s):
        out.append(_probabilities(np.concatenate([warm, block]))[len(warm) // _VAD_WINDOW :])
        warm = block[-_VAD_WARMUP * _VAD_WINDOW :] if len(block) % _VAD_WINDOW == 0 else warm
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _probabilities(audio: np.ndarray) -> np.ndarray:
    from faster_whisper.vad import get_vad_model

    return get_vad_model()(np.pad(audio, (0, -len(audio) % _VAD_WINDOW)))


def _snap_to_speech(units: list[_Unit], audio: np.ndarray, offset: float) -> list[_Unit]:
    """Move recognised utterances' edges to where voice activity says speech starts and ends.

    Whisper's word onsets are often a few tenths of a second early or late; each edge may move
    up to ``_SNAP_S`` outward (never past halfway to a neighbour) or inward, to the first and
    last window that Silero hears as speech.
    """
    if not units:
        return units
    probs = _probabilities(audio)
    step = _VAD_WINDOW / SAMPLE_RATE
    edges = [(u.start, u.end) for u in units]  # bounds come from the edges before any moves
    for i, unit in enumerate(units):
        lo = unit.start - _SNAP_S
        hi = unit.end + _SNAP_S
        if i > 0:
            lo = max(lo, (edges[i - 1][1] + unit.start) / 2)
        if i + 1 < len(units):
            hi = min(hi, (unit.end + edges[i + 1][0]) / 2)
        a = max(int((lo - offset) / step), 0)
        b = min(int(np.ceil((hi - offset) / step)), len(probs))
        speech = np.flatnonzero(probs[a:b] >= _VAD_ON)
        if len(speech):
            unit.start = float(max(lo, offset + (a + speech[0]) * step - _VAD_PAD_S))
            unit.end = float(min(hi, offset + (a + speech[-1] + 1) * step + _VAD_PAD_S))
    return units


def _has_sound(clip: MediaClip, what: str, explicit: bool) -> bool:
    if clip.info.has_audio:
        return True
    if explicit:
        raise MediaError(
            f"{clip.path}: has no audio stream, so {what} cannot segment it; use "
            "--segments fixed:SECONDS or a transcript"
        )
    return False


def _with_last(
    blocks: Iterator[tuple[float, np.ndarray]],
) -> Iterator[tuple[float, np.ndarray, bool]]:
    """The blocks, each with whether it is the last one."""
    previous = next(blocks, None)
    for block in blocks:
        yield *previous, False
        previous = block
    if previous is not None:
        yield *previous, True


_FINDERS = {"transcript": _from_transcript, "asr": _from_asr, "vad": _from_vad}


# --- shaping -----------------------------------------------------------------------------------


def _fixed(duration: float, spec: SegmentationSpec) -> list[_Unit]:
    """Windows of ``spec.fixed_window``; a last piece shorter than ``min_len`` joins the one
    before."""
    window = spec.fixed_window
    edges = list(np.arange(0.0, duration, window)) + [duration]
    if len(edges) > 2 and edges[-1] - edges[-2] < min(spec.min_len, window):
        del edges[-2]
    return [_Unit(float(a), float(b)) for a, b in pairwise(edges)]


def _shape(
    units: list[_Unit], spec: SegmentationSpec, duration: float, turns: list[Turn]
) -> list[_Unit]:
    """Clip to the recording, cut at changes of speaker, merge or widen short units, split
    long ones."""
    units = _trim_overlaps(sorted(units, key=lambda u: u.start))
    for unit in units:
        unit.start, unit.end = max(unit.start, 0.0), min(unit.end, duration)
    units = [u for u in _by_speaker(units, turns) if u.length >= _MIN_UNIT_S]
    units = _merge_short(units, spec)
    _widen_short(units, spec, duration)
    return [piece for unit in units for piece in _split_long(unit, spec)]


def _by_speaker(units: list[_Unit], turns: list[Turn]) -> list[_Unit]:
    """Each unit cut where the speaker changes (halfway through the silence between two
    speakers' turns), each piece with its speaker and the words whose midpoint lies in it."""
    if not turns:
        return units
    changes = [
        (before.end + after.start) / 2
        for before, after in pairwise(turns)
        if before.speaker != after.speaker
    ]
    speakers = [turns[0].speaker] + [
        after.speaker for before, after in pairwise(turns) if before.speaker != after.speaker
    ]
    pieces = []
    for unit in units:
        edges = [unit.start, *(c for c in changes if unit.start < c < unit.end), unit.end]
        for a, b in pairwise(edges):
            piece = _part(unit, a, b)
            piece.speaker = speakers[bisect.bisect(changes, (a + b) / 2)]
            pieces.append(piece)
    return pieces


def _merge_short(units: list[_Unit], spec: SegmentationSpec) -> list[_Unit]:
    """Join each unit shorter than ``min_len`` to its nearer neighbour, shortest first, while
    the gap is at most ``merge_gap`` and the result at most ``max_len``."""
    stuck: set[int] = set()  # ids of short units that cannot merge
    while True:
        short = [
            (u.length, i)
            for i, u in enumerate(units)
            if u.length < spec.min_len and id(u) not in stuck
        ]
        if not short:
            return units
        _, i = min(short)
        options = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(units):
                a, b = sorted((i, j))
                gap = units[b].start - units[a].end
                if (
                    gap <= spec.merge_gap
                    and units[b].end - units[a].start <= spec.max_len
                    and units[a].speaker == units[b].speaker
                ):
                    options.append((gap, a, b))
        if not options:
            stuck.add(id(units[i]))
            continue
        _, a, b = min(options)
        units[a : b + 1] = [_join(units[a], units[b])]


def _join(a: _Unit, b: _Unit) -> _Unit:
    gap = [(a.end, b.start)] if b.start > a.end else []
    return _Unit(a.start, b.end, a.words + b.words, a.pauses + gap + b.pauses, a.speaker)


def _widen_short(units: list[_Unit], spec: SegmentationSpec, duration: float) -> None:
    """Widen units still shorter than ``min_len`` evenly into the silence around them."""
    for i, unit in enumerate(units):
        missing = spec.min_len - unit.length
        if missing <= 0:
            continue
        lo = units[i - 1].end if i > 0 else 0.0
        hi = units[i + 1].start if i + 1 < len(units) else duration
        start = max(lo, unit.start - missing / 2)
        end = min(hi, start + spec.min_len)
        unit.start, unit.end = max(lo, end - spec.min_len), end


def _split_long(unit: _Unit, spec: SegmentationSpec) -> list[_Unit]:
    """Split at the longest pause in the middle half (both sides at least ``min_len``), then
    recurse; with no such pause, cut into equal pieces of at most ``max_len``."""
    if unit.length <= spec.max_len:
        return [unit]
    quarter = unit.length / 4
    choices = [
        (b - a, a, b)
        for a, b in unit.pauses
        if unit.start + max(quarter, spec.min_len)
        <= (a + b) / 2
        <= unit.end - max(quarter, spec.min_len)
    ]
    if not choices:
        n = int(np.ceil(unit.length / spec.max_len))
        edges = np.linspace(unit.start, unit.end, n + 1)
        return [_part(unit, float(a), float(b)) for a, b in pairwise(edges)]
    _, a, b = max(choices)
    return _split_long(_part(unit, unit.start, a), spec) + _split_long(
        _part(unit, b, unit.end), spec
    )


def _part(unit: _Unit, start: float, end: float) -> _Unit:
    """The words (by midpoint) and pauses of ``unit`` inside ``[start, end]``."""
    words = [w for w in unit.words if start <= (w.start + w.end) / 2 <= end]
    pauses = [p for p in unit.pauses if start <= p[0] and p[1] <= end]
    return _Unit(start, end, words, pauses, unit.speaker)


def _finish(units: list[_Unit], source: str, duration: float) -> list[Span]:
    spans = [
        Span(u.start, min(u.end, duration), source, u.text, speaker=u.speaker)
        for u in units
        if min(u.end, duration) - u.start >= _MIN_UNIT_S
    ]
    if len(spans) <= 1:
        only = spans[0] if spans else Span(0.0, duration)
        return [Span(0.0, duration, WHOLE, only.text, speaker=only.speaker)]
    return spans
