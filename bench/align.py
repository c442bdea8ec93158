"""Word alignment speed: ours at CMU-MOSEI scale, against the CMU Multimodal SDK on a subset.

Builds a MOSEI-sized input in memory: 22,000 segments of about 20 words (times at 1 ms, a few
zero-length words, 300-d word vectors), cut from videos of 7 segments each (as in MOSEI) that carry
continuous audio (74-d, 100 Hz) and visual (35-d, 30 Hz) frames. Times
``pipeline.align.align_clips`` on every segment (our store holds one entry per segment), then
times the SDK's ``mmdataset.align("words", collapse_functions=[avg])`` on a subset in two
set-ups, checks that the SDK and we give the same numbers (to 1e-5), and prints the speed-up
per segment:

- "segments": one SDK entry per segment, held in memory (the SDK's most favourable case);
- "videos": one entry per video read from ``.csd`` files, the layout of the released MOSEI
  sequences (the SDK scans all of a video's frames for each word).

    .venv/bin/python bench/align.py [--segments 22000] [--sdk-segments 100] [--chunk 64]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carat.data.csd import write_csd  # noqa: E402
from featurizers.base import FeatureSequence, FeaturizerSpec  # noqa: E402
from pipeline.align import EPSILON, AlignSettings, align_clips  # noqa: E402

RATES = {"audio": 100.0, "visual": 30.0}
DIMS = {"text": 300, "audio": 74, "visual": 35}
SPECS = {
    m: FeaturizerSpec(f"bench-{m}", "1", m, tuple(f"{m}{i}" for i in range(d)), RATES.get(m))
    for m, d in DIMS.items()
}
SEGMENTS_PER_VIDEO = 7  # MOSEI: 23,453 segments in 3,228 videos, 65.9 h (~73 s a video)
SDK_NAMES = {"words": "text", "audio": "audio", "visual": "visual"}


def make_videos(num_segments: int, seed: int) -> dict[str, dict]:
    """Videos of continuous frames, each with its segments (feature arrays are views into
    shared random pools, so the whole input fits in a few hundred MB)."""
    rng = np.random.default_rng(seed)
    pools = {m: rng.normal(size=(200_000, d)).astype(np.float32) for m, d in DIMS.items()}
    videos = {}
    for v in range(-(-num_segments // SEGMENTS_PER_VIDEO)):
        count = min(SEGMENTS_PER_VIDEO, num_segments - v * SEGMENTS_PER_VIDEO)
        t = float(rng.uniform(0, 30))
        word_spans = []
        for _ in range(count):
            num_words = int(rng.integers(12, 29))
            gaps = rng.integers(0, 150, size=num_words) / 1000
            lengths = rng.integers(60, 600, size=num_words) / 1000
            lengths[rng.random(num_words) < 0.02] = 0.0  # aligners emit some empty words
            ends = round(t, 3) + np.cumsum(gaps + lengths)
            word_spans.append(np.stack([ends - lengths, ends], axis=1))
            t = ends[-1] + float(rng.uniform(0.5, 3.5))
        frames = {
            m: _frames(pools[m], rng, rate, 0.0, t + 1.0, SPECS[m]) for m, rate in RATES.items()
        }
        segments = {}
        for k, words in enumerate(word_spans):
            text = FeatureSequence(_slice(pools["text"], rng, len(words)), words, SPECS["text"])
            span = (words[0, 0] - 0.2, words[-1, 1] + 0.2)
            segment = {"text": text}
            for m, rate in RATES.items():
                lo, hi = int(np.floor(span[0] * rate)), int(np.ceil(span[1] * rate))
                whole = frames[m]
                segment[m] = FeatureSequence(
                    whole.features[lo:hi], whole.intervals[lo:hi], SPECS[m]
                )
            segments[f"video{v:05d}_seg{k}"] = segment
        videos[f"video{v:05d}"] = {"frames": frames, "segments": segments}
    return videos


def _slice(pool: np.ndarray, rng, rows: int) -> np.ndarray:
    start = int(rng.integers(0, len(pool) - rows))
    return pool[start : start + rows]


def _frames(pool, rng, rate, start, end, spec) -> FeatureSequence:
    ticks = np.arange(int(np.floor(start * rate)), int(np.ceil(end * rate))) / rate
    intervals = np.stack([ticks, ticks + 1 / rate], axis=1)
    return FeatureSequence(_slice(pool, rng, len(ticks)), intervals, spec)


class Clock:
    """Wall and CPU seconds: the machine is shared, so CPU time is the steadier figure."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_ours(segments: dict[str, dict], settings: AlignSettings, chunk: int, keep: bool):
    """Align in chunks of ``chunk`` segments; returns (wall, CPU) seconds and, with ``keep``,
    the per-segment outputs (else each chunk's arrays are dropped once made, so the figure is
    the alignment itself, not the growth of a 2 GB result in memory)."""
    ids, outputs = list(segments), {}
    clock = Clock()
    for at in range(0, len(ids), chunk):
        part = ids[at : at + chunk]
        features, masks = align_clips([segments[i] for i in part], settings)
        if keep:
            for row, clip_id in enumerate(part):
                outputs[clip_id] = (
                    {m: f[row] for m, f in features.items()},
                    {m: k[row] for m, k in masks.items()},
                )
    return clock.stop(), outputs


def _sdk_dataset(entries: dict[str, dict[str, FeatureSequence]], folder: Path | None):
    """An SDK mmdataset of the entries: in memory, or read back from .csd files in folder."""
    from mmsdk import mmdatasdk
    from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

    data = {
        name: {e: (seqs[m].features, seqs[m].intervals) for e, seqs in entries.items()}
        for name, m in SDK_NAMES.items()
    }
    if folder is not None:
        for name in SDK_NAMES:
            write_csd(folder / f"{name}.csd", name, data[name], {})
        return mmdatasdk.mmdataset({name: str(folder / f"{name}.csd") for name in SDK_NAMES})
    dataset = mmdatasdk.mmdataset({name: name for name in SDK_NAMES})
    for name in SDK_NAMES:
        metadata = {key: "bench" for key in featuresetMetadataTemplate} | {"root name": name}
        dataset[name].setData(
            {e: {"features": f, "intervals": i} for e, (f, i) in data[name].items()}, name
        )
        dataset[name].setMetadata(metadata, name)
    return dataset


def time_sdk(entries: dict[str, dict[str, FeatureSequence]], folder: Path | None):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        dataset = _sdk_dataset(entries, folder)
        clock = Clock()
        dataset.align("words", collapse_functions=[lambda _iv, f: np.average(f, axis=0)])
        return clock.stop(), dataset


def compare(word_rows: dict[str, list[tuple[str, int]]], segments, ours, sdk) -> tuple[int, float]:
    """The SDK and we agree on which (word, modality) pairs have a value, and on the values.

    ``word_rows`` maps each SDK entry to the (segment, word position) of its words.
    """
    compared, worst = 0, 0.0
    for entry, rows in word_rows.items():
        for index, (segment, w) in enumerate(rows):
            key = f"{entry}[{index}]"
            features, masks = ours[segment]
            start, end = segments[segment]["text"].intervals[w]
            if abs(start - end) < EPSILON:  # the SDK drops zero-length words; we mask them
                if key in sdk["words"].keys() or masks["audio"][w]:
                    raise SystemExit(f"{key}: zero-length word handled differently")
                continue
            for modality in ("audio", "visual"):
                present = key in sdk[modality].keys()
                if present != bool(masks[modality][w]):
                    raise SystemExit(f"{key} {modality}: the SDK and our mask disagree")
                if present:
                    theirs = np.asarray(sdk[modality][key]["features"])[0]
                    difference = np.abs(theirs - features[modality][w]) / np.maximum(
                        1.0, np.abs(theirs)
                    )
                    worst = max(worst, float(difference.max()))
                    compared += 1
    return compared, worst


def video_entries(videos, ids):
    """SDK entries per video: all words of its segments, and its continuous frames."""
    entries, word_rows = {}, {}
    for video_id in ids:
        video = videos[video_id]
        segments = video["segments"]
        words = [s["text"] for s in segments.values()]
        entries[video_id] = {
            "text": FeatureSequence(
                np.concatenate([w.features for w in words]),
                np.concatenate([w.intervals for w in words]),
                SPECS["text"],
            ),
            **video["frames"],
        }
        word_rows[video_id] = [
            (seg_id, w) for seg_id, s in segments.items() for w in range(len(s["text"].features))
        ]
    return entries, word_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=22_000)
    parser.add_argument("--sdk-segments", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=64, help="segments per align_clips call")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = AlignSettings.for_mode("aligned")

    started = time.perf_counter()
    videos = make_videos(args.segments, args.seed)
    segments = {k: s for v in videos.values() for k, s in v["segments"].items()}
    words = sum(len(s["text"].features) for s in segments.values())
    frames = {m: sum(len(s[m].features) for s in segments.values()) for m in RATES}
    print(
        f"input: {len(segments)} segments in {len(videos)} videos, {words} words; per segment "
        f"{frames['audio'] / len(segments):.0f} audio frames (74-d, 100 Hz) and "
        f"{frames['visual'] / len(segments):.0f} visual frames (35-d, 30 Hz); "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    (wall, cpu), _ = time_ours(segments, settings, args.chunk, keep=False)
    ours_wall, ours_cpu = wall / len(segments), cpu / len(segments)
    print(
        f"ours, all {len(segments)} segments: {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"({1e3 * ours_cpu:.3f} ms CPU/segment, chunks of {args.chunk})"
    )

    video_ids = list(videos)[: max(1, args.sdk_segments // SEGMENTS_PER_VIDEO)]
    subset = {k: s for v in video_ids for k, s in videos[v]["segments"].items()}
    _, ours = time_ours(subset, settings, args.chunk, keep=True)
    by_segment = {k: [(k, w) for w in range(len(s["text"].features))] for k, s in subset.items()}
    with tempfile.TemporaryDirectory() as tmp:
        setups = {
            "segments (in memory)": (subset, by_segment, None),
            "videos (.csd files)": (*video_entries(videos, video_ids), Path(tmp)),
        }
        for label, (entries, word_rows, folder) in setups.items():
            (wall, cpu), sdk = time_sdk(entries, folder)
            compared, worst = compare(word_rows, subset, ours, sdk)
            sdk_wall, sdk_cpu = wall / len(subset), cpu / len(subset)
            print(
                f"CMU SDK, entries = {label}: {wall:.2f} s wall, {cpu:.2f} s CPU for "
                f"{len(subset)} segments ({1e3 * sdk_cpu:.2f} ms CPU/segment); speed-up per "
                f"segment {sdk_cpu / ours_cpu:.0f}x CPU, {sdk_wall / ours_wall:.0f}x wall; "
                f"the SDK at this rate for all segments: {sdk_cpu * len(segments) / 60:.1f} min"
            )
            print(
                f"  agreement: {compared} word x modality values, "
                f"max difference {worst:.1e} (relative to max(1, |value|))"
            )
            if worst > 1e-5:
                raise SystemExit(f"outputs differ by {worst:.1e} (> 1e-5)")


if __name__ == "__main__":
    main()
