"""The timeline plot (``--plot``): each label's probability over time, as a PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from pipeline.timeline import SegmentResult, Timeline, clock, speakers_of
from pipeline.writers.registry import RECORDING, writer
from pipeline.writers.style import label_colours, tick_step

# Segments closer than this (seconds) count as touching: times are kept to the millisecond.
_TOUCHING = 5e-4


def step_series(segments: Sequence[SegmentResult], label: str) -> tuple[list, list]:
    """x, y of one label's line: flat over each segment, joined only between segments that
    touch, broken (a NaN) at every gap and unpredictable segment: where there is no segment
    there is no prediction to draw."""
    xs: list[float] = []
    ys: list[float] = []
    previous_end = None
    for seg in segments:
        score = seg.score(label)
        if seg.error is not None or score is None:
            previous_end = None
            continue
        if xs and (previous_end is None or seg.start - previous_end > _TOUCHING):
            xs.append(seg.start)
            ys.append(float("nan"))
        xs += [seg.start, seg.end]
        ys += [score.probability, score.probability]
        previous_end = seg.end
    return xs, ys


@writer("png", RECORDING, "the timeline plot (PNG)", flag="plot")
def plot_timeline(timeline: Timeline, width_px: int = 1200, height_px: int = 450) -> bytes:
    """A PNG of each label's probability over time (step lines over the segments only),
    segments shaded alternately, unpredictable segments hatched, the threshold dashed, time in
    mm:ss; a diarized recording has one lane (plot) per speaker, over that speaker's segments."""
    from matplotlib.figure import Figure

    segments = timeline.ordered()
    speakers = speakers_of(timeline)
    lanes = max(len(speakers), 1)
    dpi = 100
    height = height_px if lanes == 1 else height_px * (0.45 + 0.55 * lanes)
    figure = Figure(figsize=(width_px / dpi, height / dpi), dpi=dpi)
    all_axes = figure.subplots(lanes, 1, sharex=True, squeeze=False)[:, 0]
    for lane, axes in enumerate(all_axes):
        speaker = speakers[lane] if speakers else None
        own = segments if speaker is None else [s for s in segments if s.speaker == speaker]
        _draw_lane(axes, timeline, own, speaker, last=lane == lanes - 1)
    all_axes[0].set_title(f"{timeline.source}: emotions per segment ({timeline.segmentation})")
    all_axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize="small")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=dpi)
    return image.getvalue()


def _draw_lane(
    axes: Any, timeline: Timeline, segments: list[SegmentResult], speaker: str | None, last: bool
) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = timeline.axis_seconds
    for n, seg in enumerate(segments):
        if seg.error is not None:
            axes.axvspan(seg.start, seg.end, facecolor="none", edgecolor="#999", hatch="///", lw=0)
        elif n % 2:
            axes.axvspan(seg.start, seg.end, color="#000", alpha=0.05, lw=0)
    for label, colour in label_colours(timeline.label_names).items():
        xs, ys = step_series(segments, label)
        axes.plot(xs, ys, color=colour, lw=1.8, label=label)
    axes.axhline(timeline.threshold, color="#333", ls="--", lw=1, label="threshold")
    axes.set_xlim(0, span)
    axes.set_ylim(0, 1)
    axes.xaxis.set_major_locator(MultipleLocator(tick_step(span)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: clock(x)))
    if last:
        axes.set_xlabel("time in the recording")
    axes.set_ylabel("probability" if speaker is None else f"{speaker}\nprobability")
    if not segments:
        axes.text(span / 2, 0.5, "no segments", ha="center", va="center", color="#666")
