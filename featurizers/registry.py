"""Featurizer classes by name and version, and rebuilding one exactly from its saved spec.

A featurizer's spec (name, version, modality, dims, rate, params) travels with every feature
store, dataset and model. :func:`build` turns a saved spec back into this install's
featurizer, built with the saved settings, and checks that the result declares exactly the
saved spec: features made now are then the features the data was made with. Anything else
(an unknown name, another version, other dims or parameters) is one :class:`SpecMismatch`
line naming the modality and what differs.

Each entry names its class as ``module:Class``, imported only when one is built (the visual
models take seconds to import), and the spec params that are its constructor's arguments (its
``settings``); the other params are consequences of those (a vector file's fingerprint, the
sample rate) that the check compares. Presets (``featurizers.presets``) are named parameter
sets over these entries.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from featurizers.base import Featurizer, FeaturizerSpec, MediaError


@dataclass(frozen=True)
class Registration:
    """One featurizer this install can build: ``name`` at ``version``, by ``target``."""

    name: str
    version: str
    target: str  # "module:Class"
    settings: tuple[str, ...]  # spec params that are constructor arguments

    def create(self, **params: Any) -> Featurizer:
        """The featurizer built with ``params`` (constructor arguments)."""
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)(**params)

    def settings_of(self, spec: FeaturizerSpec) -> dict[str, Any]:
        """The constructor arguments recorded in a spec of this featurizer."""
        return {k: spec.params[k] for k in self.settings if k in spec.params}


_REGISTRATIONS = (
    Registration(
        "text",
        "2",
        "featurizers.text:TextFeaturizer",
        ("vectors", "asr", "align", "language", "speech_language", "translate"),
    ),
    Registration(
        "visual-facemesh-fer",
        "3",
        "featurizers.visual:VisualFeaturizer",
        (
            "fps",
            "max_side",
            "min_detection_confidence",
            "min_tracking_confidence",
            "confidence_every",
            "max_faces",
        ),
    ),
    Registration(
        "audio-covarep-like",
        "1",
        "featurizers.audio:AudioFeaturizer",
        ("fmin", "fmax", "voicing_threshold", "silence_db", "silence_below_peak_db"),
    ),
)
REGISTRY: dict[str, Registration] = {r.name: r for r in _REGISTRATIONS}


class SpecMismatch(ValueError):
    """A saved spec this install cannot rebuild exactly; ``str()`` is one line."""

    def __init__(self, modality: str, detail: str) -> None:
        self.modality, self.detail = modality, detail
        super().__init__(f"the {modality} features {detail}")


def registration(name: str) -> Registration:
    """The entry of featurizer ``name``; ValueError naming the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown featurizer {name!r}; this install has {', '.join(REGISTRY)}")
    return REGISTRY[name]


def create(name: str, **params: Any) -> Featurizer:
    """This install's featurizer ``name`` with constructor arguments ``params``."""
    return registration(name).create(**params)


def build(saved: FeaturizerSpec) -> Featurizer:
    """The featurizer that makes exactly the features ``saved`` declares, or SpecMismatch."""
    entry = REGISTRY.get(saved.name)
    if entry is None:
        raise SpecMismatch(
            saved.modality,
            f"were made by featurizer {saved.name!r} {saved.version}, which this install does "
            f"not have (it has {', '.join(REGISTRY)})",
        )
    if entry.version != saved.version:
        raise SpecMismatch(
            saved.modality,
            f"were made by {saved.name} version {saved.version} and this install has version "
            f"{entry.version}",
        )
    try:
        featurizer = entry.create(**entry.settings_of(saved))
    except (TypeError, ValueError, MediaError) as exc:
        raise SpecMismatch(
            saved.modality,
            f"were made by {saved.name} {saved.version} with settings this install cannot "
            f"use ({exc})",
        ) from None
    built = featurizer.spec
    if built.key() != saved.key():
        raise SpecMismatch(
            saved.modality,
            f"were made by {saved.name} {saved.version} and this install's differ "
            f"({spec_differences(saved, built)})",
        )
    return featurizer


def spec_differences(saved: FeaturizerSpec, current: FeaturizerSpec) -> str:
    """What differs between a saved spec and this install's, for a one-line message."""
    parts = []
    if saved.name != current.name:
        parts.append(f"name {saved.name} vs {current.name}")
    if saved.version != current.version:
        parts.append(f"version {saved.version} vs {current.version}")
    if saved.modality != current.modality:
        parts.append(f"modality {saved.modality} vs {current.modality}")
    if saved.dim_names != current.dim_names:
        parts.append(f"{saved.dim} vs {current.dim} dims")
    if saved.rate != current.rate:
        parts.append(f"rate {saved.rate} vs {current.rate}")
    for key in sorted(set(saved.params) | set(current.params)):
        old, new = saved.params.get(key, "(unset)"), current.params.get(key, "(unset)")
        if old != new:
            parts.append(f"{key} {old!r} vs {new!r}")
    return "saved vs install: " + "; ".join(parts) if parts else "same declaration"
