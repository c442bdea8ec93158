"""Forced alignment gives a clip the same word times whatever the process aligned before it.

The aligner is one cached pocketsphinx decoder per process; its front end adapted to earlier
utterances, so an extraction pool's scheduling changed word times (and the demo's model).
"""

from __future__ import annotations

from pathlib import Path

from featurizers.asr import force_align
from featurizers.media import MediaClip

CLIPS = Path(__file__).resolve().parents[1] / "pipeline" / "sample_data" / "clips"


def word_times(name: str) -> list[tuple[float, float]]:
    audio = MediaClip(CLIPS / f"{name}.mp4").audio()
    words = (CLIPS / f"{name}.txt").read_text().split()
    aligned = force_align(audio, words)
    assert aligned is not None and [w.text for w in aligned] == words
    return [(w.start, w.end) for w in aligned]


def test_word_times_do_not_depend_on_earlier_alignments() -> None:
    first = word_times("happy_08")
    for earlier in ("happy_04", "sad_10", "surprise_02"):
        word_times(earlier)
        assert word_times("happy_08") == first
