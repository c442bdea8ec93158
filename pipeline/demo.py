"""`carat-cli demo`: the whole path on the built-in sample, in a few minutes on a laptop CPU.

The sample (``pipeline/sample_data/``, see its README) is 36 short labelled clips with
transcripts plus 2 held-out clips without. The demo extracts the labelled clips' features,
aligns them into a dataset, trains the small ``demo`` preset, and predicts the held-out clips
(their words come from speech recognition). Outputs, all under ``out``::

    features/          the feature store (also the prediction cache)
    dataset/           the packed, word-aligned dataset
    config.yaml, metrics.json, plots/, seed_0/   the training run
    model/             the trained model directory (what `carat-cli predict --model` takes)
    predictions.json   the held-out clips' predictions

Running it again reuses what is there: cached features, the finished training run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.build import BuildSummary, build_dataset
from pipeline.errors import PipelineError
from pipeline.extract import ExtractSummary, run_extract
from pipeline.predict import ClipPrediction, predict_clips

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
DEMO_PRESET = "demo"
# The sample's sentences have at most 9 words; 16 steps leave room without padding cost.
DEMO_MAX_LEN = {"text": 16, "visual": 16, "audio": 16}

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
    seconds: dict[str, float] = field(default_factory=dict)


def sample_paths(sample_dir: Path = SAMPLE_DIR) -> tuple[Path, Path, Path]:
    """The sample's labelled clips folder, labels CSV and held-out clips folder."""
    paths = (sample_dir / "clips", sample_dir / "labels.csv", sample_dir / "held_out")
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
    clips, labels, held_out = sample_paths(sample_dir)
    seconds: dict[str, float] = {}

    say(f"1/4 extracting features of {clips} (text from the transcripts beside the clips)")
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

    say(f"2/4 aligning features to words with the labels of {labels}")
    started = time.perf_counter()
    dataset_dir = out / "dataset"
    built = build_dataset(features, labels, dataset_dir, mode="aligned", max_len=DEMO_MAX_LEN)
    seconds["align"] = time.perf_counter() - started

    say(f"3/4 training the '{DEMO_PRESET}' preset on {built.split_sizes['train']} clips")
    started = time.perf_counter()
    dataset = load_dataset(str(dataset_dir))
    cfg = resolve_run_config(dataset, DEMO_PRESET, epochs=epochs)
    run = run_training(dataset, cfg, out, progress=False)
    seconds["train"] = time.perf_counter() - started

    say(f"4/4 predicting the held-out clips in {held_out} (words by speech recognition)")
    started = time.perf_counter()
    predictions = predict_clips([held_out], run.model_dir, cache_dir=features)
    predictions_file = out / "predictions.json"
    predictions_file.write_text(
        json.dumps([p.to_dict() for p in predictions], indent=2) + "\n", encoding="utf-8"
    )
    seconds["predict"] = time.perf_counter() - started

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
        seconds=seconds,
    )
