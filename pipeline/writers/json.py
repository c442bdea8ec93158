"""JSON (``--json``): every input's prediction, with all its segments."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.writers.registry import INPUTS, writer

if TYPE_CHECKING:
    from pipeline.predict import ClipPrediction


@writer("json", INPUTS, "JSON")
def to_json(predictions: Sequence[ClipPrediction]) -> str:
    """A list with one object per input (``ClipPrediction.to_dict``), indented."""
    return json.dumps([p.to_dict() for p in predictions], indent=2) + "\n"
