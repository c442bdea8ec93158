"""Segmenting long recordings: boundaries found vs planted, and memory flat in the length.

    .venv/bin/python bench/segments.py                     # 2- and 6-minute recordings
    .venv/bin/python bench/segments.py --lengths 60 120 --skip-asr

1. Builds recordings from the committed sample utterances (tests/long_recording.py: 1.5-s gaps,
   a silent stretch, a stretch without a face; 160x90 H.264 + AAC), with and without a .srt.
2. For each source (transcript cues, speech recognition, voice activity) on the shortest
   recording: segments found vs planted, the boundary error in seconds (median and max over
   the planted utterances, each matched to the found segment that overlaps it most), and the
   wall time of ``plan_segments`` as a real-time factor (seconds of media per second).
3. Peak RSS of ``plan_segments`` (voice activity, or speech recognition with --rss-asr) plus
   the audio features of every segment, for each length, each in a fresh subprocess: flat
   memory means the two figures are about equal.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from long_recording import make_long_recording  # noqa: E402

from featurizers.audio import AudioFeaturizer  # noqa: E402
from featurizers.media import MediaClip  # noqa: E402
from featurizers.segments import SegmentationSpec, plan_segments  # noqa: E402


def build(folder: Path, seconds: float, transcript: bool) -> tuple[Path, list]:
    name = f"talk_{int(seconds)}s{'_srt' if transcript else ''}.mp4"
    return make_long_recording(
        folder / name,
        gap_s=1.5,
        silent_stretch=10.0,
        no_face_stretch=10.0,
        with_transcript=transcript,
        length_s=seconds,
    )


def boundary_errors(found: list, planted: list) -> list[float]:
    """Per planted utterance: the larger edge error against the found segment overlapping it
    most (the whole utterance's length when nothing overlaps it)."""
    errors = []
    for p in planted:
        overlap = [(min(s.end, p.end) - max(s.start, p.start), s) for s in found]
        best, segment = max(overlap, key=lambda o: o[0])
        if best <= 0:
            errors.append(p.end - p.start)
        else:
            errors.append(max(abs(segment.start - p.start), abs(segment.end - p.end)))
    return errors


def measure_sources(folder: Path, seconds: float, skip_asr: bool) -> None:
    with_srt, planted = build(folder, seconds, transcript=True)
    bare, _ = build(folder, seconds, transcript=False)
    duration = MediaClip(bare).info.duration
    print(f"\n## Segments found vs planted ({duration:.0f}-s recording, min_len 1 s)\n")
    print("| source | found | planted | median error s | max error s | plan RTF |")
    print("|---|---|---|---|---|---|")
    runs = [("transcript", with_srt, "auto"), ("vad", bare, "vad")]
    if not skip_asr:
        runs.insert(1, ("asr", bare, "asr"))
    for label, path, how in runs:
        clip = MediaClip(path)
        start = time.perf_counter()
        found = plan_segments(clip, SegmentationSpec(how=how, min_len=1.0))
        wall = time.perf_counter() - start
        errors = sorted(boundary_errors(found, planted))
        print(
            f"| {label} | {len(found)} | {len(planted)} | {errors[len(errors) // 2]:.2f} "
            f"| {errors[-1]:.2f} | {duration / wall:.0f}x |"
        )
    found = plan_segments(MediaClip(with_srt), SegmentationSpec())
    lengths = sorted(s.end - s.start for s in found)
    print(
        f"\nWith the default limits (min 3 s, max 30 s) the transcript gives {len(found)} "
        f"segments of {lengths[0]:.1f}-{lengths[-1]:.1f} s."
    )


def child(path: str, how: str) -> None:
    """Run in a fresh process: plan, then audio features of every segment; print JSON."""
    clip = MediaClip(path)
    start = time.perf_counter()
    segments = plan_segments(clip, SegmentationSpec(how=how))
    planned = time.perf_counter() - start
    featurizer = AudioFeaturizer()
    rows = sum(len(featurizer.extract(clip.segment(s.start, s.end)).features) for s in segments)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "duration": clip.info.duration,
                "segments": len(segments),
                "rows": rows,
                "plan_s": planned,
                "total_s": time.perf_counter() - start,
                "peak_mb": peak_mb,
            }
        )
    )


def measure_memory(folder: Path, lengths: list[float], how: str) -> None:
    print(f"\n## Peak RSS: plan_segments ({how}) + audio features of every segment\n")
    print("| recording | segments | audio rows | plan s | total s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for seconds in lengths:
        path, _ = build(folder, seconds, transcript=False)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--how", how],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {r['duration'] / 60:.1f} min | {r['segments']} | {r['rows']} | "
            f"{r['plan_s']:.1f} | {r['total_s']:.1f} | {r['peak_mb']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs=2, default=[120.0, 360.0])
    parser.add_argument("--skip-asr", action="store_true", help="no speech-recognition row")
    parser.add_argument("--rss-asr", action="store_true", help="measure RSS with asr, not vad")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--how", default="vad", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.how)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measure_sources(folder, min(args.lengths), args.skip_asr)
        measure_memory(folder, sorted(args.lengths), "asr" if args.rss_asr else "vad")


if __name__ == "__main__":
    main()
