"""Faces: is the speaking face chosen, and what does tracking every face cost?

    .venv/bin/python bench/faces.py                       # the synthetic interview
    .venv/bin/python bench/faces.py --real DIR_OR_FILES   # also: what real footage gives

1. The synthetic interview (tests/fixtures/make_interview.py, built afresh here): two faces
   side by side taking turns, the listener nodding, smiling and mouthing words out of sync.
   Segments are the turns, and windows of ``--window`` seconds inside them; for each, the face
   chosen under ``--face auto`` against the truth (the speaker's side). Printed beside it, two
   ways that ignore the voice: the largest face, and the face whose mouth moves most.
2. Frames per second of face tracking with every face (``max_faces`` 4, the default) against one
   face (``max_faces`` 1, the single-face mesh as before), on the interview (two faces) and on
   tests/fixtures/talking_head.mp4 (one face). The tracks are computed once per recording.
3. ``--real``: per clip, the face tracks found (id, share of frames seen, mean box) and the face
   chosen for the whole clip, with why.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fixtures.make_interview import make_interview  # noqa: E402

from featurizers.active_speaker import LARGEST, choose  # noqa: E402
from featurizers.face_tracks import FaceTracks  # noqa: E402
from featurizers.media import AUDIO_RATE, MediaClip  # noqa: E402
from featurizers.visual import DIM_NAMES, VisualFeaturizer  # noqa: E402

COLUMN = {name: i for i, name in enumerate(DIM_NAMES)}


def side_of(tracks: FaceTracks) -> dict[int, str]:
    """track id -> left/right (where its face lies on average)."""
    x = {i: tracks.rows[tracks.track == i, COLUMN["face_x"]].mean() for i in tracks.ids()}
    return {i: "left" if v < 0.5 else "right" for i, v in x.items()}


def most_moving_mouth(tracks: FaceTracks, start: float, end: float) -> int | None:
    """The face whose lips part most variably in the span (a choice blind to the voice)."""
    spread = {i: tracks.of(i, start, end)[:, COLUMN["lip_part"]].std() for i in tracks.ids()}
    return max(spread, key=spread.get) if spread else None


def segments(truth: dict, window: float) -> list[tuple[float, float, str]]:
    """(start, end, speaker's side): each turn, then windows of ``window`` s inside turns."""
    turns = [(t["start"], t["end"], t["face"]) for t in truth["turns"]]
    windows = []
    for start, end, side in turns:
        edges = np.arange(start, end - window / 2, window)
        windows += [(a, min(a + window, end), side) for a in edges]
    return turns + windows


def bench_choice(folder: Path, window: float) -> None:
    path = folder / "interview.mp4"
    truth = make_interview(path)
    media = MediaClip(path)
    tracks = VisualFeaturizer().tracks(media)
    sides = side_of(tracks)
    audio = media.audio()
    n_turns = len(truth["turns"])
    rows = {"auto (mouth with voice)": [], "largest face": [], "most moving mouth": []}
    for start, end, side in segments(truth, window):
        span_audio = audio[int(start * AUDIO_RATE) : int(end * AUDIO_RATE)]
        auto = choose(tracks, start, end, DIM_NAMES, span_audio, AUDIO_RATE).face
        largest = choose(tracks, start, end, DIM_NAMES, span_audio, AUDIO_RATE, LARGEST).face
        moving = most_moving_mouth(tracks, start, end)
        for name, face in zip(rows, (auto, largest, moving), strict=True):
            rows[name].append(sides.get(face) == side)
    n = len(rows["largest face"])
    print(f"synthetic interview: {truth['duration_s']} s, {n_turns} turns, tracks {tracks.ids()}")
    print(f"segments: {n_turns} turns + {n - n_turns} windows of {window:g} s inside turns")
    print(f"{'choice':26s} {'turns':>7s} {'windows':>8s} {'all':>7s}")
    for name, right in rows.items():
        turns, windows = np.mean(right[:n_turns]), np.mean(right[n_turns:])
        print(f"{name:26s} {turns:7.0%} {windows:8.0%} {np.mean(right):7.0%}")


def frames_per_second(path: Path, max_faces: int) -> tuple[float, int, int, float]:
    """(frames/s, frames, tracks, x real time) of tracking ``path``'s faces."""
    media = MediaClip(path)
    featurizer = VisualFeaturizer(max_faces=max_faces)
    featurizer.tracks(MediaClip(path))  # models loaded, caches warm
    started = time.perf_counter()
    tracks = featurizer.tracks(media)
    seconds = time.perf_counter() - started
    n = len(tracks.times)
    return n / seconds, n, len(tracks.ids()), media.info.duration / seconds


def bench_cost(folder: Path) -> None:
    clips = {
        "interview (2 faces)": folder / "interview.mp4",
        "talking_head (1 face)": ROOT / "tests" / "fixtures" / "talking_head.mp4",
    }
    print("\nface tracking at 15 frames/s (decode + mesh + detector + expressions + linking)")
    print(f"{'clip':24s} {'max_faces':>9s} {'frames/s':>9s} {'x real time':>12s} {'tracks':>7s}")
    for name, path in clips.items():
        for max_faces in (1, 4):
            fps, _, n_tracks, realtime = frames_per_second(path, max_faces)
            print(f"{name:24s} {max_faces:9d} {fps:9.1f} {realtime:12.2f} {n_tracks:7d}")


def bench_real(paths: list[Path]) -> None:
    files = [f for p in paths for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
    files = [f for f in files if f.suffix.lower() in (".mp4", ".mov", ".mkv", ".avi", ".webm")]
    featurizer = VisualFeaturizer()
    print("\nreal footage: tracks (id: share of frames seen, mean box x,y,w,h) and the choice")
    for path in files:
        media = MediaClip(path)
        tracks = featurizer.tracks(media)
        n = max(len(tracks.times), 1)
        parts = []
        for i in tracks.ids():
            rows = tracks.rows[tracks.track == i]
            box = rows[:, [COLUMN[c] for c in ("face_x", "face_y", "face_w", "face_h")]].mean(0)
            parts.append(f"{i}: {len(rows) / n:.0%} ({', '.join(f'{v:.2f}' for v in box)})")
        choice = featurizer.choose(tracks, media, 0.0, media.info.duration)
        print(f"{path.name}: {media.info.duration:.1f} s, {len(tracks.times)} frames")
        print(f"  tracks {'; '.join(parts) or 'none'}")
        print(f"  chosen face {choice.face} of {choice.faces}: {choice.how}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=1.5, help="Window length, seconds.")
    parser.add_argument("--real", nargs="*", type=Path, default=[], help="Real clips/folders.")
    parser.add_argument("--skip-cost", action="store_true", help="Skip the frames/s figures.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_choice(Path(tmp), args.window)
        if not args.skip_cost:
            bench_cost(Path(tmp))
    if args.real:
        bench_real(args.real)


if __name__ == "__main__":
    main()
