"""The plain data types every featurizer produces and every consumer reads.

A feature sequence follows the CMU Multimodal SDK's computational-sequence convention:
``features`` float32 ``[N, D]`` plus ``intervals`` float64 ``[N, 2]`` (start, end in seconds).
Frame-rate featurizers give one row per frame, word-level ones one row per word.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from featurizers import legacy


@dataclass(frozen=True)
class FeaturizerSpec:
    """Everything that determines a featurizer's output; its hash is the cache key.

    ``rate`` is frames per second for frame-rate featurizers and ``None`` for word level.
    """

    name: str
    version: str
    modality: str  # "text" | "visual" | "audio"
    dim_names: tuple[str, ...]
    rate: float | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return len(self.dim_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "modality": self.modality,
            "dim_names": list(self.dim_names),
            "rate": self.rate,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeaturizerSpec:
        """A saved spec; one written under a legacy name is read under today's."""
        data = legacy.current_spec(data)
        return cls(
            name=data["name"],
            version=data["version"],
            modality=data["modality"],
            dim_names=tuple(data["dim_names"]),
            rate=data["rate"],
            params=dict(data.get("params", {})),
        )

    def key(self) -> str:
        """A short stable hash of the declaration (dim names included)."""
        return _hash(self.to_dict())

    def legacy_keys(self) -> list[str]:
        """The keys this declaration had under legacy names (store entries written then)."""
        return [_hash(spec) for spec in legacy.legacy_specs(self.to_dict())]


def _hash(spec: dict[str, Any]) -> str:
    payload = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class FeatureSequence:
    """One clip's output of one featurizer."""

    features: np.ndarray  # float32 [N, D]
    intervals: np.ndarray  # float64 [N, 2], seconds
    spec: FeaturizerSpec
    words: list[str] | None = None  # word-level featurizers: the word of each row
    language: str | None = None  # text: the spoken language's ISO 639-1 code, when known
    absent: str | None = None  # why there are no rows, when the featurizer knows better than
    # "nothing there" (e.g. "speech in French; the text features are English-only")

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.intervals = np.asarray(self.intervals, dtype=np.float64).reshape(-1, 2)
        if self.features.ndim != 2 or self.features.shape[1] != self.spec.dim:
            raise ValueError(
                f"{self.spec.name}: features have shape {self.features.shape}, "
                f"expected [N, {self.spec.dim}]"
            )
        if len(self.features) != len(self.intervals):
            raise ValueError(
                f"{self.spec.name}: {len(self.features)} feature rows but "
                f"{len(self.intervals)} intervals"
            )


class MediaError(Exception):
    """A clip cannot be used: the message is one line naming the file and what to do."""


class Featurizer(Protocol):
    """Turns one decoded clip into one feature sequence."""

    spec: FeaturizerSpec

    def extract(self, clip: Any) -> FeatureSequence:  # clip: featurizers.media.MediaClip
        ...
