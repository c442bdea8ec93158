"""Alignment equals a direct loop implementation and the CMU SDK's own ``align``."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from carat.data.csd import write_csd
from featurizers.base import FeatureSequence, FeaturizerSpec
from pipeline.align import (
    EPSILON,
    AlignSettings,
    align_clip,
    align_clips,
    cap_length,
    pool_clips,
    pool_to_words,
)


def loop_pool(features, intervals, words, valid=None, weighted=False):
    """The overlap rule written out word by word, frame by frame."""
    pooled = np.zeros((len(words), features.shape[1]))
    mask = np.zeros(len(words), dtype=bool)
    for w, (word_start, word_end) in enumerate(words):
        total, acc = 0.0, np.zeros(features.shape[1])
        for i, (start, end) in enumerate(intervals):
            overlap = min(end, word_end) - max(start, word_start)
            if overlap > EPSILON and (valid is None or valid[i]):
                weight = overlap if weighted else 1.0
                acc += weight * features[i]
                total += weight
        if total > 0:
            pooled[w], mask[w] = acc / total, True
    return pooled, mask


def loop_cap(features, max_len, valid):
    """Average-pooling into max_len bins, one bin at a time."""
    n = len(features)
    out, mask = np.zeros((max_len, features.shape[1])), np.zeros(max_len, dtype=bool)
    for b in range(max_len):
        rows = [i for i in range(b * n // max_len, (b + 1) * n // max_len) if valid[i]]
        if rows:
            out[b], mask[b] = features[rows].mean(axis=0), True
    return out, mask


def grid_frames(rng, n, rate, offset):
    starts = offset + np.arange(n) / rate
    intervals = np.stack([starts, starts + 1 / rate], axis=1)
    return rng.normal(size=(n, 5)).astype(np.float32), intervals


def millisecond_words(rng, start, count):
    """Word times at 1 ms resolution (as forced aligners give them), so many ends fall exactly
    on frame boundaries or 1 ms from them; includes zero-length and out-of-range words."""
    words, t = [], start
    for _ in range(count):
        t += rng.integers(0, 80) / 1000
        length = rng.integers(0, 350) / 1000
        words.append([t, t + length])
        t += length
    words += [[start + 0.25, start + 0.25], [start - 5.0, start - 1.0], [t + 50.0, t + 51.0]]
    words += [[start - 0.5, start + 0.001], [start + 0.009, start + 0.02]]
    return np.array(words)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_grid_frames_equal_loop(seed, weighted):
    rng = np.random.default_rng(seed)
    features, intervals = grid_frames(rng, 240, rate=100, offset=12.34)
    words = millisecond_words(rng, 12.34, 12)
    valid = rng.random(240) > 0.2
    shuffle = rng.permutation(240)
    got, got_mask = pool_to_words(
        features[shuffle], intervals[shuffle], words, valid=valid[shuffle], weighted=weighted
    )
    want, want_mask = loop_pool(features, intervals, words, valid=valid, weighted=weighted)
    np.testing.assert_array_equal(got_mask, want_mask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not got_mask[12] and not got_mask[13] and not got_mask[14]  # zero-length, outside
    assert got.dtype == np.float32


@pytest.mark.parametrize("seed", range(4))
def test_irregular_nested_frames_equal_loop(seed):
    rng = np.random.default_rng(100 + seed)
    starts = rng.uniform(0, 3, size=60).round(3)
    intervals = np.stack([starts, starts + rng.uniform(0, 1.5, size=60).round(3)], axis=1)
    features = rng.normal(size=(60, 3)).astype(np.float32)
    words = millisecond_words(rng, 0.0, 10)
    for weighted in (False, True):
        got, got_mask = pool_to_words(features, intervals, words, weighted=weighted)
        want, want_mask = loop_pool(features, intervals, words, weighted=weighted)
        np.testing.assert_array_equal(got_mask, want_mask)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_many_clips_at_once_equal_one_at_a_time(weighted):
    """Clips share a time range (all start near 0) and one has no frames at all."""
    rng = np.random.default_rng(11)
    clips = []
    for c in range(5):
        features, intervals = grid_frames(rng, 0 if c == 3 else 150, rate=100, offset=0.0)
        shuffle = rng.permutation(len(features))
        clips.append((features[shuffle], intervals[shuffle], millisecond_words(rng, 0.0, 6)))
    valid = [rng.random(len(f)) > 0.1 for f, _, _ in clips]
    pooled, mask = pool_clips(*zip(*clips, strict=True), valid, weighted)
    at = 0
    for (features, intervals, words), ok in zip(clips, valid, strict=True):
        one, one_mask = pool_to_words(features, intervals, words, valid=ok, weighted=weighted)
        np.testing.assert_array_equal(mask[at : at + len(words)], one_mask)
        np.testing.assert_allclose(pooled[at : at + len(words)], one, rtol=1e-6, atol=1e-7)
        at += len(words)
    assert at == len(pooled) and mask.any()


def test_boundary_rule_on_hand_made_cases():
    intervals = np.array([[0.0, 0.1], [0.1, 0.2], [0.2, 0.3]])
    features = np.array([[1.0], [2.0], [4.0]], dtype=np.float32)
    words = np.array(
        [
            [0.1, 0.2],  # touches frames 0 and 2 at its edges: only frame 1 counts
            [0.0995, 0.2],  # overlaps frame 0 by 0.5 ms, below the SDK's 1 ms
            [0.05, 0.25],  # half of frame 0, all of 1, half of 2
            [0.15, 0.15],  # zero length
            [0.3, 0.5],  # after the last frame
        ]
    )
    mean, mask = pool_to_words(features, intervals, words)
    np.testing.assert_array_equal(mask, [True, True, True, False, False])
    np.testing.assert_allclose(mean[:3, 0], [2.0, 2.0, 7.0 / 3.0], rtol=1e-6)
    weighted, _ = pool_to_words(features, intervals, words, weighted=True)
    np.testing.assert_allclose(weighted[2, 0], (0.05 * 1 + 0.1 * 2 + 0.05 * 4) / 0.2, rtol=1e-6)
    np.testing.assert_array_equal(mean[3:], 0.0)


def test_empty_inputs_give_masked_words():
    pooled, mask = pool_to_words(np.zeros((0, 4)), np.zeros((0, 2)), np.array([[0.0, 1.0]]))
    assert pooled.shape == (1, 4) and not mask.any()
    pooled, mask = pool_to_words(np.ones((3, 4)), np.ones((3, 2)), np.zeros((0, 2)))
    assert pooled.shape == (0, 4) and mask.shape == (0,)


def test_equals_cmu_sdk_align_on_csd_files(tmp_path):
    from mmsdk import mmdatasdk

    rng = np.random.default_rng(7)
    clips = {}
    for c in range(4):
        audio, audio_iv = grid_frames(rng, 300, rate=100, offset=2.0 + c)
        visual, visual_iv = grid_frames(rng, 90, rate=30, offset=2.0 + c)
        words = millisecond_words(rng, 2.0 + c, 10)
        text = rng.normal(size=(len(words), 6)).astype(np.float32)
        clips[f"clip_{c:03d}"] = {
            "words": (words, text),
            "audio": (audio_iv, audio),
            "visual": (visual_iv, visual),
        }
    paths = {}
    for name in ("words", "audio", "visual"):
        paths[name] = str(tmp_path / f"{name}.csd")
        data = {clip: (seqs[name][1], seqs[name][0]) for clip, seqs in clips.items()}
        write_csd(paths[name], name, data, {})
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = mmdatasdk.mmdataset(paths)
        dataset.align("words", collapse_functions=[lambda _iv, f: np.average(f, axis=0)])

    compared = 0
    for clip, seqs in clips.items():
        words = seqs["words"][0]
        for name in ("audio", "visual"):
            ours, mask = pool_to_words(seqs[name][1], seqs[name][0], words)
            for w, (start, end) in enumerate(words):
                key = f"{clip}[{w}]"
                if abs(start - end) < EPSILON:  # the SDK drops zero-length words entirely
                    assert key not in dataset["words"].keys()
                    assert not mask[w]
                    continue
                assert (key in dataset[name].keys()) == mask[w], (clip, w, name)
                if mask[w]:
                    sdk = np.asarray(dataset[name][key]["features"])[0]
                    np.testing.assert_allclose(ours[w], sdk, rtol=1e-5, atol=1e-5)
                    compared += 1
    assert compared > 60


@pytest.mark.parametrize("n", [7, 50, 501, 1234])
def test_cap_length_pools_into_bins(n):
    rng = np.random.default_rng(n)
    features = rng.normal(size=(n, 3)).astype(np.float32)
    valid = rng.random(n) > 0.3
    got, mask = cap_length(features, 50, valid=valid)
    if n > 50:
        want, want_mask = loop_cap(features, 50, valid)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(mask, want_mask)
    else:
        np.testing.assert_array_equal(got[:n], features)
        np.testing.assert_array_equal(mask, np.r_[valid, np.zeros(50 - n, dtype=bool)])
        np.testing.assert_array_equal(got[n:], 0.0)


def test_cap_length_truncates():
    features = np.arange(20, dtype=np.float32).reshape(10, 2)
    got, mask = cap_length(features, 4, method="truncate")
    np.testing.assert_array_equal(got, features[:4])
    assert mask.all()


def _spec(modality, dims, rate):
    return FeaturizerSpec(f"test-{modality}", "1", modality, tuple(dims), rate)


def test_align_clip_masks_zero_length_words_and_missing_faces():
    text_spec = _spec("text", ["t0", "t1"], None)
    visual_spec = _spec("visual", ["face_found", "smile"], 10.0)
    audio_spec = _spec("audio", ["f0"], 100.0)
    words = np.array([[0.0, 0.2], [0.2, 0.2], [0.3, 0.5], [0.6, 0.8], [5.0, 5.5]])
    text = FeatureSequence(np.arange(10).reshape(5, 2), words, text_spec, ["a", "b", "c", "d", "e"])
    # Visual frames of 0.1 s: a face in the first 0.3 s and after 0.6 s, none in between.
    face = np.array([1, 1, 1, 0, 0, 0, 1, 1], dtype=np.float32)
    visual_iv = np.stack([np.arange(8) / 10, np.arange(1, 9) / 10], axis=1)
    visual = FeatureSequence(np.stack([face, np.arange(8)], axis=1), visual_iv, visual_spec)
    audio_iv = np.stack([np.arange(100) / 100, np.arange(1, 101) / 100], axis=1)
    audio = FeatureSequence(np.arange(100)[:, None], audio_iv, audio_spec)
    settings = AlignSettings.for_mode("aligned", {"text": 8, "visual": 8, "audio": 8})

    features, masks = align_clip({"text": text, "visual": visual, "audio": audio}, settings)

    np.testing.assert_array_equal(masks["text"], [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(masks["visual"], [1, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(masks["audio"], [1, 0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(features["visual"][0], [1.0, 0.5])
    np.testing.assert_allclose(features["visual"][3], [1.0, 6.5])  # frames 6, 7 (face found)
    np.testing.assert_allclose(features["audio"][2, 0], 39.5)  # frames 30..49
    np.testing.assert_array_equal(features["text"][:5], text.features)
    assert all(f.shape == (8, d) for f, d in zip(features.values(), (2, 2, 1), strict=True))
    assert all(m.dtype == np.int64 for m in masks.values())


def test_align_clip_unaligned_caps_each_modality():
    spec = _spec("audio", ["f0"], 100.0)
    starts = np.arange(1000) / 100
    order = np.random.default_rng(0).permutation(1000)
    audio = FeatureSequence(starts[order, None], np.stack([starts, starts + 0.01], 1)[order], spec)
    text = FeatureSequence(
        np.ones((3, 2)), np.array([[0, 1], [1, 2], [2, 3]]), _spec("text", ["a", "b"], None)
    )
    settings = AlignSettings.for_mode("unaligned", {"text": 5, "audio": 10})
    features, masks = align_clip({"text": text, "audio": audio}, settings)
    np.testing.assert_allclose(features["audio"][:, 0], np.arange(10) + 0.495, rtol=1e-5)
    np.testing.assert_array_equal(masks["text"], [1, 1, 1, 0, 0])
    assert masks["audio"].all()


def test_settings_round_trip_and_reject_bad_values():
    settings = AlignSettings.for_mode("unaligned", {"visual": 100}, cap="truncate")
    assert settings.max_len == {"text": 50, "visual": 100, "audio": 500}
    assert AlignSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="mode"):
        AlignSettings.for_mode("sideways")
    with pytest.raises(ValueError, match="at least 1"):
        AlignSettings.for_mode("aligned", {"text": 0})


def test_align_clips_batch_equals_single_clips_with_truncation():
    rng = np.random.default_rng(5)
    specs = {m: _spec(m, [f"{m}{i}" for i in range(3)], 100.0) for m in ("visual", "audio")}
    clips = []
    for c in range(4):
        words = millisecond_words(rng, 1.0 * c, 3 + 3 * c)
        text = FeatureSequence(rng.normal(size=(len(words), 2)), words, _spec("text", "ab", None))
        seqs = {"text": text}
        for modality, spec in zip(("visual", "audio"), specs.values(), strict=True):
            features, intervals = grid_frames(rng, 400, rate=100, offset=1.0 * c - 0.5)
            seqs[modality] = FeatureSequence(features[:, :3], intervals, spec)
        clips.append(seqs)
    settings = AlignSettings.for_mode("aligned", {"text": 9, "visual": 7, "audio": 9})
    features, masks = align_clips(clips, settings)
    assert features["visual"].shape == (4, 7, 3) and masks["text"].shape == (4, 9)
    for row, clip in enumerate(clips):
        one, one_masks = align_clip(clip, settings)
        for m in ("text", "visual", "audio"):
            np.testing.assert_array_equal(masks[m][row], one_masks[m])
            np.testing.assert_allclose(features[m][row], one[m], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(masks["text"][0], [1] * 8 + [0])  # 3 + 5 edge-case words
    assert masks["text"][3].all()  # 17 words truncated to 9
