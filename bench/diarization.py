"""Speaker diarization: error rate on real and synthetic two-voice speech, and the speed and
memory of `predict` with speech recognition + diarization.

- Real speech: tests/fixtures/two_speakers.ogg (a LibriVox reader and a CMU ARCTIC speaker
  taking five turns, true turns beside it).
- Synthetic interview: two espeak-ng voices (en-us male; en-gb female with its formants raised
  by 1.3x, so that the two differ as two people do) taking eight turns; needs espeak-ng.
- The two-person interview video of tests/fixtures/make_interview.py, when it is there.
- Speed and memory: 1- and 10-minute recordings of the real voices' turns repeated, predicted
  (speech recognition + diarization, no transcript) in a fresh process each, with an untrained
  model of the default features (its scores do not matter here); wall time, CPU time and peak RSS.

Diarization error rate (DER) = (missed speech + false alarm + speaker confusion) / true speech,
on 10-ms frames, with the found speakers mapped one to one onto the true ones (the mapping
that agrees most), not scoring a collar of 0.25 s on each side of every true turn boundary
(the usual NIST convention). Computed here (pyannote.metrics is not installed).

    python bench/diarization.py                 # DER on both, speed at 1 and 10 minutes
    python bench/diarization.py --minutes 1 2   # shorter speed runs
    python bench/diarization.py --skip-speed
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from featurizers.media import MediaClip  # noqa: E402
from featurizers.segments import SegmentationSpec, speaker_turns  # noqa: E402
from featurizers.speakers import Turn  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
REAL = FIXTURES / "two_speakers.ogg"
INTERVIEW = FIXTURES / "interview.mp4"  # tests/fixtures/make_interview.py: two faces, two voices
COLLAR_S = 0.25
FRAME_S = 0.01
RATE = 16_000
SYNTHETIC_LINES = [
    "Thanks for coming in today. Could you tell us a little about your work?",
    "Of course. I build small robots that help farmers check their fields at night.",
    "That sounds fascinating. What made you start working on that?",
    "My parents grew apples, and every autumn we lost part of the harvest to frost.",
    "And the robots can warn people before the frost arrives?",
    "Exactly. They measure the air near the ground and send a message to the farmer.",
    "What has been the hardest part of the project so far?",
    "Honestly, the batteries. Cold weather drains them much faster than we expected.",
]

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads(2)
from pipeline.predict import predict_clips
started = time.perf_counter()
[clip] = predict_clips([{path!r}], {model!r}, cache_dir={cache!r})
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{
    "seconds": seconds,
    "cpu_seconds": usage.ru_utime + usage.ru_stime,
    "duration": clip.timeline.duration,
    "segments": len(clip.timeline.segments),
    "speakers": len({{s.speaker for s in clip.timeline.segments if s.speaker}}),
    "rss_mb": usage.ru_maxrss / 1024,
}}))
"""


def der(truth: list[Turn], found: list[Turn], duration: float) -> float:
    """The diarization error rate of ``found`` against ``truth`` (see the module docstring)."""
    n = int(np.ceil(duration / FRAME_S))
    times = (np.arange(n) + 0.5) * FRAME_S
    scored = np.ones(n, bool)
    for t in truth:
        for edge in (t.start, t.end):
            scored &= np.abs(times - edge) > COLLAR_S

    def frames(turns: list[Turn]) -> tuple[np.ndarray, list[str]]:
        names = sorted({t.speaker for t in turns})
        grid = np.zeros((len(names), n), bool)
        for t in turns:
            grid[names.index(t.speaker), (times >= t.start) & (times < t.end)] = True
        return grid[:, scored], names

    ref, _ = frames(truth)
    hyp, _ = frames(found)
    ref_any, hyp_any = ref.any(axis=0), hyp.any(axis=0)
    missed = np.sum(ref_any & ~hyp_any)
    false_alarm = np.sum(hyp_any & ~ref_any)
    agree = (ref[:, None, :] & hyp[None, :, :]).sum(axis=2) if len(hyp) else np.zeros((len(ref), 0))
    rows, cols = linear_sum_assignment(-agree)
    both = np.sum(ref_any & hyp_any)
    confusion = both - agree[rows, cols].sum()
    return float((missed + false_alarm + confusion) / max(ref_any.sum(), 1))


def real_truth() -> list[Turn]:
    rows = json.loads((FIXTURES / "two_speakers.turns.json").read_text())
    return [Turn(r["start"], r["end"], r["speaker"]) for r in rows]


def synthetic_interview(folder: Path) -> tuple[Path, list[Turn]]:
    """Eight espeak-ng turns of two voices, 0.6 s apart; returns the file and the true turns."""
    import librosa

    pieces, turns, t = [], [], 0.0
    for i, line in enumerate(SYNTHETIC_LINES):
        speaker = "host" if i % 2 == 0 else "guest"
        voice, formants = ("en-us+m3", 1.0) if speaker == "host" else ("en-gb+f4", 1.3)
        wav = folder / f"turn{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), line], check=True)
        audio, rate = sf.read(wav, dtype="float32")
        # played faster by `formants` and resampled: every frequency, formants included, rises
        audio = librosa.resample(audio, orig_sr=rate * formants, target_sr=RATE)
        audio, _ = librosa.effects.trim(audio, top_db=35)
        turns.append(Turn(t, t + len(audio) / RATE, speaker))
        pieces += [audio, np.zeros(int(0.6 * RATE), np.float32)]
        t += len(audio) / RATE + 0.6
    path = folder / "interview.wav"
    sf.write(path, np.concatenate(pieces), RATE)
    return path, turns


def diarization_error(path: Path, truth: list[Turn]) -> tuple[float, int]:
    clip = MediaClip(path)
    found = speaker_turns(clip, SegmentationSpec(speakers="auto"))
    return der(truth, found, clip.info.duration), len({t.speaker for t in found})


def repeated_turns(folder: Path, minutes: float) -> Path:
    """The real recording's turns, in a shifting order, repeated to ``minutes``."""
    audio, rate = sf.read(REAL, dtype="float32")
    turns = [audio[int(t.start * rate) : int(t.end * rate)] for t in real_truth()]
    pause = np.zeros(int(0.6 * rate), np.float32)
    pieces, total, i = [], 0, 0
    while total < minutes * 60 * rate:
        piece = turns[(i * 3) % len(turns)]
        pieces += [piece, pause]
        total += len(piece) + len(pause)
        i += 1
    path = folder / f"talk-{minutes:g}min.wav"  # libsndfile's Ogg encoder crashes on long input
    sf.write(path, np.concatenate(pieces)[: int(minutes * 60 * rate)], rate)
    return path


def run_child(path: Path, model: Path, cache: Path) -> dict:
    code = CHILD.format(repo=str(REPO), path=str(path), model=str(model), cache=str(cache))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    if out.returncode != 0:
        raise SystemExit(f"predict failed on {path}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs=2, default=[1.0, 10.0])
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="carat-diarization-bench-"))
    try:
        real, found = diarization_error(REAL, real_truth())
        print(f"DER real speech (LibriVox + ARCTIC, 28 s, 5 turns): {real:.1%} ({found} speakers)")
        path, truth = synthetic_interview(work)
        synthetic, found = diarization_error(path, truth)
        print(
            f"DER synthetic interview (espeak-ng, {truth[-1].end:.0f} s, {len(truth)} turns): "
            f"{synthetic:.1%} ({found} speakers)"
        )
        if INTERVIEW.with_suffix(".truth.json").is_file():  # the faces' fixture, when present
            rows = json.loads(INTERVIEW.with_suffix(".truth.json").read_text())["turns"]
            truth = [Turn(r["start"], r["end"], r["speaker"]) for r in rows]
            video, found = diarization_error(INTERVIEW, truth)
            print(f"DER interview video ({INTERVIEW.name}): {video:.1%} ({found} speakers)")
        print(f"(collar {COLLAR_S} s each side of a true boundary)")
        if args.skip_speed:
            return
        from test_predict import default_feature_spec, save_untrained_model

        model = save_untrained_model(work / "model", default_feature_spec())
        print(
            f"{'length':>7} {'wall':>7} {'RTF':>6} {'CPU s':>7} {'CPU RTF':>8} "
            f"{'peak RSS':>9} {'segments':>9} {'speakers':>9}"
        )
        rss = []
        for minutes in args.minutes:
            r = run_child(repeated_turns(work, minutes), model, work / f"cache-{minutes:g}")
            rss.append(r["rss_mb"])
            length, wall, cpu = r["duration"], r["seconds"], r["cpu_seconds"]
            print(
                f"{length:>6.0f}s {wall:>6.0f}s {length / wall:>5.1f}x "
                f"{cpu:>7.0f} {length / cpu:>7.1f}x "
                f"{r['rss_mb']:>7.0f}MB {r['segments']:>9} {r['speakers']:>9}"
            )
        print(f"peak RSS {args.minutes[1]:g} min / {args.minutes[0]:g} min: {rss[1] / rss[0]:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
