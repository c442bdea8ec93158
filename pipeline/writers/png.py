"""The timeline plot (``--plot``): each label's probability over time, as a PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence

from pipeline.timeline import SegmentResult, Timeline, clock
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
    mm:ss."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    segments = timeline.ordered()
    span = timeline.axis_seconds
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
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
    axes.set_xlabel("time in the recording")
    axes.set_ylabel("probability")
    axes.set_title(f"{timeline.source}: emotions per segment ({timeline.segmentation})")
    if not segments:
        axes.text(span / 2, 0.5, "no segments", ha="center", va="center", color="#666")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize="small")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=dpi)
    return image.getvalue()
