"""The feature recipe: every dict form written so far reads back, and predict cuts recordings
as the model's recipe says unless told otherwise."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from long_recording import SAMPLE_CLIPS, make_long_recording
from test_predict import default_feature_spec, save_untrained_model

from featurizers.presets import build_featurizers
from featurizers.segments import SegmentationSpec
from pipeline.align import AlignSettings
from pipeline.predict import predict_clips
from pipeline.recipe import INTERVAL_LABELS, WHOLE_CLIPS, FeatureRecipe, RecipeError


def test_a_recipe_round_trips_and_builds_its_featurizers() -> None:
    specs = {m: f.spec for m, f in build_featurizers("fast").items()}
    recipe = FeatureRecipe(specs, AlignSettings(), SegmentationSpec.parse("fixed:10"))
    again = FeatureRecipe.from_dict(copy.deepcopy(recipe.to_dict()))
    assert again == recipe
    assert {m: f.spec.key() for m, f in again.featurizers().items()} == {
        m: s.key() for m, s in specs.items()
    }
    assert again.prediction_segmentation() == SegmentationSpec(how="fixed", window=10.0)


def test_every_written_form_reads() -> None:
    today = FeatureRecipe.from_dict(default_feature_spec())
    assert today.segmentation == WHOLE_CLIPS  # no segmentation entry: whole clips (older carat)
    labels = FeatureRecipe.from_dict({**default_feature_spec(), "segmentation": {"how": "labels"}})
    assert labels.segmentation == INTERVAL_LABELS
    for recipe in (today, labels):  # whole clips or intervals: predict segments by auto
        assert recipe.prediction_segmentation() == SegmentationSpec(how="auto")
    old = default_feature_spec()
    audio = old.pop("audio")
    old["acoustic"] = {**audio, "modality": "acoustic", "name": "acoustic-covarep-like"}
    assert FeatureRecipe.from_dict(old) == today


@pytest.mark.parametrize(
    ("drop", "shown"), [("visual", "no visual featurizer spec"), ("alignment", "no alignment")]
)
def test_an_incomplete_recipe_is_one_line(drop: str, shown: str) -> None:
    data = {k: v for k, v in default_feature_spec().items() if k != drop}
    with pytest.raises(RecipeError, match=shown):
        FeatureRecipe.from_dict(data)


def test_a_spec_under_another_modality_is_refused() -> None:
    data = default_feature_spec()
    data["visual"] = data["audio"]
    with pytest.raises(RecipeError, match="visual: audio"):
        FeatureRecipe.from_dict(data)


def test_predict_cuts_as_the_models_recipe_says_unless_told_otherwise(tmp_path: Path) -> None:
    """A model whose training rows were 10-s windows cuts a recording into 10-s windows; an
    explicit segmentation wins. Audio-only with an .srt beside it: no face work, no ASR."""
    path, _ = make_long_recording(
        tmp_path / "talk.m4a", SAMPLE_CLIPS[:6], with_transcript=True, size=None
    )
    recipe = {
        **default_feature_spec(),
        "segmentation": SegmentationSpec.parse("fixed:10").to_dict(),
    }
    model_dir = save_untrained_model(tmp_path / "model", recipe)
    cache = tmp_path / "cache"

    [clip] = predict_clips([path], model_dir, cache_dir=cache)
    timeline = clip.timeline
    assert timeline.segmentation == "fixed:10"
    assert [s.start for s in timeline.segments] == [10.0 * i for i in range(len(timeline.segments))]
    assert len(timeline.segments) > 1

    [told] = predict_clips([path], model_dir, cache_dir=cache, segments="transcript")
    assert told.timeline.segmentation == "transcript"
    assert [s.start for s in told.timeline.segments] != [s.start for s in timeline.segments]
