"""Extraction of one long recording: whole (`--segments none`) vs segments spread over workers.

Builds a recording from the committed sample utterances (tests/long_recording.py) and runs
`run_extract` on it with 2 workers, each time into an empty store: once as one whole clip (one
worker does it all while the other idles), once cut into fixed windows (segments spread over
both workers), then again from the cache. Prints wall time and real-time factor.

    .venv/bin/python bench/segment_extract.py --seconds 120 --modalities audio,visual
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from long_recording import make_long_recording  # noqa: E402

from pipeline.engine import LocalEngine  # noqa: E402
from pipeline.extract import run_extract  # noqa: E402


def timed(recording: Path, store: Path, modalities: str, segments: str, workers: int) -> None:
    engine = LocalEngine(workers=workers)
    engine.start()  # the pool's start-up is not part of the figure
    started = time.perf_counter()
    summary = run_extract(
        [recording], store, modalities=modalities, preset="fast", engine=engine, segments=segments
    )
    seconds = time.perf_counter() - started
    print(
        f"--segments {segments:9s} workers={workers}: {summary.total:3d} units "
        f"({summary.extracted} extracted, {summary.cached} cached, {len(summary.failed)} failed) "
        f"in {seconds:6.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="Recording length.")
    parser.add_argument("--modalities", default="audio,visual")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=float, default=10.0, help="Fixed window, seconds.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        recording, planted = make_long_recording(
            folder / "long.mp4", length_s=args.seconds, with_transcript=True
        )
        print(f"recording: {args.seconds:.0f} s, {len(planted)} utterances, {args.modalities}")
        timed(recording, folder / "whole", args.modalities, "none", args.workers)
        windows = f"fixed:{args.window:g}"
        timed(recording, folder / "segments", args.modalities, windows, args.workers)
        timed(recording, folder / "segments", args.modalities, windows, args.workers)


if __name__ == "__main__":
    main()
