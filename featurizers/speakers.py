"""Who speaks when: offline speaker diarization from voice embeddings.

The voice encoder is Resemblyzer's (a GE2E speaker encoder: 3-layer LSTM, 256 units, over
40-channel mel power frames of 25 ms every 10 ms at 16 kHz; its output is the last layer's final
hidden state through a linear layer, ReLU and L2 norm). Its trained weights ``pretrained.pt``
ship inside the Apache-2.0 ``resemblyzer`` wheel; importing the package would need webrtcvad (a
compiled module) and an old scipy, so we only locate the file and load its tensors, with torch's
safe loader, into our own copy of the network.

Diarization: the speech regions (voice activity, found by the caller) are covered by 1.6-s
windows every ``_STEP_S``; each window's voice embedding is clustered (average-linkage
agglomerative clustering on cosine distance, scikit-learn), window labels are smoothed, and
runs of one label become turns. ``auto`` cuts the clustering tree where clusters are more than
``SAME_VOICE_DISTANCE`` apart; a forced number of speakers cuts it into that many, and then
merges clusters that are still closer than that distance (one voice asked to be three is one
voice, reported as such).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featurizers.base import MediaError
from featurizers.media import MediaClip
from featurizers.packaged import packaged_file

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
MEL_CHANNELS = 40
_HOP = 160  # 10 ms
_N_FFT = 400  # 25 ms
WINDOW_FRAMES = 160  # 1.6 s per embedded window, as the encoder was trained
_STEP_S = 0.25  # between window centres
_TARGET_DBFS = -30.0  # loudness the encoder expects (quieter sound is raised, never lowered)
_BLOCK_S = 30.0  # audio is streamed in blocks of this length
_BATCH = 64  # windows per forward pass
_MAX_CLUSTERED = 1500  # windows clustered at most (the rest join the nearest): bounds memory
_SMOOTH = 5  # windows in the majority filter over labels (about 1 s)
# Average cosine distance between two clusters above which they are two voices. Measured on
# LibriVox and CMU ARCTIC speech (bench/diarization.py): windows of one voice lie 0.1-0.3
# apart, of two different voices 0.4 and more.
SAME_VOICE_DISTANCE = 0.35
MIN_SPEAKER_S = 1.0  # a "speaker" with less speech than this joins the nearest one
SPEAKERS_HELP = "auto, none, or a number of speakers (e.g. 2)"


class SpeakerOptionError(MediaError, ValueError):
    """A ``--speakers`` value that makes no sense (one line saying what is accepted)."""


def parse_speakers(text: str | int | None) -> str:
    """A ``--speakers`` value as ``"auto"``, ``"none"`` or a positive count (``"2"``)."""
    value = "none" if text is None else str(text).strip().lower()
    if value in ("auto", "none"):
        return value
    if value.isdigit() and int(value) >= 1:
        return str(int(value))
    raise SpeakerOptionError(f"speakers {text!r}: use {SPEAKERS_HELP}")


@dataclass(frozen=True)
class Turn:
    """``speaker`` speaks in ``[start, end)`` (seconds)."""

    start: float
    end: float
    speaker: str


# --- the voice encoder ----------------------------------------------------------------------


def find_voice_weights() -> Path:
    """Path of ``pretrained.pt`` inside the installed ``resemblyzer`` wheel."""
    return packaged_file("resemblyzer", "pretrained.pt", "voice encoder", "resemblyzer==0.1.4")


class VoiceEncoder(nn.Module):
    """Mel frames ``(batch, frames, 40)`` -> L2-normed 256-d voice embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_CHANNELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        embeds = torch.relu(self.linear(hidden[-1]))
        return embeds / embeds.norm(dim=1, keepdim=True).clamp_min(1e-8)


_ENCODER: VoiceEncoder | None = None


def load_voice_encoder() -> VoiceEncoder:
    """The encoder with Resemblyzer's weights (loaded once per process)."""
    global _ENCODER
    if _ENCODER is None:
        checkpoint = torch.load(find_voice_weights(), map_location="cpu", weights_only=True)
        # the file also holds the GE2E loss's two scalars (similarity_*), not part of the encoder
        state = {
            k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity_")
        }
        encoder = VoiceEncoder()
        encoder.load_state_dict(state)
        _ENCODER = encoder.eval()
    return _ENCODER


def mel_frames(audio: np.ndarray) -> np.ndarray:
    """Mel power frames ``(frames, 40)`` of 16-kHz ``audio`` (not log: as the encoder was
    trained), after raising its loudness to ``_TARGET_DBFS``; frame ``i`` is centred at
    ``i * 10`` ms."""
    import librosa

    power = float(np.mean(np.square(audio, dtype=np.float64))) if len(audio) else 0.0
    if power > 0:
        gain_db = _TARGET_DBFS - 10 * np.log10(power)
        if gain_db > 0:
            audio = audio * np.float32(10 ** (gain_db / 20))
    mel = librosa.feature.melspectrogram(
        y=audio, sr=SAMPLE_RATE, n_fft=_N_FFT, hop_length=_HOP, n_mels=MEL_CHANNELS
    )
    return mel.astype(np.float32).T


def track_mel(clip: MediaClip) -> np.ndarray:
    """Mel frames of the whole sound track, streamed block by block (4 kB per second held)."""
    frames = [
        mel_frames(block)[: -(-len(block) // _HOP)]
        for _, block in clip.audio_blocks(SAMPLE_RATE, _BLOCK_S)
    ]
    return np.concatenate(frames) if frames else np.zeros((0, MEL_CHANNELS), np.float32)


def window_centres(speech: Sequence[tuple[float, float]]) -> list[tuple[int, float]]:
    """``(region index, centre seconds)`` of the windows that cover each speech region."""
    half = WINDOW_FRAMES / 200
    centres = []
    for i, (a, b) in enumerate(speech):
        if b - a <= 2 * half:
            centres.append((i, (a + b) / 2))
            continue
        points = np.arange(a + half, b - half, _STEP_S).tolist() + [b - half]
        centres.extend((i, float(c)) for c in points)
    return centres


@torch.no_grad()
def embed_windows(mel: np.ndarray, centres: Sequence[float]) -> np.ndarray:
    """The voice embedding ``(len(centres), 256)`` of the 1.6-s window around each centre."""
    encoder = load_voice_encoder()
    total = len(mel)
    if total < WINDOW_FRAMES:
        mel = np.pad(mel, ((0, WINDOW_FRAMES - total), (0, 0)))
    starts = [
        min(max(int(round(c * 100)) - WINDOW_FRAMES // 2, 0), len(mel) - WINDOW_FRAMES)
        for c in centres
    ]
    out = []
    for i in range(0, len(starts), _BATCH):
        batch = np.stack([mel[s : s + WINDOW_FRAMES] for s in starts[i : i + _BATCH]])
        out.append(encoder(torch.from_numpy(batch)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 256), np.float32)


# --- clustering -----------------------------------------------------------------------------


def cluster(embeddings: np.ndarray, speakers: str) -> np.ndarray:
    """A cluster label per embedding: ``auto`` finds the number of voices, a count forces at
    most that many (clusters of one voice are merged back; see the module docstring)."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(embeddings)
    if n < 2 or speakers == "1":
        return np.zeros(n, int)
    sample = embeddings
    if n > _MAX_CLUSTERED:
        sample = embeddings[np.linspace(0, n - 1, _MAX_CLUSTERED).round().astype(int)]
    if speakers == "auto":
        model = AgglomerativeClustering(
            n_clusters=None,
            distance_threshold=SAME_VOICE_DISTANCE,
            metric="cosine",
            linkage="average",
        )
    else:
        model = AgglomerativeClustering(
            n_clusters=min(int(speakers), len(sample)), metric="cosine", linkage="average"
        )
    labels = _merge_same_voice(sample, model.fit_predict(sample))
    centroids = np.stack([sample[labels == k].mean(axis=0) for k in np.unique(labels)])
    return np.argmax(embeddings @ centroids.T, axis=1)


def _merge_same_voice(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Join the two closest clusters while their average cosine distance (the linkage that
    cut them) is under ``SAME_VOICE_DISTANCE``."""
    labels = labels.copy()
    while len(clusters := np.unique(labels)) > 1:
        members = [embeddings[labels == k] for k in clusters]
        pairs = [
            (float(np.mean(1 - members[i] @ members[j].T)), i, j)
            for i in range(len(clusters))
            for j in range(i + 1, len(clusters))
        ]
        distance, i, j = min(pairs)
        if distance >= SAME_VOICE_DISTANCE:
            break
        labels[labels == clusters[j]] = clusters[i]
    return labels


# --- turns ----------------------------------------------------------------------------------


def diarize(
    clip: MediaClip, speech: Sequence[tuple[float, float]], speakers: str = "auto"
) -> list[Turn]:
    """The turns of ``clip``: who speaks in each stretch of the ``speech`` regions (sorted,
    non-overlapping seconds). Speakers are named ``S1``, ``S2``, ... in order of first speech.
    """
    speech = [(a, b) for a, b in speech if b > a]
    if not speech or speakers == "none":
        return []
    windows = window_centres(speech)
    mel = track_mel(clip)
    try:
        embeddings = embed_windows(mel, [c for _, c in windows])
    except ImportError as exc:  # the encoder's weights are not installed
        raise MediaError(f"speaker diarization: {exc}; or give --speakers none") from None
    labels = _smooth(cluster(embeddings, speakers), [r for r, _ in windows])
    turns = _runs(speech, windows, labels)
    turns = _drop_brief_speakers(turns)
    found = len({t.speaker for t in turns})
    log.info("%s: %d speaker(s) in %d turns", clip, found, len(turns))
    return turns


def _smooth(labels: np.ndarray, regions: Sequence[int]) -> np.ndarray:
    """Majority label over ``_SMOOTH`` neighbouring windows of the same region."""
    out = labels.copy()
    half = _SMOOTH // 2
    for i in range(len(labels)):
        near = [
            labels[j]
            for j in range(max(0, i - half), min(len(labels), i + half + 1))
            if regions[j] == regions[i]
        ]
        values, counts = np.unique(near, return_counts=True)
        if counts.max() > counts[values == labels[i]][0]:
            out[i] = values[np.argmax(counts)]
    return out


def _runs(
    speech: Sequence[tuple[float, float]],
    windows: Sequence[tuple[int, float]],
    labels: np.ndarray,
) -> list[Turn]:
    """Turns: each region cut halfway between neighbouring windows of different labels, runs
    of one label across regions joined, speakers renamed by first appearance."""
    by_region: dict[int, list[tuple[float, int]]] = {}
    for (region, centre), label in zip(windows, labels, strict=True):
        by_region.setdefault(region, []).append((centre, int(label)))
    pieces: list[tuple[float, float, int]] = []
    for i, (a, b) in enumerate(speech):
        inside = by_region[i]
        start = a
        for (c0, l0), (c1, l1) in zip(inside, inside[1:], strict=False):
            if l1 != l0:
                cut = (c0 + c1) / 2
                pieces.append((start, cut, l0))
                start = cut
        pieces.append((start, b, inside[-1][1]))
    names: dict[int, str] = {}
    turns: list[Turn] = []
    for a, b, label in pieces:
        name = names.setdefault(label, f"S{len(names) + 1}")
        if turns and turns[-1].speaker == name:
            turns[-1] = Turn(turns[-1].start, b, name)
        else:
            turns.append(Turn(a, b, name))
    return turns


def _drop_brief_speakers(turns: list[Turn]) -> list[Turn]:
    """Give the turns of a speaker heard for less than ``MIN_SPEAKER_S`` in all to the
    neighbouring speaker, and rename the rest by first appearance."""
    total: dict[str, float] = {}
    for t in turns:
        total[t.speaker] = total.get(t.speaker, 0.0) + t.end - t.start
    kept = {s for s, seconds in total.items() if seconds >= MIN_SPEAKER_S}
    if not kept or kept == set(total):
        return turns
    merged: list[Turn] = []
    for t in turns:
        if t.speaker not in kept:
            if merged:  # the one before takes it
                merged[-1] = Turn(merged[-1].start, t.end, merged[-1].speaker)
                continue
            following = next(u.speaker for u in turns if u.speaker in kept)
            t = Turn(t.start, t.end, following)
        if merged and merged[-1].speaker == t.speaker:
            merged[-1] = Turn(merged[-1].start, t.end, t.speaker)
        else:
            merged.append(t)
    names: dict[str, str] = {}
    return [Turn(t.start, t.end, names.setdefault(t.speaker, f"S{len(names) + 1}")) for t in merged]


def main_speaker(turns: Sequence[Turn], span: Any) -> str | None:
    """The speaker heard longest inside ``span`` (anything with ``start``/``end``), or None
    when no turn overlaps it."""
    heard: dict[str, float] = {}
    for t in turns:
        overlap = min(t.end, span.end) - max(t.start, span.start)
        if overlap > 0:
            heard[t.speaker] = heard.get(t.speaker, 0.0) + overlap
    return max(heard, key=heard.__getitem__) if heard else None
