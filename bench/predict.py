"""Predict speed: wall time for one 10-s clip with a warm model, with a transcript sidecar and
with speech recognition (and once more from the feature cache).

The clip is the committed talking-head fixture (640x360, 30 frames/s, espeak-ng speech) played
twice and held on its last frame to 10.0 s, written with PyAV. "Warm" means the model and every
featurizer's models (face mesh, expression CNN, word vectors, Whisper, the aligner) are loaded by
predicting two other clips first; each timed run then starts from an empty feature cache, so it
measures extraction + alignment + the model, as for a clip never seen before.

    .venv/bin/python bench/predict.py [--model demo-output/model] [--repeats 3]

Without a model directory, the demo (`carat-cli demo`) is run first into a temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featurizers.media import MediaClip  # noqa: E402
from pipeline.demo import SAMPLE_DIR, run_demo  # noqa: E402
from pipeline.predict import Predictor  # noqa: E402
from pipeline.store import FeatureStore  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SOURCE = FIXTURES / "talking_head.mp4"
SENTENCE = "hello my name is alice and i am very happy today this movie was really good"
SECONDS, FPS, RATE = 10.0, 30, 16000


def make_clip(path: Path) -> Path:
    """The source clip twice, then its last frame and silence, to exactly SECONDS."""
    clip = MediaClip(SOURCE)
    frames = [rgb for _, rgb in clip.frames()]
    audio = clip.audio(RATE)
    n_frames = int(SECONDS * FPS)
    video_frames = (frames * 3)[: 2 * len(frames)]
    video_frames += [frames[-1]] * (n_frames - len(video_frames))
    sound = np.concatenate([audio, audio])[: int(SECONDS * RATE)]
    sound = np.pad(sound, (0, int(SECONDS * RATE) - len(sound))).astype(np.float32)
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "26"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        stream = out.add_stream("aac", rate=RATE, layout="mono")
        for rgb in video_frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, len(sound), 1024):
            frame = av.AudioFrame.from_ndarray(
                sound[None, start : start + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def timed(predictor: Predictor, clip: Path, cache: Path | None) -> tuple[float, bool]:
    """Seconds to predict ``clip``; a fresh cache folder unless ``cache`` is None (reuse)."""
    if cache is not None:
        predictor.store = FeatureStore(cache)
    started = time.perf_counter()
    [result] = predictor.predict([clip])
    seconds = time.perf_counter() - started
    if result.error is not None:
        raise SystemExit(f"prediction failed: {result.error}")
    return seconds, result.cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("demo-output/model"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="carat-bench-predict-") as tmp:
        work = Path(tmp)
        model = args.model
        if not (model / "config.json").is_file():
            print(f"{model}: no model there; running the demo first (a few minutes)")
            model = run_demo(work / "demo").model
        with_sidecar = make_clip(work / "sidecar" / "clip10.mp4")
        with_sidecar.with_suffix(".txt").write_text(f"{SENTENCE} {SENTENCE}\n")
        without = make_clip(work / "asr" / "clip10.mp4")

        started = time.perf_counter()
        predictor = Predictor(model, cache_dir=work / "warmup")
        predictor.predict([SAMPLE_DIR / "clips" / "happy_01.mp4", SAMPLE_DIR / "held_out"])
        print(f"model: {model}")
        warmup = time.perf_counter() - started
        print(f"warm-up (load the model and featurizers, predict 3 short clips): {warmup:.1f} s")

        rows = {"transcript sidecar": [], "speech recognition": []}
        for i in range(args.repeats):
            rows["transcript sidecar"].append(timed(predictor, with_sidecar, work / f"s{i}")[0])
            rows["speech recognition"].append(timed(predictor, without, work / f"a{i}")[0])
        cached, hit = timed(predictor, without, None)
        assert hit, "the last run should have come from the cache"

        print(f"one {SECONDS:.0f}-s clip ({SOURCE.name} x2, 640x360, {FPS} fps), warm, CPU:")
        for name, values in rows.items():
            shown = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:<20} median {statistics.median(values):6.2f} s  ({shown})")
        print(f"  {'from the cache':<20} {cached:13.3f} s")


if __name__ == "__main__":
    main()
