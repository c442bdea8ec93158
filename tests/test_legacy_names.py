"""What carat wrote before the audio modality was renamed (``acoustic``, featurizer
``acoustic-covarep-like``) is still read, and nothing is computed again.

The old-style files are made the way the old code made them: a store, a model directory or a
prediction cache is written by today's code and then rewritten with the old names and keys
(``as_before_the_rename``), which is the only thing the rename changed in them. The old names
are spelled out here on purpose, independently of ``featurizers.legacy``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_predict import CLIP, default_feature_spec, save_untrained_model

from carat.modeldir import load_model
from featurizers.base import FeaturizerSpec
from featurizers.presets import parse_modalities
from pipeline.extract import run_extract
from pipeline.predict import predict_clips, rebuild_featurizers
from pipeline.recipe import FeatureRecipe
from pipeline.store import FeatureStore

OLD_MODALITY = "acoustic"
OLD_NAMES = {"audio-covarep-like": "acoustic-covarep-like"}


def old_spec(spec: dict) -> dict:
    """A spec dict as carat wrote it before the rename."""
    old = dataclasses.replace(
        FeaturizerSpec.from_dict(spec),
        modality=OLD_MODALITY,
        name=OLD_NAMES.get(spec["name"], spec["name"]),
    )
    return old.to_dict()


def _old_key(spec: dict) -> str:
    """The entry key the old code computed: the hash of the old-named declaration (built
    with the constructor, which reads nothing under new names)."""
    fields = {**spec, "dim_names": tuple(spec["dim_names"])}
    return FeaturizerSpec(**fields).key()


def as_before_the_rename(root: Path) -> None:
    """Rewrite a store (or a prediction cache) of today's as the old code wrote it: audio
    entries under the old spec's key, ``acoustic`` in specs.json and in manifest results."""
    renamed: dict[str, str] = {}
    for sidecar in sorted((root / "entries").rglob("*.json")):
        data = json.loads(sidecar.read_text())
        if data["spec"]["modality"] != "audio":
            continue
        data["spec"] = old_spec(data["spec"])
        new_entry = sidecar.name.removesuffix(".json")
        old_entry = f"{data['content_hash']}.{_old_key(data['spec'])}"
        renamed[new_entry] = old_entry
        sidecar.with_suffix(".npz").rename(sidecar.parent / f"{old_entry}.npz")
        (sidecar.parent / f"{old_entry}.json").write_text(json.dumps(data, indent=1))
        sidecar.unlink()
    specs = root / "specs.json"
    if specs.exists():
        data = json.loads(specs.read_text())
        data[OLD_MODALITY] = old_spec(data.pop("audio"))
        specs.write_text(json.dumps(data, indent=1, sort_keys=True))
    for manifest in (root / "manifest").glob("*.jsonl"):
        lines = []
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            result = record["results"].pop("audio", None)
            if result is not None:
                result["entry"] = renamed.get(result.get("entry"), result.get("entry"))
                record["results"][OLD_MODALITY] = result
            lines.append(json.dumps(record))
        manifest.write_text("\n".join(lines) + "\n")


def test_a_store_from_before_the_rename_is_read_without_recomputing(tmp_path: Path) -> None:
    out = tmp_path / "features"
    first = run_extract([CLIP], out, modalities="audio", workers=1)
    assert first.extracted == 1
    computed = FeatureStore(out).load(CLIP.name, "audio")
    as_before_the_rename(out)
    assert set(json.loads((out / "specs.json").read_text())) == {OLD_MODALITY}
    [old_sidecar] = (out / "entries").rglob("*.json")
    assert json.loads(old_sidecar.read_text())["spec"]["name"] == "acoustic-covarep-like"

    again = run_extract([CLIP], out, modalities="audio", workers=1)
    assert (again.extracted, again.cached, again.failed) == (0, 1, [])
    store = FeatureStore(out)
    assert [p.name for p in (out / "entries").rglob("*.npz")] == [
        old_sidecar.with_suffix(".npz").name
    ]  # read in place: no second entry was computed
    loaded = store.load(CLIP.name, "audio")
    np.testing.assert_array_equal(loaded.features, computed.features)
    assert loaded.spec == computed.spec  # read under today's names
    assert store.specs() == {"audio": computed.spec.to_dict()}
    assert set(json.loads((out / "specs.json").read_text())) == {"audio"}  # claimed anew


@pytest.mark.parametrize("key", ["audio", OLD_MODALITY])
def test_a_model_from_before_the_rename_rebuilds_todays_featurizers(
    tmp_path: Path, key: str
) -> None:
    """A model's config.json: the audio spec under its old names, keyed ``audio`` (as every
    build wrote it) or ``acoustic`` (a hand-made or converted recipe)."""
    today = default_feature_spec()
    model_dir = save_untrained_model(tmp_path / "model", today)
    config = json.loads((model_dir / "config.json").read_text())
    config["feature_spec"][key] = old_spec(config["feature_spec"].pop("audio"))
    (model_dir / "config.json").write_text(json.dumps(config))
    _, info = load_model(model_dir)
    featurizers = rebuild_featurizers(FeatureRecipe.from_dict(info.feature_spec), model_dir)
    assert featurizers["audio"].spec.to_dict() == today["audio"]


def test_a_prediction_cache_from_before_the_rename_is_reused(tmp_path: Path) -> None:
    model_dir = save_untrained_model(tmp_path / "model", default_feature_spec())
    cache = tmp_path / "cache"
    [first] = predict_clips([CLIP], model_dir, cache_dir=cache)
    as_before_the_rename(cache)
    [again] = predict_clips([CLIP], model_dir, cache_dir=cache)
    assert first.cached is False and again.cached is True
    assert again.labels == first.labels


def test_the_old_modality_name_on_the_command_line_says_the_new_one() -> None:
    with pytest.raises(ValueError, match=r"acoustic \(now called audio\)"):
        parse_modalities("text,acoustic")
