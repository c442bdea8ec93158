"""What docs/demo.md and the README claim of `carat-cli demo` on the built-in sample: the model
it trains gets both held-out clips right and at least 9 of the 11 utterances of the sample
recording, and training it again on the same dataset gives the same weights.

One full demo run (the whole sample, the preset's epochs) serves every assertion.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from carat.data import load_dataset
from carat.modeldir import read_info
from carat.train import resolve_run_config, run_training
from pipeline.demo import DEMO_PRESET, DemoResult, run_demo

HELD_OUT_TRUTH = {"new_happy.mp4": {"happy"}, "new_sad.mp4": {"sad"}}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo"), workers=2)


def test_both_held_out_clips_get_exactly_their_label(demo: DemoResult) -> None:
    predicted = {
        clip.clip_id: {p.label for p in clip.labels if p.predicted} for clip in demo.predictions
    }
    assert predicted == HELD_OUT_TRUTH


def test_at_least_9_of_the_11_recording_utterances_are_right(demo: DemoResult) -> None:
    right, total = demo.utterances_right
    assert total == 11
    assert right >= 9, f"{right} of {total} utterances right"


def test_the_threshold_is_the_presets_not_tuned_on_six_clips(demo: DemoResult) -> None:
    assert read_info(demo.model).threshold == 0.5


def test_training_again_on_the_same_dataset_gives_the_same_weights(
    demo: DemoResult, tmp_path: Path
) -> None:
    dataset = load_dataset(str(demo.dataset))
    again = run_training(
        dataset, resolve_run_config(dataset, DEMO_PRESET), tmp_path / "again", progress=False
    )
    first = load_file(str(demo.model / "model.safetensors"))
    second = load_file(str(again.model_dir / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
