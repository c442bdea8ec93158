"""Extraction speed and memory on a long talking-head clip (prints figures; asserts nothing).

    .venv/bin/python bench/extract.py                  # everything (several minutes on 2 cores)
    .venv/bin/python bench/extract.py --skip-asr --long-seconds 0

1. Builds a >= 60-s clip by looping ``tests/fixtures/talking_head.mp4`` (packets remuxed with
   PyAV, no re-encoding), plus copies with a transcript sidecar: ``.srt`` with one cue per looped
   sentence (cue times from the fixture's truth json, as benchmark transcripts come with segment
   times) and plain ``.txt`` (the sentence repeated, no times).
2. Real-time factor (RTF: seconds of video per second of wall time) of each featurizer, warm
   (models loaded and JIT compiled on the short fixture first), each on a fresh clip so its own
   decoding is included, with its CPU-time RTF (steadier on a shared machine): audio, visual
   (default 15 frames/s, and 30), text from the .srt, from the .txt, and with speech recognition.
3. Whole extraction through ``run_extract`` (default preset) of two copies of the long clip with 1
   and 2 workers: without speech recognition (.srt, .txt sidecars) and with it. RTF = media
   seconds / wall seconds, worker start-up and model loading included.
4. Peak RSS of a whole extraction (.srt sidecar; ASR with --rss-asr) of a 60-s and a 240-s clip,
   each in a fresh subprocess, one worker in-process (``--rss-modalities`` splits it by modality).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT / "tests" / "fixtures" / "talking_head.mp4"
SENTENCE = (
    (ROOT / "tests" / "fixtures" / "with_transcript" / "talking_head.txt").read_text().strip()
)
TRUTH_WORDS = json.loads(FIXTURE.with_suffix(".truth.json").read_text())["words"]
SIDECARS = (".srt", ".txt")


def loop_clip(source: Path, target: Path, seconds: float) -> float:
    """Concatenate ``source`` with itself until ``seconds`` are reached; returns the duration."""
    with av.open(str(source)) as probe:  # a loop lasts as long as its longest stream
        spans: dict[int, list[float]] = {}
        for p in probe.demux():
            if p.dts is not None:
                span = spans.setdefault(p.stream.index, [float(p.dts * p.time_base), 0.0])
                span[1] = float((p.dts + (p.duration or 0)) * p.time_base)
        step = max(end - start for start, end in spans.values())
    loops = max(1, int(-(-seconds // step)))
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for loop in range(loops):
            src.seek(0)
            for packet in src.demux():
                if packet.dts is None:
                    continue
                shift = int(round(loop * step / packet.time_base))
                packet.pts = None if packet.pts is None else packet.pts + shift
                packet.dts += shift
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    target.with_suffix(".loops").write_text(str(loops))
    target.with_suffix(".step").write_text(repr(step))
    return loops * step


def _srt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, minutes, secs = millis // 3_600_000, millis // 60_000 % 60, millis // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis % 1000:03d}"


def with_transcript(clip: Path, folder: Path, suffix: str) -> Path:
    """A copy of a looped clip with a sidecar: ``.txt`` (plain) or ``.srt`` (a cue per loop)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / clip.name
    shutil.copy(clip, copy)
    loops = int(clip.with_suffix(".loops").read_text())
    if suffix == ".txt":
        copy.with_suffix(".txt").write_text(" ".join([SENTENCE] * loops) + "\n")
    else:
        step = float(clip.with_suffix(".step").read_text())
        first, last = TRUTH_WORDS[0]["start"], TRUTH_WORDS[-1]["end"]
        cues = [
            f"{k + 1}\n{_srt_time(k * step + first)} --> {_srt_time(k * step + last)}\n{SENTENCE}\n"
            for k in range(loops)
        ]
        copy.with_suffix(".srt").write_text("\n".join(cues))
    return copy


def featurizer_rtf(
    long_clip: Path, sidecar_clips: dict[str, Path], duration: float, asr: bool
) -> None:
    from featurizers.media import MediaClip
    from featurizers.presets import build_featurizers
    from featurizers.visual import VisualFeaturizer
    from pipeline.engine import limit_threads

    limit_threads()  # one compute thread, as in an extraction worker
    featurizers = build_featurizers("default", ["audio", "visual", "text"])
    fps = featurizers["visual"].spec.params["fps"]
    cases = [
        ("audio", featurizers["audio"], long_clip),
        (f"visual ({fps:g} fps, default)", featurizers["visual"], long_clip),
        ("visual (30 fps)", VisualFeaturizer(fps=30.0), long_clip),
        ("text, .srt cues aligned", featurizers["text"], sidecar_clips[".srt"]),
        ("text, .txt aligned", featurizers["text"], sidecar_clips[".txt"]),
    ]
    if asr:
        cases.append(("text with ASR (whisper-base)", featurizers["text"], long_clip))
    warm_with = FIXTURE.parent / "with_transcript" / FIXTURE.name
    print(f"\n== per featurizer, warm, {duration:.1f}-s clip (decode included), one thread ==")
    for name, featurizer, clip_path in cases:
        featurizer.extract(MediaClip(warm_with if clip_path != long_clip else FIXTURE))
        started, cpu = time.perf_counter(), time.process_time()
        rows = len(featurizer.extract(MediaClip(clip_path)).features)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{name:30s} {wall:7.2f} s  RTF {duration / wall:6.2f}x  "
            f"(CPU {cpu:6.2f} s, {duration / cpu:6.2f}x)  {rows} rows"
        )


def whole_rtf(clip: Path, duration: float, workers: int, sidecar: str | None, work: Path) -> None:
    """``sidecar``: the transcript suffix copied along (None: speech recognition)."""
    from pipeline.extract import run_extract

    name = f"whole-{workers}-{(sidecar or '.asr')[1:]}"
    folder = work / name
    folder.mkdir()
    for i in range(2):
        target = folder / f"copy{i}.mp4"
        target.write_bytes(clip.read_bytes() + bytes(i + 1))  # distinct clips, same content
        if sidecar:
            shutil.copy(clip.with_suffix(sidecar), target.with_suffix(sidecar))
    summary = run_extract([folder], work / f"store-{name}", workers=workers)
    label = f"no ASR ({sidecar} sidecar)" if sidecar else "with ASR"
    rtf = 2 * duration / summary.seconds
    print(
        f"whole extraction {label:20s} workers={workers}: 2 x {duration:.0f} s in "
        f"{summary.seconds:6.1f} s  RTF {rtf:5.2f}x  (failed: {len(summary.failed)})"
    )


def peak_rss(clip: Path, modalities: str) -> None:
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[3]);"
        "from pipeline.extract import SpanTask, SpanUnit, preset_factory, process_spans;"
        "from pipeline.sources import scan, open_clips; from pathlib import Path;"
        "cat = scan([sys.argv[1]]); clip = next(open_clips(cat, Path(sys.argv[2]) / 'spool'));"
        f"mods = tuple({modalities.split(',')!r});"
        "task = SpanTask(clip, sys.argv[2], preset_factory('default', mods),"
        " (SpanUnit(None, mods),));"
        "[r] = process_spans(task);"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'));"
        "print(json.dumps({'rss_mb': int(hwm.split()[1]) / 1024,"
        " 'status': {m: v['status'] for m, v in r.items()}}))"
    )
    with tempfile.TemporaryDirectory() as store:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, str(clip), store, str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"peak RSS {clip.name:24s} {modalities:20s} {result['rss_mb']:7.0f} MB  "
        f"({wall:.0f} s, {result['status']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--long-seconds", type=float, default=240.0, help="0 skips it")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--skip-asr", action="store_true")
    parser.add_argument("--skip-featurizers", action="store_true")
    parser.add_argument("--skip-whole", action="store_true")
    parser.add_argument("--rss-asr", action="store_true", help="ASR in the peak-RSS runs too")
    parser.add_argument(
        "--rss-modalities",
        default="audio,visual,text",
        help="';'-separated modality sets, one fresh process each, e.g. 'audio;visual;text'",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        long_clip = work / "talking_head_60s.mp4"
        duration = loop_clip(FIXTURE, long_clip, args.seconds)
        sidecar_clips = {s: with_transcript(long_clip, work / s[1:], s) for s in SIDECARS}
        print(
            f"clip: {duration:.1f} s ({long_clip.stat().st_size / 1e6:.1f} MB); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        if not args.skip_featurizers:
            featurizer_rtf(long_clip, sidecar_clips, duration, asr=not args.skip_asr)
        if not args.skip_whole:
            print("\n== whole extraction (run_extract, default preset, 2 clips) ==")
            for workers in [int(w) for w in args.workers.split(",")]:
                for sidecar in SIDECARS:
                    whole_rtf(sidecar_clips[sidecar], duration, workers, sidecar, work=work)
                if not args.skip_asr:
                    whole_rtf(long_clip, duration, workers, None, work=work)
        print("\n== peak memory, fresh process, whole extraction of one clip ==")
        rss_60 = sidecar_clips[".srt"] if not args.rss_asr else long_clip
        for modalities in args.rss_modalities.split(";"):
            peak_rss(rss_60, modalities)
        if args.long_seconds:
            long240 = work / "talking_head_240s.mp4"
            loop_clip(FIXTURE, long240, args.long_seconds)
            target = long240 if args.rss_asr else with_transcript(long240, work / "srt240", ".srt")
            for modalities in args.rss_modalities.split(";"):
                peak_rss(target, modalities)
        print(f"\nself peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
