"""Which face speaks in a span: the one whose mouth moves with the voice.

Listeners move too (they nod, smile, mouth words), so the choice never rests on how much a
mouth moves, only on how well its opening follows the speech envelope: the Pearson correlation
of the mouth opening (lip part + jaw drop, each standardised over the track's frames in the
span) with the sound's RMS per video frame, at the best lag within ``MAX_LAG_S`` (lips lead
the sound they make by a few frames; video and audio timestamps may be off a little). When no
face agrees (no speech, a speaker off camera, faces seen too briefly) the largest face is taken
and the reason says so.

A speaker (from diarization, the span's ``speaker``) is linked to the face that speaks most of
that speaker's time (:func:`link_speakers`), so all of a speaker's spans take their own face.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featurizers.face_tracks import FaceTracks
from featurizers.span import Span

AUTO, LARGEST = "auto", "largest"
SPEAKING, ONLY, FALLBACK, GIVEN, SPEAKER, NONE = (
    "speaking",
    "only face",
    "largest",
    "given",
    "speaker's face",
    "no face",
)
MOUTH = ("lip_part", "jaw_drop")
MAX_LAG_S = 0.2
MIN_AGREEMENT = 0.2  # correlation below this is no evidence of speaking
MIN_COVERAGE = 0.5  # a face must be seen in this share of the span's frames to be judged
MIN_SPEECH_RMS = 1e-3  # below this (-60 dBFS) a span holds no speech to match mouths to
MIN_FRAMES = 8  # fewer frames than this (about half a second) are too few to correlate


@dataclass(frozen=True)
class FaceChoice:
    """The face track a span's visual features come from (None: no face), how many tracks
    were seen in the span, and how it was chosen (``SPEAKING ...``, ``FALLBACK: why`` ...)."""

    face: int | None
    faces: int
    how: str


def parse_face(text: str) -> str | int:
    """``auto``, ``largest`` or a track id (a positive integer); ValueError otherwise."""
    value = str(text).strip().lower()
    if value in (AUTO, LARGEST):
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise ValueError(f"--face {text}: use auto, largest or a face track id (1, 2, ...)")


def speech_envelope(audio: np.ndarray, rate: int, starts: np.ndarray, period: float) -> np.ndarray:
    """The sound's RMS over each frame ``[start, start + period)`` (``starts`` in seconds from
    the audio's first sample)."""
    out = np.zeros(len(starts))
    for i, start in enumerate(starts):
        chunk = audio[max(int(start * rate), 0) : max(int((start + period) * rate), 0)]
        out[i] = float(np.sqrt(np.mean(np.square(chunk)))) if len(chunk) else 0.0
    return out


def agreement(mouth: np.ndarray, seen: np.ndarray, envelope: np.ndarray, max_lag: int) -> float:
    """The best Pearson correlation of ``mouth`` with ``envelope`` over lags of up to
    ``max_lag`` frames either way, on the frames where the face is ``seen``."""
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        m = mouth[max(lag, 0) : len(mouth) + min(lag, 0)]
        ok = seen[max(lag, 0) : len(seen) + min(lag, 0)]
        e = envelope[max(-lag, 0) : len(envelope) + min(-lag, 0)]
        m, e = m[ok], e[ok]
        if len(m) < 4 or m.std() < 1e-9 or e.std() < 1e-9:
            continue
        best = max(best, float(np.corrcoef(m, e)[0, 1]))
    return best


def _standardised(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    out = np.zeros_like(values, dtype=np.float64)
    if seen.any():
        v = values[seen]
        out[seen] = (v - v.mean()) / (v.std() + 1e-9)
    return out


def choose(
    tracks: FaceTracks,
    start: float,
    end: float,
    dim_names: Sequence[str],
    audio: np.ndarray | None,
    rate: int,
    mode: str | int = AUTO,
) -> FaceChoice:
    """The face of span ``[start, end)`` under ``mode`` (``auto``, ``largest`` or a track id).

    ``audio``: the span's sound (index 0 at ``start``; None: no audio track). ``dim_names``:
    the columns of the tracks' rows. A given id that is not seen in the span gives no face.
    """
    ids = tracks.ids(start, end)
    if isinstance(mode, int):
        return FaceChoice(mode if mode in ids else None, len(ids), f"{GIVEN} (--face {mode})")
    if not ids:
        return FaceChoice(None, 0, NONE)
    if len(ids) == 1:
        return FaceChoice(ids[0], 1, ONLY)
    columns = {name: i for i, name in enumerate(dim_names)}
    rows = {i: tracks.of(i, start, end) for i in ids}
    present = {i: r[:, columns["face_present"]] > 0 for i, r in rows.items()}
    area = {
        i: float((r[:, columns["face_w"]] * r[:, columns["face_h"]]).mean())
        for i, r in rows.items()
    }
    largest = max(ids, key=lambda i: area[i])
    if mode == LARGEST:
        return FaceChoice(largest, len(ids), f"{FALLBACK} (--face largest)")
    frames = tracks.frames_in(start, end)
    period = tracks.period or 1.0
    envelope = (
        np.zeros(len(frames))
        if audio is None
        else speech_envelope(audio, rate, tracks.times[frames] - start, period)
    )
    if envelope.max(initial=0.0) < MIN_SPEECH_RMS:
        return FaceChoice(largest, len(ids), f"{FALLBACK}: no speech to match mouths to")
    judged = [i for i in ids if present[i].mean() >= MIN_COVERAGE]
    if len(frames) < MIN_FRAMES or not judged:
        return FaceChoice(largest, len(ids), f"{FALLBACK}: every face seen too briefly")
    max_lag = max(1, round(MAX_LAG_S / period))
    scores = {}
    for i in judged:
        mouth = sum(_standardised(rows[i][:, columns[c]], present[i]) for c in MOUTH)
        scores[i] = agreement(mouth, present[i], envelope, max_lag)
    best = max(judged, key=lambda i: scores[i])
    if scores[best] < MIN_AGREEMENT:
        why = f"no mouth moves with the voice (best r={scores[best]:.2f})"
        return FaceChoice(largest, len(ids), f"{FALLBACK}: {why}")
    return FaceChoice(best, len(ids), f"{SPEAKING} (r={scores[best]:.2f})")


def link_speakers(spans: Sequence[Span]) -> dict[str, str]:
    """speaker -> the face that speaks most of that speaker's time: over the spans with a
    ``speaker`` whose face was chosen because its mouth moves with the voice."""
    seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for span in spans:
        speaker = getattr(span, "speaker", None)
        if speaker is None or span.face is None or not (span.face_how or "").startswith(SPEAKING):
            continue
        seconds[speaker][span.face] += span.end - span.start
    return {s: max(faces, key=faces.__getitem__) for s, faces in seconds.items()}
