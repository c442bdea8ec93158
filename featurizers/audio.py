"""COVAREP-like audio features at 100 frames/s, from permissively licensed code only.

COVAREP (the MATLAB toolbox behind the CMU-MOSI/MOSEI audio features) gave 74 dims per
10 ms: F0, voicing, glottal-source measures, 25 mel-cepstra and phase features. This module
gives 74 dims per 10 ms with open stand-ins (numpy, scipy, librosa's ISC-licensed MFCC):

- pitch by YIN (de Cheveigné & Kawahara 2002), written here with FFTs: F0, voicing decision
  and probability, and the periodicity behind an HNR estimate;
- energy, zero-crossing rate, spectral shape (centroid, bandwidth, roll-off, flatness, flux,
  entropy) and tilt (whole-band slope, eGeMAPS slopes 0-500 / 500-1500 Hz, alpha ratio,
  Hammarberg index);
- voice quality where it is cheap: H1-H2 and H2-H4 from harmonic peaks, frame-to-frame jitter
  and shimmer, HNR;
- 25 MFCCs and their deltas.

Row ``i`` describes the windows centred on ``i * 10 ms``; its interval is ``[i/100, i/100 + 0.01]``.
Silent rows are kept with finite values and ``silence = 1``. ``docs/features.md`` lists every dim.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

import librosa
import numpy as np
import scipy.fft

from featurizers.base import FeatureSequence, FeaturizerSpec

if TYPE_CHECKING:
    from featurizers.media import MediaClip  # or a SegmentClip of one

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = SAMPLE_RATE // 100  # 10 ms
SHORT_WINDOW = 400  # 25 ms: spectral shape, energy, MFCC
SHORT_FFT = 512
LONG_WINDOW = 1024  # 64 ms: pitch and harmonics (resolves 60 Hz periods and 100 Hz harmonics)
N_MFCC = 25
N_MELS = 40
FLOOR_DB = -100.0  # level given to digital silence
HNR_RANGE_DB = (-20.0, 40.0)
EPS = 1e-10
_HANN_SHORT = np.hanning(SHORT_WINDOW)
_HANN_LONG = np.hanning(LONG_WINDOW)
FREQS = np.fft.rfftfreq(SHORT_FFT, 1 / SAMPLE_RATE)
BLOCK_FRAMES = 2000  # 20 s of frames per block of frame-local work

SCALAR_DIMS = (
    "f0_hz",
    "voiced",
    "voicing_prob",
    "f0_semitones",
    "rms_db",
    "rms_db_delta",
    "zcr",
    "spectral_centroid_hz",
    "spectral_bandwidth_hz",
    "spectral_rolloff_hz",
    "spectral_flatness",
    "spectral_flux",
    "spectral_entropy",
    "spectral_slope_db_per_khz",
    "slope_0_500_db_per_khz",
    "slope_500_1500_db_per_khz",
    "alpha_ratio_db",
    "hammarberg_db",
    "h1_h2_db",
    "h2_h4_db",
    "hnr_db",
    "jitter_local",
    "shimmer_local_db",
    "silence",
)
DIM_NAMES = (
    SCALAR_DIMS
    + tuple(f"mfcc_{i}" for i in range(N_MFCC))
    + tuple(f"mfcc_delta_{i}" for i in range(N_MFCC))
)


class AudioFeaturizer:
    """74 COVAREP-like dims per 10 ms of a clip's audio (16 kHz mono).

    ``fmin``/``fmax`` bound the F0 search; ``voicing_threshold`` is the largest YIN
    aperiodicity a voiced frame may have; a frame is silent below ``silence_db`` dBFS or more
    than ``silence_below_peak_db`` under the clip's loudest frame.
    """

    def __init__(
        self,
        fmin: float = 60.0,
        fmax: float = 400.0,
        voicing_threshold: float = 0.4,
        silence_db: float = -60.0,
        silence_below_peak_db: float = 50.0,
    ) -> None:
        if not 0 < fmin < fmax <= SAMPLE_RATE / 4:
            raise ValueError(f"need 0 < fmin < fmax <= {SAMPLE_RATE // 4}, got {fmin}, {fmax}")
        if SAMPLE_RATE / fmin >= LONG_WINDOW / 2:
            raise ValueError(f"fmin {fmin} Hz is below what a {LONG_WINDOW}-sample window holds")
        self.fmin, self.fmax = fmin, fmax
        self.voicing_threshold = voicing_threshold
        self.silence_db, self.silence_below_peak_db = silence_db, silence_below_peak_db
        self.spec = FeaturizerSpec(
            name="audio-covarep-like",
            version="1",
            modality="audio",
            dim_names=DIM_NAMES,
            rate=100.0,
            params={
                "sample_rate": SAMPLE_RATE,
                "hop": HOP,
                "short_window": SHORT_WINDOW,
                "long_window": LONG_WINDOW,
                "n_mels": N_MELS,
                "fmin": fmin,
                "fmax": fmax,
                "voicing_threshold": voicing_threshold,
                "silence_db": silence_db,
                "silence_below_peak_db": silence_below_peak_db,
            },
        )

    @cached_property
    def _mel_basis(self) -> np.ndarray:
        """``[n_mels, bins]`` filterbank; built on first use so constructing stays cheap."""
        return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=SHORT_FFT, n_mels=N_MELS)

    def extract(self, clip: MediaClip) -> FeatureSequence:
        """A clip without an audio stream gives zero rows (a warning, not an error), so the
        other modalities still go on; undecodable sound raises ``MediaError`` from the clip."""
        if not clip.info.has_audio:
            log.warning("%s: no audio stream; no audio rows", clip)
            return self.extract_audio(np.zeros(0, np.float32))
        return self.extract_audio(clip.audio(SAMPLE_RATE))

    def extract_audio(self, audio: np.ndarray) -> FeatureSequence:
        """Features of 16 kHz mono samples: one row per complete 10 ms step.

        Frame-local measures are computed in blocks of ``BLOCK_FRAMES`` so memory stays flat
        however long the clip; what needs the whole clip (silence level, deltas, jitter)
        is computed afterwards from the small per-frame arrays.
        """
        audio = np.asarray(audio, dtype=np.float32)
        n = len(audio) // HOP
        if n == 0:
            return FeatureSequence(np.zeros((0, len(DIM_NAMES))), np.zeros((0, 2)), self.spec)
        padded = np.pad(audio, LONG_WINDOW // 2)
        blocks = [
            self._frame_local(padded, start, min(start + BLOCK_FRAMES, n))
            for start in range(0, n, BLOCK_FRAMES)
        ]
        columns = self._whole_clip(
            {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
        )
        features = np.stack([columns[name] for name in SCALAR_DIMS], axis=1)
        features = np.concatenate([features, columns["mfcc"], columns["mfcc_delta"]], axis=1)
        features = np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)
        log.debug(
            "%d frames: %.0f%% voiced, %.0f%% silent",
            n,
            100 * columns["voiced"].mean(),
            100 * columns["silence"].mean(),
        )
        starts = np.arange(n) / 100.0
        return FeatureSequence(features, np.stack([starts, starts + 0.01], axis=1), self.spec)

    def _frame_local(self, padded: np.ndarray, start: int, stop: int) -> dict[str, np.ndarray]:
        """Measures of frames ``start..stop-1`` that need only their own samples."""
        before = 1 if start > 0 else 0  # spectral flux compares with the frame before the block
        short = centred_frames(padded, SHORT_WINDOW, start - before, stop)
        power = np.abs(scipy.fft.rfft(short * _HANN_SHORT, SHORT_FFT, axis=1)) ** 2
        shape = {key: value[before:] for key, value in spectral_shape(power, FREQS).items()}
        short, power = short[before:], power[before:]

        long = centred_frames(padded, LONG_WINDOW, start, stop)
        period, aperiodicity, periodicity = yin(long, self.fmin, self.fmax)
        periodic = aperiodicity < self.voicing_threshold
        spectrum = scipy.fft.rfft(long[periodic] * _HANN_LONG, axis=1)
        long_db = 10 * np.log10(np.abs(spectrum) ** 2 + EPS)
        f0 = SAMPLE_RATE / period[periodic]
        h1, h2, h4 = (harmonic_db(long_db, f0 * k, f0) for k in (1, 2, 4))

        mel_db = 10 * np.log10(power @ self._mel_basis.T + EPS)
        return {
            "rms": np.sqrt(np.mean(short**2, axis=1)),
            "period": period,
            "aperiodicity": aperiodicity,
            "periodicity": periodicity,
            "periodic": periodic,
            "h1_h2_db": scatter(periodic, h1 - h2),
            "h2_h4_db": scatter(periodic, h2 - h4),
            "zcr": np.mean(np.abs(np.diff(np.signbit(short), axis=1)), axis=1),
            **shape,
            **spectral_tilt(power, FREQS),
            "mfcc": scipy.fft.dct(mel_db, type=2, norm="ortho", axis=1)[:, :N_MFCC],
        }

    def _whole_clip(self, local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Silence and voicing decisions, and the measures that span neighbouring frames."""
        rms = local["rms"]
        rms_db = np.maximum(20 * np.log10(rms + EPS), FLOOR_DB)
        silence = rms_db < max(self.silence_db, rms_db.max() - self.silence_below_peak_db)
        voiced = local["periodic"] & ~silence
        f0 = np.where(voiced, SAMPLE_RATE / local["period"], 0.0)
        periodicity = local["periodicity"]
        hnr = 10 * np.log10(periodicity / np.maximum(1 - periodicity, EPS) + EPS)
        mfcc = local["mfcc"]
        return {
            **local,
            "f0_hz": f0,
            "voiced": voiced.astype(float),
            "voicing_prob": np.where(silence, 0.0, np.clip(1 - local["aperiodicity"], 0, 1)),
            "f0_semitones": np.where(voiced, 12 * np.log2(np.maximum(f0, EPS) / 55.0), 0.0),
            "rms_db": rms_db,
            "rms_db_delta": time_delta(rms_db[None])[0],
            "h1_h2_db": np.where(voiced, local["h1_h2_db"], 0.0),
            "h2_h4_db": np.where(voiced, local["h2_h4_db"], 0.0),
            "hnr_db": np.where(silence, HNR_RANGE_DB[0], np.clip(hnr, *HNR_RANGE_DB)),
            "jitter_local": frame_jitter(local["period"], voiced),
            "shimmer_local_db": frame_shimmer(rms, voiced),
            "silence": silence.astype(float),
            "mfcc_delta": time_delta(mfcc.T).T,
        }


def centred_frames(padded: np.ndarray, length: int, start: int, stop: int) -> np.ndarray:
    """Float64 ``[stop - start, length]`` windows centred on ``i * HOP`` of the audio.

    ``padded`` is the audio with ``LONG_WINDOW // 2`` zeros on each side.
    """
    offset = LONG_WINDOW // 2 - length // 2 + start * HOP
    span = padded[offset : offset + (stop - start - 1) * HOP + length]
    return np.lib.stride_tricks.sliding_window_view(span, length)[::HOP].astype(np.float64)


def scatter(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values computed for the rows where ``mask`` holds, zeros elsewhere."""
    out = np.zeros(len(mask))
    out[mask] = values
    return out


def yin(frames: np.ndarray, fmin: float, fmax: float) -> tuple[np.ndarray, ...]:
    """YIN pitch per frame: (period in samples, aperiodicity, normalised autocorrelation).

    The difference function ``d(tau) = sum_j (x_j - x_{j+tau})^2`` over a fixed integration
    length is computed from one FFT cross-correlation and running energies. The period is the
    first local minimum of the cumulative-mean-normalised ``d`` below 0.1 (else the global
    minimum), refined by parabolic interpolation; the aperiodicity is ``d'`` there.
    """
    n, length = frames.shape
    tau_min, tau_max = int(SAMPLE_RATE / fmax), int(np.ceil(SAMPLE_RATE / fmin))
    span = length - tau_max  # integration length
    size = 1 << int(np.ceil(np.log2(length + span)))
    cross = scipy.fft.irfft(
        np.conj(scipy.fft.rfft(frames[:, :span], size)) * scipy.fft.rfft(frames, size), size
    )[:, : tau_max + 1]
    energy = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    e_lag = energy[:, span : span + tau_max + 1] - energy[:, : tau_max + 1]  # window at tau
    e_ref = energy[:, span : span + 1]
    diff = np.maximum(e_ref + e_lag - 2 * cross, 0.0)
    taus = np.arange(tau_max + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(np.cumsum(diff[:, 1:], axis=1), EPS)

    search = cmnd[:, tau_min : tau_max + 1]
    is_dip = np.zeros_like(search, dtype=bool)
    is_dip[:, 1:-1] = (search[:, 1:-1] <= search[:, :-2]) & (search[:, 1:-1] <= search[:, 2:])
    candidates = is_dip & (search < 0.1)
    best = np.where(candidates.any(axis=1), candidates.argmax(axis=1), search.argmin(axis=1))
    tau = best + tau_min
    rows = np.arange(n)
    left = cmnd[rows, np.maximum(tau - 1, 1)]
    mid = cmnd[rows, tau]
    right = cmnd[rows, np.minimum(tau + 1, tau_max)]
    curve = left - 2 * mid + right
    shift = np.where(curve > EPS, 0.5 * (left - right) / np.maximum(curve, EPS), 0.0)
    period = tau + np.clip(shift, -0.5, 0.5)
    periodicity = cross[rows, tau] / np.sqrt(np.maximum(e_ref[:, 0] * e_lag[rows, tau], EPS))
    return period, np.clip(mid, 0.0, 1.0), np.clip(periodicity, 0.0, 1.0)


def harmonic_db(spectrum_db: np.ndarray, target_hz: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Level of the harmonic peak near ``target_hz`` (within +-20% of F0 > 0), per row.

    The strongest bin in reach is refined by a parabola through it and its neighbours, which
    removes most of the Hann window's scalloping loss (up to 1.4 dB between bins).
    """
    if len(f0) == 0:
        return np.zeros(0)
    last = spectrum_db.shape[1] - 1
    bin_hz = SAMPLE_RATE / LONG_WINDOW
    centre = np.round(target_hz / bin_hz).astype(int)
    reach = np.maximum(1, np.round(0.2 * f0 / bin_hz)).astype(int)
    offsets = np.arange(-reach.max(), reach.max() + 1)
    idx = np.clip(centre[:, None] + offsets[None, :], 1, last - 1)
    values = np.take_along_axis(spectrum_db, idx, axis=1)
    values = np.where(np.abs(offsets)[None, :] <= reach[:, None], values, -np.inf)
    peak = np.take_along_axis(idx, values.argmax(axis=1)[:, None], axis=1)
    left, mid, right = (np.take_along_axis(spectrum_db, peak + k, axis=1)[:, 0] for k in (-1, 0, 1))
    curve = left - 2 * mid + right
    shift = np.where(curve < -EPS, 0.5 * (left - right) / np.minimum(curve, -EPS), 0.0)
    return mid - 0.25 * (left - right) * np.clip(shift, -0.5, 0.5)


def spectral_shape(power: np.ndarray, freqs: np.ndarray) -> dict[str, np.ndarray]:
    """Centroid, bandwidth, 85% roll-off, flatness, flux and normalised entropy per frame."""
    total = power.sum(axis=1) + EPS
    share = power / total[:, None]
    centroid = share @ freqs
    bandwidth = np.sqrt(np.sum(share * (freqs[None, :] - centroid[:, None]) ** 2, axis=1))
    rolloff = freqs[np.argmax(np.cumsum(share, axis=1) >= 0.85, axis=1)]
    log_power = np.log(power + EPS)
    flatness = np.exp(log_power.mean(axis=1)) / (power.mean(axis=1) + EPS)
    magnitude = np.sqrt(power)
    magnitude = magnitude / (magnitude.sum(axis=1, keepdims=True) + EPS)
    flux = np.zeros(len(power))
    flux[1:] = np.linalg.norm(np.diff(magnitude, axis=0), axis=1)
    entropy = -np.sum(share * np.log2(share + EPS), axis=1) / np.log2(power.shape[1])
    return {
        "spectral_centroid_hz": centroid,
        "spectral_bandwidth_hz": bandwidth,
        "spectral_rolloff_hz": rolloff,
        "spectral_flatness": np.clip(flatness, 0.0, 1.0),
        "spectral_flux": flux,
        "spectral_entropy": np.clip(entropy, 0.0, 1.0),
    }


def spectral_tilt(power: np.ndarray, freqs: np.ndarray) -> dict[str, np.ndarray]:
    """Regression slopes of the dB spectrum and the eGeMAPS alpha ratio / Hammarberg index."""
    level_db = 10 * np.log10(power + EPS)

    def band(lo: float, hi: float) -> np.ndarray:
        return (freqs >= lo) & (freqs <= hi)

    def slope(mask: np.ndarray) -> np.ndarray:
        khz = freqs[mask] / 1000
        centred = khz - khz.mean()
        return level_db[:, mask] @ centred / np.sum(centred**2)

    def energy_db(mask: np.ndarray) -> np.ndarray:
        return 10 * np.log10(power[:, mask].sum(axis=1) + EPS)

    return {
        "spectral_slope_db_per_khz": slope(band(0, SAMPLE_RATE / 2)),
        "slope_0_500_db_per_khz": slope(band(0, 500)),
        "slope_500_1500_db_per_khz": slope(band(500, 1500)),
        "alpha_ratio_db": energy_db(band(1000, 5000)) - energy_db(band(50, 1000)),
        "hammarberg_db": level_db[:, band(0, 2000)].max(axis=1)
        - level_db[:, band(2000, 5000)].max(axis=1),
    }


def frame_jitter(period: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """|T_i - T_(i-1)| / mean(T_i, T_(i-1)) between consecutive voiced frames, else 0.

    A frame-level stand-in for cycle-to-cycle jitter: it follows period instability at 10 ms
    resolution and is not comparable to Praat's jitter (local) in absolute value.
    """
    out = np.zeros(len(period))
    both = voiced[1:] & voiced[:-1]
    change = np.abs(np.diff(period)) / (0.5 * (period[1:] + period[:-1]))
    out[1:] = np.where(both, change, 0.0)
    return out


def frame_shimmer(rms: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """|20 log10(A_i / A_(i-1))| of frame RMS between consecutive voiced frames, else 0."""
    out = np.zeros(len(rms))
    both = voiced[1:] & voiced[:-1]
    change = np.abs(20 * np.log10((rms[1:] + EPS) / (rms[:-1] + EPS)))
    out[1:] = np.where(both, change, 0.0)
    return out


def time_delta(values: np.ndarray) -> np.ndarray:
    """Regression deltas along the last axis (librosa, width 9 or what the clip allows)."""
    n = values.shape[-1]
    if n < 3:
        return np.zeros_like(values)
    width = min(9, n if n % 2 else n - 1)
    return librosa.feature.delta(values, width=width, mode="nearest")
