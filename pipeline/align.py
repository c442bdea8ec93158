"""Word-level alignment and length capping of feature sequences: pure, vectorised numpy.

Aligned mode gives one row per word. Each frame-rate modality (visual, audio) is pooled over the
frames that overlap the word, with the CMU Multimodal SDK's rule (``mmdataset.align`` with an
average collapse function), reproduced exactly:

- a frame counts for a word when their overlap ``min(frame_end, word_end) -
  max(frame_start, word_start)`` is longer than ``EPSILON`` (1 ms, the SDK's ``epsilon``); so a
  frame that only touches the word's boundary, or overlaps it by 1 ms or less, does not count;
- the word's value is the mean of the counting frames (or, with ``weighted``, their mean weighted
  by the overlap duration).

Where the SDK silently drops rows we keep them and say so in a mask instead: a zero-length word
(shorter than ``EPSILON``; the SDK skips it) keeps its text row, and a word with no counting frame
(the SDK leaves it out of that modality) gets zeros with mask 0. Frames marked invalid by the
featurizer's validity dim (no face found) are left out of the mean; a word that overlaps only
invalid frames gets mask 0. Silence is not invalid: unvoiced audio frames are real
measurements and are averaged like the rest (as the SDK does).

Speed: frames are sorted by start once; ``np.searchsorted`` gives each word the short range of
frames that can overlap it, the exact rule is checked only on those (word, frame) pairs, and a
sparse word-by-frame matrix sums them. The cost is O((N + W) log N), never one pass over all
frames per word, and many clips are aligned in one call, since numpy's per-call overhead would
otherwise dominate short clips.

Unaligned mode keeps each modality's own sequence, capped to a maximum length by average-pooling
into equal bins (or by truncation).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from featurizers.base import FeatureSequence, FeaturizerSpec

EPSILON = 1e-3  # seconds: the CMU SDK's tolerance (``epsilon=10e-4`` in its dataset.py)
# Margin for the approximate range search, far above the rounding error of times in seconds
# and far below any real frame length; the exact rule is applied after it.
_SEARCH_SLACK = 1e-7

MODES = ("aligned", "unaligned")
CAP_METHODS = ("pool", "truncate")
DEFAULT_MAX_LEN: dict[str, dict[str, int]] = {
    "aligned": {"text": 60, "visual": 60, "audio": 60},
    "unaligned": {"text": 50, "visual": 500, "audio": 500},
}
# Dims that featurizers use to flag a frame as missing (0) or present (1); a spec may instead
# name its own in ``params["validity_dim"]``.
VALIDITY_DIM_NAMES = ("valid", "face_found", "face_present", "face_detected")


@dataclass(frozen=True)
class AlignSettings:
    """How clips become fixed-length model inputs; saved with every dataset so that predict
    turns a new clip into exactly the same arrays."""

    mode: str = "aligned"
    max_len: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_LEN["aligned"]))
    weighted: bool = False  # aligned: weight frames by overlap duration instead of a plain mean
    cap: str = "pool"  # unaligned: "pool" (average into max_len bins) or "truncate"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"alignment mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.cap not in CAP_METHODS:
            raise ValueError(f"cap method {self.cap!r} is not one of {', '.join(CAP_METHODS)}")
        bad = {m: n for m, n in self.max_len.items() if int(n) < 1}
        if bad:
            raise ValueError(f"max lengths must be at least 1, got {bad}")

    @classmethod
    def for_mode(cls, mode: str, max_len: Mapping[str, int] | None = None, **kwargs: Any):
        """Settings with the mode's default lengths, overridden by ``max_len`` where given."""
        if mode not in DEFAULT_MAX_LEN:
            raise ValueError(f"alignment mode {mode!r} is not one of {', '.join(MODES)}")
        lengths = dict(DEFAULT_MAX_LEN[mode])
        lengths.update({m: int(n) for m, n in (max_len or {}).items()})
        return cls(mode=mode, max_len=lengths, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "max_len": dict(self.max_len),
            "weighted": self.weighted,
            "cap": self.cap,
            "epsilon": EPSILON,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlignSettings:
        return cls(
            mode=data["mode"],
            max_len={m: int(n) for m, n in data["max_len"].items()},
            weighted=bool(data.get("weighted", False)),
            cap=data.get("cap", "pool"),
        )


def validity_dim(spec: FeaturizerSpec) -> int | None:
    """Index of the dim that flags a frame as present (1) or missing (0), if the spec has one."""
    return _validity_index(spec.dim_names, spec.params.get("validity_dim"))


@functools.lru_cache(maxsize=64)
def _validity_index(dim_names: tuple[str, ...], named: str | None) -> int | None:
    if named is not None:
        return dim_names.index(named)
    return next((i for i, name in enumerate(dim_names) if name in VALIDITY_DIM_NAMES), None)


def frame_validity(sequence: FeatureSequence) -> np.ndarray | None:
    """Boolean [N]: frames that carry a measurement, or None when every frame does."""
    index = validity_dim(sequence.spec)
    if index is None:
        return None
    return sequence.features[:, index] > 0.5


def pool_to_words(
    features: np.ndarray,
    intervals: np.ndarray,
    word_intervals: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    weighted: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Pool one clip's frames onto its words with the SDK's rule (see the module docstring).

    ``features`` [N, D] with ``intervals`` [N, 2] in any order; ``word_intervals`` [W, 2].
    Returns (float32 [W, D], bool mask [W]); a word without a counting valid frame gets zeros
    and mask False.
    """
    return pool_clips(
        [features], [intervals], [word_intervals], None if valid is None else [valid], weighted
    )


def pool_clips(
    features: Sequence[np.ndarray],
    intervals: Sequence[np.ndarray],
    word_intervals: Sequence[np.ndarray],
    valid: Sequence[np.ndarray | None] | None = None,
    weighted: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pool_to_words` for many clips in one vectorised pass (the per-call cost of numpy
    dominates one short clip). Returns the words of all clips, concatenated in clip order.
    """
    dim = int(np.shape(features[0])[1])
    frame_iv, frame_counts = _concat_intervals(intervals)
    word_iv, word_counts = _concat_intervals(word_intervals)
    num_words = len(word_iv)
    pooled = np.zeros((num_words, dim), dtype=np.float32)
    if num_words == 0 or len(frame_iv) == 0:
        return pooled, np.zeros(num_words, dtype=bool)

    # The range search runs on one time line where each clip has its own stretch (so a search
    # never crosses clips); the exact rule below uses the original times.
    shift = _clip_shifts(frame_iv, frame_counts, word_iv, word_counts)
    frame_shift, word_shift = np.repeat(shift, frame_counts), np.repeat(shift, word_counts)
    order = _start_order(frame_iv[:, 0] + frame_shift)
    if order is not None:
        frame_iv, frame_shift = frame_iv[order], frame_shift[order]
    starts, ends = np.ascontiguousarray(frame_iv.T)
    word_starts, word_ends = np.ascontiguousarray(word_iv.T)
    # Frames before ``first`` end too early for the word, frames from ``stop`` on start too late;
    # the running maximum of ends keeps the first search valid when frames nest.
    reach = np.maximum.accumulate(ends + frame_shift)
    first = np.searchsorted(reach, word_starts + word_shift + (EPSILON - _SEARCH_SLACK), "right")
    stop = np.searchsorted(starts + frame_shift, word_ends + word_shift - (EPSILON - _SEARCH_SLACK))
    counts = np.maximum(stop - first, 0)

    # Every (word, candidate frame) pair, grouped by word; then the exact rule on each pair.
    pair_word = np.repeat(np.arange(num_words), counts)
    pair_offset = np.arange(len(pair_word)) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_frame = np.repeat(first, counts) + pair_offset
    overlap = np.minimum(ends[pair_frame], word_ends[pair_word]) - np.maximum(
        starts[pair_frame], word_starts[pair_word]
    )
    keep = overlap > EPSILON
    if valid is not None:
        frame_valid = _concat_valid(valid, frame_counts)
        keep &= (frame_valid if order is None else frame_valid[order])[pair_frame]
    pair_word, pair_frame, overlap = pair_word[keep], pair_frame[keep], overlap[keep]
    if order is not None:
        pair_frame = order[pair_frame]

    # Sums accumulate in float32, as the SDK's own ``np.average`` of float32 features does:
    # float64 would double the memory traffic that dominates the run time.
    weight = (overlap if weighted else np.ones(len(pair_word))).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(pair_word, minlength=num_words))])
    matrix = sparse.csr_array((weight, pair_frame, indptr), shape=(num_words, len(frame_iv)))
    sums = matrix @ np.concatenate(features, axis=0, dtype=np.float32)
    totals = np.bincount(pair_word, weights=weight, minlength=num_words)
    mask = totals > 0
    pooled[mask] = sums[mask] / totals[mask, None]
    return pooled, mask


def _concat_intervals(intervals: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All clips' intervals as one float64 [sum N, 2] array, and the rows of each clip."""
    parts = [np.asarray(iv, dtype=np.float64).reshape(-1, 2) for iv in intervals]
    return np.concatenate(parts, axis=0), np.array([len(p) for p in parts])


def _concat_valid(valid: Sequence[np.ndarray | None], counts: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            np.ones(n, dtype=bool) if v is None else np.asarray(v, dtype=bool)
            for v, n in zip(valid, counts, strict=True)
        ]
    )


def _clip_shifts(
    frame_iv: np.ndarray, frame_counts: np.ndarray, word_iv: np.ndarray, word_counts: np.ndarray
) -> np.ndarray:
    """Per-clip time shifts that lay the clips end to end, one second apart."""
    low = np.full(len(frame_counts), np.inf)
    high = np.full(len(frame_counts), -np.inf)
    for iv, counts in ((frame_iv, frame_counts), (word_iv, word_counts)):
        present = counts > 0
        if present.any():
            at = (np.cumsum(counts) - counts)[present]
            row_low, row_high = np.minimum(iv[:, 0], iv[:, 1]), np.maximum(iv[:, 0], iv[:, 1])
            low[present] = np.minimum(low[present], np.minimum.reduceat(row_low, at))
            high[present] = np.maximum(high[present], np.maximum.reduceat(row_high, at))
    empty = ~np.isfinite(low)
    low[empty], high[empty] = 0.0, 0.0
    stride = high - low + 1.0
    return np.cumsum(stride) - stride - low


def _start_order(starts: np.ndarray) -> np.ndarray | None:
    """Indices that sort frames by start (stable, as the SDK's sort), or None when they are
    already in order (the usual case)."""
    if np.all(starts[1:] >= starts[:-1]):
        return None
    return np.argsort(starts, kind="stable")


def cap_length(
    features: np.ndarray,
    max_len: int,
    *,
    valid: np.ndarray | None = None,
    method: str = "pool",
) -> tuple[np.ndarray, np.ndarray]:
    """Pad or shorten a sequence [N, D] to exactly ``max_len`` rows, with a bool mask.

    A sequence longer than ``max_len`` is average-pooled into ``max_len`` equal bins of
    consecutive rows (invalid rows left out of each bin's mean; a bin of only invalid rows gets
    zeros and mask False), or truncated to its first rows. Shorter sequences are zero-padded at
    the end; real rows keep their validity as mask.
    """
    features = np.asarray(features, dtype=np.float32)
    num_rows, dim = features.shape
    row_valid = np.ones(num_rows, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    out = np.zeros((max_len, dim), dtype=np.float32)
    mask = np.zeros(max_len, dtype=bool)
    if num_rows <= max_len or method == "truncate":
        kept = min(num_rows, max_len)
        out[:kept] = features[:kept]
        mask[:kept] = row_valid[:kept]
        return out, mask
    bin_starts = (np.arange(max_len) * num_rows) // max_len  # strictly increasing: N > max_len
    weights = row_valid.astype(np.float64)
    sums = np.add.reduceat(features * weights[:, None], bin_starts, axis=0)
    totals = np.add.reduceat(weights, bin_starts)
    mask = totals > 0
    out[mask] = sums[mask] / totals[mask, None]
    return out, mask


def sort_by_start(sequence: FeatureSequence) -> FeatureSequence:
    """The sequence with rows in time order (stable for equal starts)."""
    order = _start_order(sequence.intervals[:, 0])
    if order is None:
        return sequence
    words = None if sequence.words is None else [sequence.words[i] for i in order]
    return FeatureSequence(
        sequence.features[order], sequence.intervals[order], sequence.spec, words
    )


def align_clip(
    sequences: Mapping[str, FeatureSequence], settings: AlignSettings
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One clip's model inputs: per modality float32 [max_len, D] and int64 mask [max_len]."""
    features, masks = align_clips([sequences], settings)
    return {m: f[0] for m, f in features.items()}, {m: k[0] for m, k in masks.items()}


def align_clips(
    clips: Sequence[Mapping[str, FeatureSequence]], settings: AlignSettings
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Many clips' model inputs: per modality float32 [n, max_len, D] and int64 masks [n, max_len].

    Each clip maps "text", "visual" and "audio" to its feature sequences. Aligned mode keeps the
    text rows in the order given (the first ``max_len["text"]`` words) and pools every other
    modality onto those words; a zero-length word keeps mask 1 for text and 0 elsewhere.
    Unaligned mode caps every sequence on its own, in time order.
    """
    if not clips:
        raise ValueError("align_clips needs at least one clip")
    if settings.mode == "unaligned":
        return _cap_clips(clips, settings)
    word_intervals = [c["text"].intervals[: settings.max_len["text"]] for c in clips]
    counts = np.array([len(w) for w in word_intervals])
    word_clip = np.repeat(np.arange(len(clips)), counts)
    word_position = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    features: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for modality in clips[0]:
        sequences = [c[modality] for c in clips]
        if modality == "text":
            rows = np.concatenate([s.features[: settings.max_len["text"]] for s in sequences])
            valid = np.ones(len(rows), dtype=bool)
        else:
            rows, valid = pool_clips(
                [s.features for s in sequences],
                [s.intervals for s in sequences],
                word_intervals,
                [frame_validity(s) for s in sequences],
                settings.weighted,
            )
        length = settings.max_len[modality]
        fits = word_position < length
        features[modality] = np.zeros((len(clips), length, rows.shape[1]), dtype=np.float32)
        features[modality][word_clip[fits], word_position[fits]] = rows[fits]
        masks[modality] = np.zeros((len(clips), length), dtype=np.int64)
        masks[modality][word_clip[fits], word_position[fits]] = valid[fits]
    return features, masks


def _cap_clips(
    clips: Sequence[Mapping[str, FeatureSequence]], settings: AlignSettings
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    features: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for modality in clips[0]:
        capped = []
        for clip in clips:
            ordered = sort_by_start(clip[modality])
            capped.append(
                cap_length(
                    ordered.features,
                    settings.max_len[modality],
                    valid=frame_validity(ordered),
                    method=settings.cap,
                )
            )
        features[modality] = np.stack([f for f, _ in capped])
        masks[modality] = np.stack([m for _, m in capped]).astype(np.int64)
    return features, masks
