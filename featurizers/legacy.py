"""Names that earlier carat versions wrote, read as today's: the one place that knows them.

Until December 2026 the audio modality was called ``acoustic`` in the featurizers, feature
stores (``specs.json``, manifests, entry keys), datasets and model directories, and its
featurizer was named ``acoustic-covarep-like``. Nothing computed under those names is lost:

- a featurizer spec written with an old name is read as the same declaration under the new one;
- a modality-keyed mapping (store specs, manifest results, a dataset's or model's feature
  recipe) has its old keys renamed;
- a feature-store entry is keyed by the hash of its spec, so the store also looks an entry up
  under :func:`legacy_specs` (the same declaration as an older version hashed it) and reads it
  instead of computing it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

V = TypeVar("V")

MODALITY_RENAMES: dict[str, str] = {"acoustic": "audio"}
FEATURIZER_RENAMES: dict[str, str] = {"acoustic-covarep-like": "audio-covarep-like"}
_OLD_MODALITY = {new: old for old, new in MODALITY_RENAMES.items()}
_OLD_FEATURIZER = {new: old for old, new in FEATURIZER_RENAMES.items()}


def current_modality(name: str) -> str:
    """A modality name as this version says it."""
    return MODALITY_RENAMES.get(name, name)


def by_current_modality(mapping: Mapping[str, V]) -> dict[str, V]:
    """A modality-keyed mapping with old keys renamed; a key under today's name wins over its
    old twin. Other keys (e.g. ``alignment``) pass unchanged."""
    renamed = {current_modality(key): value for key, value in mapping.items()}
    renamed.update({key: value for key, value in mapping.items() if key not in MODALITY_RENAMES})
    return renamed


def current_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A featurizer spec (as a dict) under today's modality and featurizer names."""
    renamed = dict(spec)
    if "modality" in renamed:
        renamed["modality"] = current_modality(renamed["modality"])
    if "name" in renamed:
        renamed["name"] = FEATURIZER_RENAMES.get(renamed["name"], renamed["name"])
    return renamed


def current_specs(specs: Mapping[str, Any]) -> dict[str, Any]:
    """A modality-keyed mapping of spec dicts (and other entries) under today's names."""
    return {
        key: current_spec(value) if isinstance(value, Mapping) and "modality" in value else value
        for key, value in by_current_modality(specs).items()
    }


def legacy_specs(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The same declaration as older versions wrote it (none when no name in it changed)."""
    old_modality = _OLD_MODALITY.get(spec["modality"])
    old_name = _OLD_FEATURIZER.get(spec["name"])
    if old_modality is None and old_name is None:
        return []
    return [
        {
            **spec,
            "modality": old_modality or spec["modality"],
            "name": old_name or spec["name"],
        }
    ]
