"""`carat-cli predict`: the model's featurizer spec is rebuilt exactly or refused, output
formats parse, and bad inputs give one line and a non-zero exit.

The model here is an untrained CARAT saved with the default preset's featurizer spec (what a
model trained on `carat-cli extract` features records); its scores mean nothing, but the whole
path from a committed clip to per-label predictions is real.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from carat.config import load_config
from carat.data.types import MODALITIES
from carat.modeldir import ModelInfo, build_model, save_model
from cli import main
from featurizers.presets import preset_specs
from pipeline.align import AlignSettings
from pipeline.errors import PipelineError
from pipeline.predict import predict_clips, rebuild_featurizers
from pipeline.recipe import FeatureRecipe

FIXTURES = Path(__file__).parent / "fixtures"
CLIP = FIXTURES / "with_transcript" / "frowning_head.mp4"  # transcript beside it: no ASR
LABELS = ["happy", "sad", "surprise"]


def default_feature_spec() -> dict:
    lengths = {"text": 12, "visual": 12, "audio": 12}
    return {
        **preset_specs("default"),
        "alignment": AlignSettings.for_mode("aligned", lengths).to_dict(),
    }


def save_untrained_model(model_dir: Path, feature_spec: dict) -> Path:
    cfg = load_config("demo")
    cfg.model.num_labels = len(LABELS)
    cfg.model.dims = {m: len(feature_spec[m]["dim_names"]) for m in MODALITIES}
    info = ModelInfo(
        config=cfg,
        label_names=LABELS,
        threshold=0.5,
        feature_spec=feature_spec,
        dataset={"name": "none (untrained test model)"},
    )
    return save_model(build_model(cfg), model_dir, info)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), default_feature_spec())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_rebuilt_featurizers_match_the_model_spec(model_dir: Path) -> None:
    spec = default_feature_spec()
    featurizers = rebuild_featurizers(FeatureRecipe.from_dict(spec), model_dir)
    assert set(featurizers) == set(MODALITIES)
    for modality, featurizer in featurizers.items():
        assert featurizer.spec.to_dict() == spec[modality]


@pytest.mark.parametrize(
    ("modality", "field", "value", "shown"),
    [
        ("audio", "version", "0", "version 0 and this install has version 1"),
        ("visual", "params", {"landmarks": "mediapipe==0.9 face_mesh"}, "landmarks"),
        ("text", "dim_names", ["glove50_0"], "1 vs 51 dims"),
    ],
)
def test_predict_refuses_a_mismatched_featurizer_spec(
    tmp_path: Path, modality: str, field: str, value: object, shown: str
) -> None:
    spec = copy.deepcopy(default_feature_spec())
    if field == "params":
        spec[modality]["params"].update(value)
    else:
        spec[modality][field] = value
    model_dir = save_untrained_model(tmp_path / "model", spec)
    with pytest.raises(PipelineError) as caught:
        predict_clips([CLIP], model_dir, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message
    assert str(model_dir) in message
    assert f"model's {modality} features" in message
    assert shown in message
    assert not (tmp_path / "cache").exists()  # refused before any extraction


def test_model_without_featurizer_spec_is_refused(tmp_path: Path) -> None:
    spec = default_feature_spec()
    model_dir = save_untrained_model(tmp_path / "model", spec)
    config = json.loads((model_dir / "config.json").read_text())
    config["feature_spec"] = None  # as a model trained on a benchmark file
    (model_dir / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["predict", str(CLIP), "--model", str(model_dir)])
    assert result.exit_code != 0
    assert "records no featurizer spec" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_json_output_parses_and_repredicting_uses_the_cache(model_dir: Path, cache: Path) -> None:
    args = ["predict", str(CLIP), "--model", str(model_dir), "--cache", str(cache), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.stderr
    [clip] = json.loads(first.stdout)
    assert clip["clip_id"] == CLIP.name
    assert clip["error"] is None
    assert clip["transcript"] == str(CLIP.with_suffix(".txt"))
    assert clip["words"] == CLIP.with_suffix(".txt").read_text().split()
    assert [p["label"] for p in clip["labels"]] == LABELS
    for p in clip["labels"]:
        assert 0.0 <= p["probability"] <= 1.0
        assert p["predicted"] == (p["probability"] >= 0.5)
        assert p["driven_by"] is None or p["driven_by"] in MODALITIES
        assert p["maxpool_winner"] in MODALITIES
        assert set(p["contributions"]) == set(MODALITIES)
    assert clip["present"] == list(MODALITIES) and clip["missing"] == {}
    assert clip["attribution"] == "shapley-masked"
    [segment] = clip["segments"]
    assert segment["labels"] == clip["labels"] and segment["start"] == 0.0
    assert clip["predicted"] == [p["label"] for p in clip["labels"] if p["predicted"]]
    assert any((cache / "entries").rglob("*.npz"))

    again = CliRunner().invoke(main, args)
    [cached] = json.loads(again.stdout)
    assert cached["cached"] is True and clip["cached"] is False
    assert cached["labels"] == clip["labels"]


def test_csv_output_with_contributions_parses(model_dir: Path, cache: Path) -> None:
    args = ["predict", str(CLIP), "--model", str(model_dir), "--cache", str(cache)]
    result = CliRunner().invoke(main, [*args, "--csv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["label"] for row in rows] == LABELS
    for row in rows:
        assert row["clip_id"] == CLIP.name
        assert 0.0 <= float(row["probability"]) <= 1.0
        assert row["predicted"] in {"0", "1"}
        assert row["maxpool_winner"] in MODALITIES
        shares = [float(row[f"contribution_{m}"]) for m in MODALITIES]
        assert all(-1.0 <= d <= 1.0 for d in shares)
        assert any(d != 0.0 for d in shares)  # removing a modality changes the score

    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0
    assert str(CLIP) in table.stdout and "driven by" in table.stdout
    assert all(label in table.stdout for label in LABELS)


def test_folder_input_predicts_every_clip_and_reports_a_broken_one(
    tmp_path: Path, model_dir: Path, cache: Path
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(CLIP, folder / CLIP.name)
    shutil.copy(CLIP.with_suffix(".txt"), folder / CLIP.with_suffix(".txt").name)
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    result = CliRunner().invoke(
        main, ["predict", str(folder), "--model", str(model_dir), "--cache", str(cache), "--json"]
    )
    assert result.exit_code == 1
    clips = {c["clip_id"]: c for c in json.loads(result.stdout)}
    assert set(clips) == {"broken.mp4", CLIP.name}
    assert clips[CLIP.name]["error"] is None and clips[CLIP.name]["cached"] is True
    assert clips["broken.mp4"]["labels"] == []
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "broken.mp4" in line


def test_missing_clip_path_is_one_line_and_non_zero(tmp_path: Path, model_dir: Path) -> None:
    missing = tmp_path / "no_such_clip.mp4"
    result = CliRunner().invoke(main, ["predict", str(missing), "--model", str(model_dir)])
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert str(missing) in line and "no such file" in line
    assert result.stdout == ""


def test_missing_model_dir_is_one_line_and_non_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["predict", str(CLIP), "--model", str(tmp_path / "nope")])
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert "not a model directory" in line


def test_one_transcript_for_several_clips_is_refused(model_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(CLIP),
            str(FIXTURES / "talking_head.mp4"),
            "--model",
            str(model_dir),
            "--transcript",
            str(CLIP.with_suffix(".txt")),
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code != 0
    assert "one transcript is for one clip" in result.stderr


def test_json_and_csv_together_is_a_usage_error(model_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["predict", str(CLIP), "--model", str(model_dir), "--json", "--csv"]
    )
    assert result.exit_code == 2
    assert "--json and --csv" in result.stderr
