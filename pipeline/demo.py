"""`carat-cli demo`: the whole path on the built-in sample, in a few minutes on a laptop CPU.

The sample (``pipeline/sample_data/``, see its README) is 46 short labelled clips with
transcripts, 2 held-out clips without, and a 45-s recording strung together from the
validation and test clips. The demo extracts the labelled clips' features, aligns them into a
dataset, trains the small ``demo`` preset, predicts the held-out clips (their words come from
speech recognition), and predicts the recording as a timeline of utterances, scored against the
true label of each utterance. Outputs, all under ``out``::

    features/          the feature store (also the prediction cache)
    dataset/           the packed, word-aligned dataset
    config.yaml, metrics.json, plots/, seed_0/   the training run
    model/             the trained model directory (what `carat-cli predict --model` takes)
    predictions.json   the held-out clips' predictions
    timeline/          the recording's emotions.srt, emotions.vtt, timeline.png, report.html

Running it again reuses what is there: cached features, the finished training run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.build import BuildOptions, BuildSummary, build_dataset
from pipeline.errors import PipelineError
from pipeline.extract import ExtractSummary, run_extract
from pipeline.labels import read_interval_labels
from pipeline.predict import ClipPrediction, predict_clips
from pipeline.writers import get_writer, write_recording_files

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
DEMO_PRESET = "demo"
# The sample's sentences have at most 9 words; 16 steps leave room without padding cost.
DEMO_MAX_LEN = {"text": 16, "visual": 16, "audio": 16}
TIMELINE_FILES = {
    "srt": "emotions.srt",
    "vtt": "emotions.vtt",
    "png": "timeline.png",
    "html": "report.html",
}

Report = Callable[[str], None]


@dataclass
class DemoResult:
    """Where everything went, what each stage did and how long it took (seconds)."""

    out: Path
    features: Path
    dataset: Path
    run_dir: Path
    model: Path
    predictions_file: Path
    extract: ExtractSummary
    build: BuildSummary
    test_metrics: dict[str, Any]  # the trained seed's test metrics, per label too
    predictions: list[ClipPrediction]
    recording: ClipPrediction | None = None  # the sample recording's timeline
    timeline_files: list[Path] = field(default_factory=list)
    utterances_right: tuple[int, int] = (0, 0)  # utterances whose labels are all right, of all
    seconds: dict[str, float] = field(default_factory=dict)


def sample_paths(sample_dir: Path = SAMPLE_DIR) -> tuple[Path, Path, Path, Path]:
    """The sample's labelled clips folder, labels CSV, held-out clips folder and recording."""
    paths = (
        sample_dir / "clips",
        sample_dir / "labels.csv",
        sample_dir / "held_out",
        sample_dir / "recording" / "interview.mp4",
    )
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise PipelineError(
            f"{sample_dir}: the built-in sample is incomplete ({', '.join(missing)} missing); "
            "reinstall carat from its repository (the clips are committed there)"
        )
    return paths


def run_demo(
    out: str | Path,
    workers: int | None = None,
    epochs: int | None = None,
    report: Report | None = None,
    sample_dir: Path = SAMPLE_DIR,
) -> DemoResult:
    """Extract -> align -> train -> predict on the built-in sample, into ``out``.

    ``report`` gets one line as each stage starts; ``epochs`` overrides the preset's.
    """
    from carat.data import load_dataset
    from carat.train import resolve_run_config, run_training

    say = report or log.info
    out = Path(out)
    clips, labels, held_out, recording = sample_paths(sample_dir)
    seconds: dict[str, float] = {}

    say(f"1/5 extracting features of {clips} (text from the transcripts beside the clips)")
    started = time.perf_counter()
    features = out / "features"
    extracted = run_extract([clips], features, workers=workers)
    if extracted.failed:
        clip_id, reason = extracted.failed[0]
        raise PipelineError(
            f"{features}: {len(extracted.failed)} sample clips failed to extract, e.g. "
            f"{clip_id}: {reason} (all listed in {extracted.errors_file})"
        )
    seconds["extract"] = time.perf_counter() - started

    say(f"2/5 aligning features to words with the labels of {labels}")
    started = time.perf_counter()
    dataset_dir = out / "dataset"
    built = build_dataset(features, labels, dataset_dir, BuildOptions(max_len=DEMO_MAX_LEN))
    seconds["align"] = time.perf_counter() - started

    say(f"3/5 training the '{DEMO_PRESET}' preset on {built.split_sizes['train']} clips")
    started = time.perf_counter()
    dataset = load_dataset(str(dataset_dir))
    cfg = resolve_run_config(dataset, DEMO_PRESET, epochs=epochs)
    run = run_training(dataset, cfg, out, progress=False)
    seconds["train"] = time.perf_counter() - started

    say(f"4/5 predicting the held-out clips in {held_out} (words by speech recognition)")
    started = time.perf_counter()
    predictions = predict_clips([held_out], run.model_dir, cache_dir=features)
    predictions_file = out / "predictions.json"
    get_writer("json").write(predictions, predictions_file)
    seconds["predict"] = time.perf_counter() - started

    say(f"5/5 predicting the timeline of {recording} (segments from its .srt)")
    started = time.perf_counter()
    # One synthetic speaker whose voice is sped up and raised for happy/surprised clips and
    # slowed and lowered for sad ones: a voice encoder hears those as different people, so the
    # sample recording is predicted without diarization (it has one speaker by construction).
    [timeline] = predict_clips([recording], run.model_dir, cache_dir=features, speakers="none")
    timeline_dir = out / "timeline"
    written = write_recording_files(
        [timeline],
        {kind: timeline_dir / name for kind, name in TIMELINE_FILES.items()},
    )
    right = utterances_right(timeline, recording.with_name("interview_labels.csv"))
    seconds["timeline"] = time.perf_counter() - started

    best = next(r for r in run.per_seed if r.seed == run.best_seed)
    return DemoResult(
        out=out,
        features=features,
        dataset=dataset_dir,
        run_dir=run.run_dir,
        model=run.model_dir,
        predictions_file=predictions_file,
        extract=extracted,
        build=built,
        test_metrics=best.test,
        predictions=predictions,
        recording=timeline,
        timeline_files=written,
        utterances_right=right,
        seconds=seconds,
    )


def utterances_right(prediction: ClipPrediction, truth_csv: Path) -> tuple[int, int]:
    """How many labelled utterances fall in a segment whose predicted labels are exactly the
    utterance's true labels, and how many there are."""
    table = read_interval_labels(truth_csv)
    segments = [] if prediction.timeline is None else prediction.timeline.segments
    right = 0
    for row in table.rows:
        truth = {name for name, value in zip(table.label_names, row.labels, strict=True) if value}
        middle = (row.start + row.end) / 2
        holder = next((s for s in segments if s.start <= middle < s.end), None)
        if holder is not None and holder.error is None:
            right += {p.label for p in holder.labels if p.predicted} == truth
    return right, len(table.rows)
