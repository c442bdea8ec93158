"""AudioFeaturizer on the espeak fixture and on synthetic signals with known answers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

import featurizers.audio as audio_module
from featurizers.audio import DIM_NAMES, AudioFeaturizer
from featurizers.base import MediaError
from featurizers.media import MediaClip

FIXTURES = Path(__file__).parent / "fixtures"
TRUTH = json.loads((FIXTURES / "talking_head.truth.json").read_text())
SR = 16000
COL = {name: i for i, name in enumerate(DIM_NAMES)}


@pytest.fixture(scope="module")
def featurizer() -> AudioFeaturizer:
    return AudioFeaturizer()


@pytest.fixture(scope="module")
def speech(featurizer: AudioFeaturizer):
    return featurizer.extract(MediaClip(FIXTURES / "talking_head.mp4"))


def harmonic_tone(f0: float, seconds: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Harmonics 1..10 of ``f0`` with amplitude 1/k (so H1-H2 = H2-H4 = 6.02 dB), plus noise."""
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11))
    wave = 0.2 * wave / np.abs(wave).max()
    return (wave + noise * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def column(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, COL[name]]


def test_spec_names_every_dim(featurizer: AudioFeaturizer) -> None:
    spec = featurizer.spec
    assert (spec.modality, spec.rate, spec.dim) == ("audio", 100.0, 74)
    assert len(set(spec.dim_names)) == spec.dim
    assert {"f0_hz", "voiced", "rms_db", "silence", "mfcc_24", "mfcc_delta_24"} <= set(
        spec.dim_names
    )


def test_rows_intervals_and_values_on_the_fixture(speech) -> None:
    n = len(speech.features)
    assert n == int(TRUTH["duration_s"] * 100)
    np.testing.assert_allclose(speech.intervals[:, 0], np.arange(n) / 100)
    np.testing.assert_allclose(speech.intervals[:, 1] - speech.intervals[:, 0], 0.01)
    assert speech.features.dtype == np.float32
    assert np.isfinite(speech.features).all()
    assert (speech.features.std(axis=0) > 0).all()  # no dead dimension on real speech


def test_f0_of_the_espeak_voice(speech) -> None:
    """espeak-ng's en-us voice speaks at about 100 Hz (Praat's pitch gave a 101 Hz median on
    this recipe), with intonation inside roughly 85-130 Hz; an octave error would land at
    ~50 or ~200 Hz, outside the band."""
    f0 = column(speech.features, "f0_hz")
    voiced = column(speech.features, "voiced") == 1
    assert 90 <= np.median(f0[voiced]) <= 115
    assert np.mean((f0[voiced] > 80) & (f0[voiced] < 140)) > 0.95
    assert (f0[~voiced] == 0).all()


def test_voicing_follows_the_speech(speech) -> None:
    features, times = speech.features, speech.intervals[:, 0]
    voiced = column(features, "voiced") == 1
    silent = column(features, "silence") == 1
    inside = (times > TRUTH["speech_start_s"] + 0.02) & (times < TRUTH["speech_end_s"] - 0.02)
    outside = (times < TRUTH["speech_start_s"] - 0.03) | (times > TRUTH["speech_end_s"] + 0.05)
    assert silent[outside].all() and not voiced[outside].any()
    assert 0.5 < voiced[inside].mean() < 0.95  # speech has unvoiced consonants and gaps
    assert silent[inside].mean() < 0.1
    assert column(features, "voicing_prob")[voiced].mean() > 0.8


def test_silence_file_is_flagged_and_finite(tmp_path: Path, featurizer: AudioFeaturizer) -> None:
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(2 * SR, dtype=np.float32), SR)
    result = featurizer.extract(MediaClip(path))
    features = result.features
    assert features.shape == (200, 74)
    assert np.isfinite(features).all()
    assert (column(features, "silence") == 1).all()
    assert (column(features, "voiced") == 0).all() and (column(features, "f0_hz") == 0).all()
    assert (column(features, "rms_db") == audio_module.FLOOR_DB).all()


def test_faint_hiss_counts_as_silence(featurizer: AudioFeaturizer) -> None:
    hiss = 1e-4 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)  # -80 dBFS
    features = featurizer.extract_audio(hiss).features
    assert (column(features, "silence") == 1).all() and np.isfinite(features).all()


def test_known_tone_gives_f0_harmonics_and_hnr(featurizer: AudioFeaturizer) -> None:
    features = featurizer.extract_audio(harmonic_tone(150.0, 1.0)).features[10:-10]
    assert (column(features, "voiced") == 1).all()
    np.testing.assert_allclose(column(features, "f0_hz"), 150.0, rtol=0.01)
    np.testing.assert_allclose(column(features, "h1_h2_db"), 20 * np.log10(2), atol=0.5)
    np.testing.assert_allclose(column(features, "h2_h4_db"), 20 * np.log10(2), atol=0.5)
    assert column(features, "hnr_db").min() > 20
    assert column(features, "jitter_local").max() < 0.01
    assert np.abs(features[:, COL["mfcc_delta_0"] :]).max() < 0.5  # steady sound, no change


def test_noise_lowers_hnr_and_voicing(featurizer: AudioFeaturizer) -> None:
    clean = featurizer.extract_audio(harmonic_tone(200.0, 1.0)).features[10:-10]
    noisy = featurizer.extract_audio(harmonic_tone(200.0, 1.0, noise=0.05)).features[10:-10]
    assert np.median(column(noisy, "hnr_db")) < np.median(column(clean, "hnr_db")) - 10
    assert column(noisy, "voicing_prob").mean() < column(clean, "voicing_prob").mean()
    noise = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    assert column(featurizer.extract_audio(noise).features, "voiced").mean() < 0.05


def test_spectral_shape_and_tilt_of_simple_signals(featurizer: AudioFeaturizer) -> None:
    t = np.arange(SR) / SR
    sine = featurizer.extract_audio((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    middle = sine.features[10:-10]
    np.testing.assert_allclose(column(middle, "spectral_centroid_hz"), 1000, rtol=0.05)
    np.testing.assert_allclose(column(middle, "zcr"), 2 * 1000 / SR, rtol=0.05)
    white = np.random.default_rng(2).standard_normal(SR).astype(np.float32) * 0.1
    hum = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    white_f = featurizer.extract_audio(white).features[10:-10]
    hum_f = featurizer.extract_audio(hum).features[10:-10]
    assert np.median(column(white_f, "alpha_ratio_db")) > 0  # 1-5 kHz holds more of the band
    assert np.median(column(hum_f, "alpha_ratio_db")) < -40
    assert np.median(column(hum_f, "spectral_slope_db_per_khz")) < np.median(
        column(white_f, "spectral_slope_db_per_khz")
    )
    assert np.median(column(white_f, "spectral_flatness")) > 0.3
    assert np.median(column(hum_f, "spectral_flatness")) < 0.01


def test_blocks_do_not_change_the_result(
    monkeypatch: pytest.MonkeyPatch, featurizer: AudioFeaturizer, speech
) -> None:
    audio = MediaClip(FIXTURES / "talking_head.mp4").audio()
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 97)
    np.testing.assert_array_equal(featurizer.extract_audio(audio).features, speech.features)


def test_very_short_audio(featurizer: AudioFeaturizer) -> None:
    assert featurizer.extract_audio(np.zeros(100, np.float32)).features.shape == (0, 74)
    one = featurizer.extract_audio(harmonic_tone(120.0, 0.015)).features
    assert one.shape == (1, 74) and np.isfinite(one).all()


def test_audio_only_file_works_and_video_only_gives_no_rows(
    tmp_path: Path, featurizer: AudioFeaturizer, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing audio stream is a missing modality (zero rows, a warning), not an error."""
    voice = tmp_path / "voice.flac"
    soundfile.write(voice, harmonic_tone(130.0, 0.5), SR)
    assert featurizer.extract(MediaClip(voice)).features.shape == (50, 74)

    mute = tmp_path / "mute.mp4"
    with av.open(str(mute), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8))))
        out.mux(stream.encode(None))
    with caplog.at_level(logging.WARNING, logger="featurizers.audio"):
        empty = featurizer.extract(MediaClip(mute))
    assert empty.features.shape == (0, 74) and empty.intervals.shape == (0, 2)
    assert "no audio stream" in caplog.text and "mute.mp4" in caplog.text


def test_undecodable_sound_still_fails(tmp_path: Path, featurizer: AudioFeaturizer) -> None:
    """A damaged file is still refused in one line: only a missing stream is a missing modality."""
    clip = tmp_path / "cut.mp4"
    source = FIXTURES / "talking_head.mp4"
    clip.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(MediaError, match="truncated") as info:
        featurizer.extract(MediaClip(clip))
    assert "\n" not in str(info.value) and str(clip) in str(info.value)


def test_bad_pitch_range_is_refused() -> None:
    with pytest.raises(ValueError, match="fmin"):
        AudioFeaturizer(fmin=300, fmax=200)
    with pytest.raises(ValueError, match="window"):
        AudioFeaturizer(fmin=20)
