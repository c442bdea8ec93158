"""From committed clips to predictions through the real stages: extract -> align -> train ->
predict, as `carat-cli demo` runs them, on a small part of the built-in sample.

One module-scoped run (about a minute on 2 cores) serves every assertion.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from carat.data import load_dataset
from carat.data.types import MODALITIES
from carat.modeldir import read_info
from cli import main
from pipeline.demo import DEMO_MAX_LEN, SAMPLE_DIR, DemoResult, run_demo
from pipeline.errors import PipelineError
from pipeline.store import FeatureStore

TRAIN = ["happy_01", "sad_01", "surprise_01", "happy_surprise_01"]
VALID = ["happy_05", "sad_05"]
TEST = ["happy_06", "sad_06"]
HELD_OUT = "new_sad.mp4"


def small_sample(folder: Path) -> Path:
    """8 labelled clips with their transcripts, their labels rows, one held-out clip and the
    sample recording."""
    (folder / "clips").mkdir(parents=True)
    (folder / "held_out").mkdir()
    for name in TRAIN + VALID + TEST:
        for suffix in (".mp4", ".txt"):
            shutil.copy(SAMPLE_DIR / "clips" / f"{name}{suffix}", folder / "clips")
    shutil.copy(SAMPLE_DIR / "held_out" / HELD_OUT, folder / "held_out")
    shutil.copytree(SAMPLE_DIR / "recording", folder / "recording")
    with open(SAMPLE_DIR / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["clip_id"] in TRAIN + VALID + TEST]
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def demo(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo"), workers=2, epochs=2, sample_dir=sample)


def test_every_labelled_clip_is_extracted_into_the_store(demo: DemoResult) -> None:
    assert demo.features == demo.out / "features"
    assert demo.extract.total == demo.extract.extracted == 8
    assert not demo.extract.failed
    store = FeatureStore(demo.features)
    assert store.clip_ids() == sorted(f"{name}.mp4" for name in TRAIN + VALID + TEST)
    words = store.load("happy_01.mp4", "text").words
    assert words == (SAMPLE_DIR / "clips" / "happy_01.txt").read_text().split()


def test_dataset_is_aligned_with_the_labels_and_splits(demo: DemoResult) -> None:
    assert demo.dataset == demo.out / "dataset"
    data = load_dataset(str(demo.dataset))
    assert data.label_names == ["happy", "sad", "surprise"]
    assert data.aligned
    assert {s: sorted(data.splits[s].ids) for s in ("train", "valid", "test")} == {
        "train": sorted(TRAIN),
        "valid": sorted(VALID),
        "test": sorted(TEST),
    }
    assert data.lengths == DEMO_MAX_LEN
    train = data.splits["train"]
    for modality in MODALITIES:
        assert train.features[modality].shape[:2] == (len(TRAIN), DEMO_MAX_LEN[modality])
        # one step per word: every modality is present exactly where there is a word
        assert (train.masks[modality] == train.masks["text"]).all()
    assert train.labels[data.splits["train"].ids.index("happy_surprise_01")].tolist() == [1, 0, 1]


def test_model_directory_records_labels_and_featurizer_spec(demo: DemoResult) -> None:
    assert demo.model == demo.out / "model"
    assert (demo.model / "model.safetensors").is_file()
    info = read_info(demo.model)
    assert info.label_names == ["happy", "sad", "surprise"]
    assert 0.0 < info.threshold < 1.0
    store_specs = FeatureStore(demo.features).specs()
    assert info.feature_spec["text"] == store_specs["text"]
    assert info.feature_spec["audio"] == store_specs["audio"]
    assert info.feature_spec["alignment"]["max_len"] == DEMO_MAX_LEN
    assert (demo.out / "metrics.json").is_file() and (demo.out / "config.yaml").is_file()
    assert 0.0 <= demo.test_metrics["micro_f1"] <= 1.0


def test_held_out_clip_is_predicted_with_speech_recognition(demo: DemoResult) -> None:
    [clip] = demo.predictions
    assert clip.error is None and clip.clip_id == HELD_OUT
    assert clip.transcript is None  # no sidecar: the words were recognised
    assert {"tired", "hopeless"} & set(clip.words)
    assert [p.label for p in clip.labels] == ["happy", "sad", "surprise"]
    for p in clip.labels:
        assert 0.0 <= p.probability <= 1.0
        assert p.predicted == (p.probability >= read_info(demo.model).threshold)
        assert p.driven_by is None or p.driven_by in MODALITIES
        assert p.maxpool_winner in MODALITIES
        assert set(p.contributions) == set(MODALITIES)
    saved = json.loads(demo.predictions_file.read_text())
    assert demo.predictions_file == demo.out / "predictions.json"
    assert saved == [clip.to_dict()]


def test_repredicting_through_the_cli_hits_the_cache(demo: DemoResult, sample: Path) -> None:
    clip = sample / "held_out" / HELD_OUT
    args = ["predict", str(clip), "--model", str(demo.model), "--cache", str(demo.features)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    [again] = json.loads(result.stdout)
    assert again["cached"] is True
    assert again["labels"] == demo.predictions[0].to_dict()["labels"]


def test_the_sample_recording_becomes_a_timeline_with_its_files(demo: DemoResult) -> None:
    timeline = demo.recording.timeline
    assert timeline.segmentation == "transcript"
    truth = (SAMPLE_DIR / "recording" / "interview_labels.csv").read_text().splitlines()[1:]
    assert len(timeline.segments) == len(truth) == demo.utterances_right[1]
    assert 0 <= demo.utterances_right[0] <= len(truth)
    faceless = [s for s in timeline.segments if "visual" in s.missing]
    assert faceless and all(s.missing["visual"] == "no face" and s.labels for s in faceless)
    names = sorted(p.name for p in demo.timeline_files)
    assert names == ["emotions.srt", "emotions.vtt", "report.html", "timeline.png"]
    assert all(
        p.parent == demo.out / "timeline" and p.stat().st_size > 0 for p in demo.timeline_files
    )
    srt = (demo.out / "timeline" / "emotions.srt").read_text()
    assert srt.count(" --> ") == len(timeline.segments)


def test_incomplete_sample_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sample" / "clips").mkdir(parents=True)
    with pytest.raises(PipelineError) as caught:
        run_demo(tmp_path / "out", sample_dir=tmp_path / "sample")
    message = str(caught.value)
    assert "labels.csv" in message and "held_out" in message and "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing started
