"""Batch throughput of the engines on an archive of short clips (prints figures; asserts nothing).

    .venv/bin/python bench/batch.py                       # 200 clips, audio features
    .venv/bin/python bench/batch.py --clips 40 --modalities audio,visual

Builds a ``.tar.gz`` of ``--clips`` short clips (the two committed fixtures, 4.9 s and 3.1 s,
alternating, each made distinct by a trailing pad byte so nothing is shared in the cache) and
extracts it with the local pool (1 and 2 workers) and a local Dask cluster (2 worker processes,
1 thread each). For each engine it prints the start-up time (pool or cluster up, workers
running) apart from the run time (``run_extract`` on a started engine: streaming the archive,
model loading in the workers, extraction, store writes), and clips/s over the run.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.engine import Engine, LocalEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = [ROOT / "tests" / "fixtures" / n for n in ("talking_head.mp4", "frowning_head.mp4")]


def build_archive(path: Path, count: int) -> float:
    """Write the archive; returns the total media seconds in it."""
    import av

    lengths = []
    for fixture in FIXTURES:
        with av.open(str(fixture)) as clip:
            lengths.append(clip.duration / av.time_base)
    blobs = [f.read_bytes() for f in FIXTURES]
    total = 0.0
    with tarfile.open(path, "w:gz") as archive:
        for i in range(count):
            data = blobs[i % 2] + i.to_bytes(4, "big")
            info = tarfile.TarInfo(f"clips/{i // 50:02d}/clip{i:04d}.mp4")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            total += lengths[i % 2]
    return total


def run(
    engine: Engine,
    started: float,
    archive: Path,
    out: Path,
    modalities: str,
    label: str,
    media_s: float,
) -> None:
    from pipeline.extract import run_extract

    startup = time.perf_counter() - started
    summary = run_extract([archive], out, modalities=modalities, engine=engine)
    done = summary.extracted
    print(
        f"{label:28s} start-up {startup:5.2f} s | run {summary.seconds:6.1f} s | "
        f"{done / summary.seconds:5.2f} clips/s | {media_s / summary.seconds:5.1f}x real time | "
        f"failed {len(summary.failed)}"
    )


def warm_pool(engine: LocalEngine) -> None:
    """Have every worker process running (a pool starts them lazily)."""
    futures = [engine.executor.submit(os.getpid) for _ in range(engine.workers * 2)]
    for future in futures:
        future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--modalities", default="audio")
    parser.add_argument("--engines", default="local1,local2,dask2")
    args = parser.parse_args()

    from distributed import LocalCluster

    from pipeline.engine import DaskEngine, LocalEngine

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        archive = work / "clips.tar.gz"
        media_s = build_archive(archive, args.clips)
        print(
            f"archive: {args.clips} clips, {media_s:.0f} s of media, "
            f"{archive.stat().st_size / 1e6:.1f} MB; modalities {args.modalities}; "
            f"load average before {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        for name in args.engines.split(","):
            out = work / f"store-{name}"
            started = time.perf_counter()
            if name.startswith("local"):
                engine = LocalEngine(workers=int(name[len("local") :]))
                engine.start()
                warm_pool(engine)
                run(
                    engine,
                    started,
                    archive,
                    out,
                    args.modalities,
                    f"local pool, {engine.workers} worker(s)",
                    media_s,
                )
            else:
                workers = int(name[len("dask") :])
                with LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster:
                    engine = DaskEngine(cluster.scheduler_address)
                    engine.start()
                    engine.client.wait_for_workers(workers)
                    run(
                        engine,
                        started,
                        archive,
                        out,
                        args.modalities,
                        f"dask LocalCluster, {workers} workers",
                        media_s,
                    )


if __name__ == "__main__":
    main()
