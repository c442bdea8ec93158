"""Named featurizer presets: which registered featurizer (``featurizers.registry``), with which
parameters, for each modality.

- ``default``: text = real GloVe 6B 50-d word vectors, words from a transcript sidecar or
  Whisper-base speech recognition; visual = face mesh + FER expressions at 15 frames/s (the
  face work is the slowest stage: 15 frames/s, a common rate for facial-expression features,
  halves it against FACET/OpenFace's 30 and still catches a blink, 100-400 ms, once or more);
  audio = the COVAREP-like 100 Hz default (permissive licences only).
- ``contextual``: as ``default`` but text = per-word MiniLM (all-MiniLM-L6-v2) 384-d vectors.
- ``fast``: as ``default`` but visual at 10 frames/s, two thirds of the default's face work,
  for large archives where fine facial timing matters less.

Featurizer modules are imported only when a preset is built, so importing this module is cheap
(the CLI and the pipeline's main process import it; heavy models load in the workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from featurizers import legacy, registry
from featurizers.base import Featurizer

MODALITY_NAMES: tuple[str, ...] = ("text", "visual", "audio")


@dataclass(frozen=True)
class Choice:
    """One modality's featurizer in a preset: a registered name and its parameters."""

    featurizer: str  # a name in featurizers.registry
    params: dict[str, Any] = field(default_factory=dict)


_TEXT = Choice("text", {"vectors": "glove-6b-50d", "asr": "whisper-base"})
_VISUAL = Choice("visual-facemesh-fer", {"fps": 15.0})
_AUDIO = Choice("audio-covarep-like", {})

PRESETS: dict[str, dict[str, Choice]] = {
    "default": {"text": _TEXT, "visual": _VISUAL, "audio": _AUDIO},
    "contextual": {
        "text": Choice(_TEXT.featurizer, {**_TEXT.params, "vectors": "minilm"}),
        "visual": _VISUAL,
        "audio": _AUDIO,
    },
    "fast": {
        "text": _TEXT,
        "visual": Choice(_VISUAL.featurizer, {**_VISUAL.params, "fps": 10.0}),
        "audio": _AUDIO,
    },
}


def parse_modalities(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"text,audio"`` or a sequence -> validated modality names, in the given order."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    unknown = [_renamed(n) for n in names if n not in MODALITY_NAMES]
    if unknown or not names:
        raise ValueError(
            f"unknown modality {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(MODALITY_NAMES)}"
        )
    return tuple(dict.fromkeys(names))


def _renamed(name: str) -> str:
    """An unknown modality name, with today's name when it is a legacy one."""
    current = legacy.current_modality(name)
    return name if current == name else f"{name} (now called {current})"


def build_featurizers(
    preset: str = "default",
    modalities: Sequence[str] = MODALITY_NAMES,
    **overrides: dict[str, Any],
) -> dict[str, Featurizer]:
    """Instantiate the preset's featurizers for ``modalities``.

    ``overrides`` maps a modality to parameters that replace the preset's, e.g.
    ``build_featurizers("default", ["visual"], visual={"fps": 15})``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    built: dict[str, Featurizer] = {}
    for modality in parse_modalities(modalities):
        choice = PRESETS[preset][modality]
        params = {**choice.params, **overrides.get(modality, {})}
        built[modality] = registry.create(choice.featurizer, **params)
    return built


def preset_specs(
    preset: str = "default",
    modalities: Sequence[str] = MODALITY_NAMES,
    **overrides: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """modality -> the spec (as a dict) of each featurizer the preset builds."""
    featurizers = build_featurizers(preset, modalities, **overrides)
    return {modality: f.spec.to_dict() for modality, f in featurizers.items()}
