"""What the plot and the report share, so that they look alike: label colours, time ticks."""

from __future__ import annotations

from collections.abc import Sequence

# Conventional colours for the usual emotion names, so that the plot and the report agree and
# "sad" is not red; other labels take the palette in order.
_EMOTION_COLOURS = {
    "happy": "#e69f00",
    "happiness": "#e69f00",
    "joy": "#e69f00",
    "sad": "#0072b2",
    "sadness": "#0072b2",
    "anger": "#d62728",
    "angry": "#d62728",
    "surprise": "#9467bd",
    "disgust": "#2ca02c",
    "fear": "#7f5539",
    "neutral": "#7f7f7f",
}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def label_colours(label_names: Sequence[str]) -> dict[str, str]:
    """One colour per label, the same in the PNG and the report."""
    colours, spare = {}, iter(_PALETTE * (len(label_names) // len(_PALETTE) + 1))
    for name in label_names:
        colours[name] = _EMOTION_COLOURS.get(name.lower()) or next(spare)
    return colours


def tick_step(span: float) -> float:
    """A round tick spacing in seconds that puts at most about ten ticks on the axis."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / step <= 10:
            return float(step)
    return 3600.0 * max(1, round(span / 36000))
