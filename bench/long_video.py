"""Long recordings: real-time factor of `predict`, memory at two lengths, segments vs planted,
and resume after a kill mid-file.

The recordings are built from the committed sample utterances (tests/long_recording.py): many
utterances with pauses, a silent stretch and a stretch without a face, with and without a .srt
transcript. Every measurement runs in a fresh process with an empty feature cache (so the
figures include extraction, and peak RSS is that process's own).

    .venv/bin/python bench/long_video.py --model demo-output/model
    .venv/bin/python bench/long_video.py --model demo-output/model --minutes 2 6 --skip-asr
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from long_recording import make_long_recording  # noqa: E402

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads(2)
from pipeline.predict import predict_clips
started = time.perf_counter()
[clip] = predict_clips([{path!r}], {model!r}, cache_dir={cache!r}, segments={segments!r})
seconds = time.perf_counter() - started
segments = [[s.start, s.end, s.error is None] for s in clip.timeline.segments]
print(json.dumps({{
    "seconds": seconds,
    "duration": clip.timeline.duration,
    "segmentation": clip.timeline.segmentation,
    "segments": segments,
    "cached": clip.cached,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}}))
"""


def run_child(path: Path, model: str, cache: Path, segments: str = "auto") -> dict:
    code = CHILD.format(
        repo=str(REPO), path=str(path), model=model, cache=str(cache), segments=segments
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    if out.returncode != 0:
        raise SystemExit(f"predict failed on {path}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def boundary_error(planted: list, segments: list) -> tuple[float, float]:
    """Median and max distance (s) from each planted utterance's start to the nearest segment
    start, and the same for ends."""
    starts = [s[0] for s in segments]
    ends = [s[1] for s in segments]
    errors = []
    for utterance in planted:
        errors.append(min(abs(utterance.start - s) for s in starts))
        errors.append(min(abs(utterance.end - e) for e in ends))
    errors.sort()
    return errors[len(errors) // 2], errors[-1]


def covered(planted: list, segments: list) -> int:
    """Planted utterances that lie inside one predicted segment (0.1-s tolerance)."""
    return sum(
        any(s[0] - 0.1 <= u.start and u.end <= s[1] + 0.1 for s in segments) for u in planted
    )


def build(folder: Path, minutes: float, transcript: bool) -> tuple[Path, list]:
    name = f"recording_{minutes:g}min{'_srt' if transcript else ''}.mp4"
    return make_long_recording(
        folder / name,
        gap_s=1.2,
        silent_stretch=8.0,
        no_face_stretch=12.0,
        with_transcript=transcript,
        length_s=minutes * 60,
    )


def resume_after_kill(path: Path, model: str, cache: Path, full_seconds: float) -> dict:
    """Kill a predict run at about half its expected time, run again, compare."""
    code = CHILD.format(
        repo=str(REPO), path=str(path), model=model, cache=str(cache), segments="auto"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(full_seconds * 0.5)
    child.send_signal(signal.SIGKILL)
    child.wait()
    entries_before = sum(1 for _ in (cache / "entries").rglob("*.npz")) if cache.exists() else 0
    again = run_child(path, model, cache)
    entries_after = sum(1 for _ in (cache / "entries").rglob("*.npz"))
    return {
        "killed_after_s": full_seconds * 0.5,
        "entries_kept": entries_before,
        "entries_total": entries_after,
        "rerun_seconds": again["seconds"],
        "full_seconds": full_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model directory (e.g. the demo's)")
    parser.add_argument("--minutes", type=float, nargs=2, default=[2.0, 5.0])
    parser.add_argument("--skip-asr", action="store_true", help="only the transcript runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carat-long-bench-"))
    try:
        rows = []
        for minutes in args.minutes:
            path, planted = build(work, minutes, transcript=True)
            result = run_child(path, args.model, work / f"cache-srt-{minutes:g}")
            rows.append(("transcript", minutes, planted, result))
            if not args.skip_asr:
                bare, planted_bare = build(work, minutes, transcript=False)
                result = run_child(bare, args.model, work / f"cache-asr-{minutes:g}")
                rows.append(("speech recognition", minutes, planted_bare, result))
        print(
            f"{'words from':<19} {'length':>7} {'RTF':>6} {'peak RSS':>9} {'segments':>9} "
            f"{'planted':>8} {'covered':>8} {'bound. err med/max':>19}"
        )
        for source, _minutes, planted, r in rows:
            med, worst = boundary_error(planted, r["segments"])
            print(
                f"{source:<19} {r['duration']:>6.0f}s {r['duration'] / r['seconds']:>5.1f}x "
                f"{r['rss_mb']:>7.0f}MB {len(r['segments']):>9} {len(planted):>8} "
                f"{covered(planted, r['segments']):>8} {med:>9.2f}/{worst:.2f} s"
            )
        path, _ = build(work, args.minutes[0], transcript=True)
        full = next(r for s, m, _, r in rows if s == "transcript" and m == args.minutes[0])
        resumed = resume_after_kill(path, args.model, work / "cache-resume", full["seconds"])
        print(
            f"resume: killed at {resumed['killed_after_s']:.0f} s with "
            f"{resumed['entries_kept']} of {resumed['entries_total']} cache entries written; "
            "the re-run took "
            f"{resumed['rerun_seconds']:.1f} s against {resumed['full_seconds']:.1f} s from scratch"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
