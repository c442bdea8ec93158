"""The feature recipe a dataset or model carries: how its inputs were made from media.

A recipe is each modality's featurizer spec, the alignment settings that turned features into
fixed-length arrays, and the segmentation its rows came from: a ``SegmentationSpec`` (rows are
the segments of ``extract --segments``), ``"none"`` (whole clips) or ``"labels"`` (intervals
named by interval labels). ``predict`` rebuilds the featurizers from it (through
``featurizers.registry``), aligns as it says and cuts recordings as the training data was cut.

carat keeps the recipe as an opaque dict (``feature_spec`` in a packed dataset and in a model's
``config.json``); :meth:`FeatureRecipe.to_dict` writes it and :meth:`FeatureRecipe.from_dict`
reads every form written so far: without ``segmentation`` (older carat) it is whole clips, and
modality keys or featurizer names from before the audio rename are read as today's
(``featurizers.legacy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carat.data.types import MODALITIES
from featurizers import legacy, registry
from featurizers.base import Featurizer, FeaturizerSpec
from featurizers.segments import SegmentationSpec
from featurizers.span import LABELS
from pipeline.align import AlignSettings

ALIGNMENT_KEY = "alignment"
SEGMENTATION_KEY = "segmentation"
WHOLE_CLIPS = "none"  # each row is a whole clip
INTERVAL_LABELS = LABELS  # each row is a labelled interval of a recording (a span of source LABELS)
MARKERS = (WHOLE_CLIPS, INTERVAL_LABELS)


class RecipeError(ValueError):
    """A recipe dict that cannot be read; ``str()`` is one line."""


@dataclass(frozen=True)
class FeatureRecipe:
    """Featurizer specs (text, visual, audio), alignment settings and segmentation."""

    specs: Mapping[str, FeaturizerSpec]
    alignment: AlignSettings
    segmentation: SegmentationSpec | str = WHOLE_CLIPS

    def __post_init__(self) -> None:
        missing = [m for m in MODALITIES if m not in self.specs]
        if missing:
            raise RecipeError(f"no {', '.join(missing)} featurizer spec")
        wrong = [f"{m}: {s.modality}" for m, s in self.specs.items() if s.modality != m]
        if wrong:
            raise RecipeError(f"a spec of another modality ({', '.join(wrong)})")
        if isinstance(self.segmentation, str) and self.segmentation not in MARKERS:
            raise RecipeError(
                f"segmentation {self.segmentation!r} is not a SegmentationSpec, "
                f"{WHOLE_CLIPS!r} or {INTERVAL_LABELS!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            **{m: self.specs[m].to_dict() for m in MODALITIES},
            ALIGNMENT_KEY: self.alignment.to_dict(),
            SEGMENTATION_KEY: segmentation_to_dict(self.segmentation),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureRecipe:
        """A recipe from any dict carat wrote; RecipeError (one line) when it is incomplete."""
        data = legacy.by_current_modality(data)
        try:
            specs = {m: FeaturizerSpec.from_dict(data[m]) for m in MODALITIES if m in data}
            alignment = AlignSettings.from_dict(data[ALIGNMENT_KEY])
        except KeyError as exc:
            raise RecipeError(f"no {exc.args[0]} entry") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise RecipeError(f"unreadable ({exc})") from None
        return cls(specs, alignment, segmentation_from_dict(data.get(SEGMENTATION_KEY)))

    def featurizers(self) -> dict[str, Featurizer]:
        """modality -> this install's featurizer making exactly the recorded features;
        ``featurizers.registry.SpecMismatch`` (one line) when one cannot be rebuilt."""
        return {m: registry.build(self.specs[m]) for m in MODALITIES}

    def prediction_segmentation(self) -> SegmentationSpec:
        """How predict cuts a recording: as the training rows were cut, or ``auto`` when they
        were whole clips or labelled intervals (auto keeps a short clip whole)."""
        if isinstance(self.segmentation, SegmentationSpec):
            return self.segmentation
        return SegmentationSpec(how="auto")


def segmentation_from_dict(data: Mapping[str, Any] | None) -> SegmentationSpec | str:
    """A recorded segmentation: ``{"how": "none"}`` / ``{"how": "labels"}`` (markers), a
    ``SegmentationSpec.to_dict()``, or nothing (older carat: whole clips)."""
    if not data:
        return WHOLE_CLIPS
    if data.get("how") in MARKERS:
        return str(data["how"])
    try:
        return SegmentationSpec.from_dict(dict(data))
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"segmentation {dict(data)}: {exc}") from None


def segmentation_to_dict(segmentation: SegmentationSpec | str) -> dict[str, Any]:
    if isinstance(segmentation, SegmentationSpec):
        return segmentation.to_dict()
    return {"how": segmentation}
