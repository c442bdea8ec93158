"""The featurizer registry rebuilds every preset's featurizers exactly from their saved specs,
and refuses a spec it cannot rebuild with one line naming the modality and what differs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from featurizers.base import FeaturizerSpec
from featurizers.presets import PRESETS, build_featurizers
from featurizers.registry import REGISTRY, SpecMismatch, build


def saved(spec: FeaturizerSpec) -> FeaturizerSpec:
    """The spec as a dataset or model carries it: through JSON and back."""
    return FeaturizerSpec.from_dict(json.loads(json.dumps(spec.to_dict())))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_featurizer_is_rebuilt_with_its_saved_key(preset: str) -> None:
    for modality, featurizer in build_featurizers(preset).items():
        rebuilt = build(saved(featurizer.spec))
        assert type(rebuilt) is type(featurizer)
        assert rebuilt.spec.key() == featurizer.spec.key(), (preset, modality)
        entry = REGISTRY[featurizer.spec.name]  # the registry names what the class declares
        assert (entry.name, entry.version) == (featurizer.spec.name, featurizer.spec.version)


def test_a_saved_setting_is_rebuilt_not_replaced_by_the_default() -> None:
    [featurizer] = build_featurizers("default", ["audio"], audio={"fmin": 80.0}).values()
    rebuilt = build(saved(featurizer.spec))
    assert rebuilt.fmin == 80.0 and rebuilt.spec == featurizer.spec


def _default_spec(modality: str) -> FeaturizerSpec:
    return build_featurizers("default", [modality])[modality].spec


@pytest.mark.parametrize(
    ("modality", "change", "shown"),
    [
        ("audio", {"name": "opensmile-egemaps"}, "which this install does not have"),
        ("audio", {"version": "0"}, "version 0 and this install has version 1"),
        ("visual", {"params": {"landmarks": "mediapipe==0.9 face_mesh"}}, "landmarks"),
        ("visual", {"params": {"fps": -1.0}}, "settings this install cannot use"),
        ("text", {"dim_names": ("glove50_0",)}, "1 vs 51 dims"),
        ("audio", {"rate": 50.0}, "rate 50.0 vs 100.0"),
    ],
)
def test_a_spec_that_cannot_be_rebuilt_is_one_line(modality: str, change: dict, shown: str) -> None:
    spec = _default_spec(modality)
    if "params" in change:
        change = {"params": {**spec.params, **change["params"]}}
    with pytest.raises(SpecMismatch) as caught:
        build(saved(dataclasses.replace(spec, **change)))
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.modality == modality and message.startswith(f"the {modality} features")
    assert shown in message
