"""A long recording's emotion timeline and the files it is rendered to.

``predict`` on a long recording fills a :class:`Timeline`: one :class:`SegmentResult` per
utterance segment, each with its per-label probabilities and the modalities that were present.
This module only renders it: emotion subtitles (SRT, WebVTT) to watch the recording with its
emotions in any player, a CSV, a terminal table, a PNG plot, and one self-contained HTML report
(inline CSS, JS and SVG; the only external reference is the recording itself, for its player).

Every output names the modalities a segment was predicted without, and says why a segment is
unpredictable, so that nothing reads as a prediction from data that was not there.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from featurizers.span import Span
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# carat.data.types.MODALITIES, not imported from there: carat.data loads torch, and rendering a
# timeline needs none of it.
MODALITY_ORDER = ("text", "visual", "audio")
SUBTITLE_WORDS_CHARS = 42  # the usual subtitle line length; the words line is cut there
PLOT_JOIN_SECONDS = 10.0  # the plot's lines join segments across pauses up to this long


@dataclass
class LabelScore:
    """One label of one segment. ``contributions``: modality -> Shapley contribution to the
    probability; ``driven_by``: the modality with the largest positive contribution."""

    label: str
    probability: float
    predicted: bool
    contributions: dict[str, float] | None = None
    driven_by: str | None = None
    # the modality whose classifier won CARAT's max-pool (the paper's Figure 4 statistic; not
    # an attribution)
    maxpool_winner: str | None = None


@dataclass
class SegmentResult:
    """One utterance segment: where it lies, what was said, the model's answer, and which
    modalities it had (``missing``: absent modality -> why). ``labels`` is empty and ``error``
    says why when the segment is unpredictable."""

    index: int
    start: float
    end: float
    words: list[str]
    labels: list[LabelScore]
    present: list[str]
    missing: dict[str, str]
    error: str | None = None
    span: Span | None = None  # the span it was predicted on (its recording, source, text)

    @classmethod
    def of(
        cls,
        index: int,
        span: Span,
        words: list[str],
        labels: list[LabelScore],
        present: list[str],
        missing: dict[str, str],
        error: str | None = None,
    ) -> SegmentResult:
        """The result for ``span``: its times are the span's."""
        return cls(index, span.start, span.end, words, labels, present, missing, error, span)

    @property
    def predicted(self) -> list[LabelScore]:
        """The labels at or above the threshold, most probable first."""
        return sorted((s for s in self.labels if s.predicted), key=lambda s: -s.probability)


@dataclass
class Timeline:
    """A whole recording's predictions. ``media_path``: what the report's player loads (a path
    or URL), None when the recording is not reachable from where the report is read."""

    source: str
    media_path: str | None
    duration: float
    label_names: list[str]
    threshold: float
    segmentation: str
    segments: list[SegmentResult]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain dicts, lists, strings and numbers."""
        return asdict(self)


# --- shared helpers ----------------------------------------------------------------------------


def _checked(timeline: Timeline) -> list[SegmentResult]:
    """The segments in time order, or a PipelineError naming the first impossible one."""
    for seg in timeline.segments:
        if not (0 <= seg.start <= seg.end):
            raise PipelineError(
                f"{timeline.source}: segment {seg.index} runs from {seg.start:.3f} s to "
                f"{seg.end:.3f} s; a segment must start at or after 0 and end after it starts"
            )
    return sorted(timeline.segments, key=lambda s: (s.start, s.index))


def _span(timeline: Timeline) -> float:
    """The length the time axis covers: the recording, or its last segment when that is later."""
    last = max((s.end for s in timeline.segments), default=0.0)
    return max(timeline.duration, last, 1e-9)


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on) for axes, tables and the report."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _cue_time(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _missing_note(seg: SegmentResult) -> str:
    """The absent modalities as their reasons: "no face, silence"."""
    return ", ".join(seg.missing[m] or f"no {m}" for m in sorted(seg.missing, key=_modality_rank))


def _modality_rank(modality: str) -> int:
    return MODALITY_ORDER.index(modality) if modality in MODALITY_ORDER else len(MODALITY_ORDER)


def emotions_line(seg: SegmentResult, threshold: float) -> str:
    """What a segment's cue and table row say: "happy 0.81 · surprise 0.42", or why not."""
    if seg.error is not None:
        return f"(unpredictable: {seg.error})"
    if not seg.predicted:
        return f"(no emotion ≥ {threshold:.2f})"
    return " · ".join(f"{s.label} {s.probability:.2f}" for s in seg.predicted)


def segment_line(seg: SegmentResult, threshold: float) -> str:
    """:func:`emotions_line` plus the missing modalities: "happy 0.81 [no face, silence]"."""
    line = emotions_line(seg, threshold)
    if seg.missing and seg.error is None:
        line += f" [{_missing_note(seg)}]"
    return line


def _short_words(words: Sequence[str], limit: int) -> str:
    """The first words that fit ``limit`` characters, with "…" when some were left out."""
    text = " ".join(" ".join(words).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut and text[limit - 1] != " ":
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _cue_lines(seg: SegmentResult, threshold: float, words_chars: int) -> list[str]:
    lines = [segment_line(seg, threshold)]
    if words_chars > 0 and seg.words:
        lines.append(_short_words(seg.words, words_chars))
    # A cue's text may not hold an arrow or a blank line: either would end the cue early.
    return [" ".join(line.replace("-->", "→").split()) for line in lines]


def label_time_share(timeline: Timeline) -> dict[str, float]:
    """Per label, the share of the predicted time (seconds of predictable segments) in which it
    is present. 0.0 for every label when no segment was predictable."""
    predictable = [s for s in timeline.segments if s.error is None]
    analysed = sum(s.end - s.start for s in predictable)
    share = dict.fromkeys(timeline.label_names, 0.0)
    if analysed <= 0:
        return share
    for seg in predictable:
        for score in seg.labels:
            if score.predicted and score.label in share:
                share[score.label] += (seg.end - seg.start) / analysed
    return share


# --- subtitles ---------------------------------------------------------------------------------


def to_srt(timeline: Timeline, words_chars: int = SUBTITLE_WORDS_CHARS) -> str:
    """Emotion subtitles in SubRip: one cue per segment; line 1 the present labels with their
    probabilities (and the missing modalities in brackets), line 2 the first words (up to
    ``words_chars`` characters; 0 leaves it out). SubRip has no escapes and players read ``<``
    as a tag, so angle brackets in words become ‹ ›."""
    cues = []
    for number, seg in enumerate(_checked(timeline), start=1):
        lines = _cue_lines(seg, timeline.threshold, words_chars)
        text = "\n".join(lines).replace("<", "‹").replace(">", "›")
        times = f"{_cue_time(seg.start, ',')} --> {_cue_time(seg.end, ',')}"
        cues.append(f"{number}\n{times}\n{text}\n")
    return "\n".join(cues)


def to_vtt(timeline: Timeline, words_chars: int = SUBTITLE_WORDS_CHARS) -> str:
    """Emotion subtitles in WebVTT, the same cues as :func:`to_srt` (text escaped as WebVTT
    requires), each identified by its segment index."""
    note = f"carat emotions for {timeline.source}; threshold {timeline.threshold:.2f}"
    blocks = ["WEBVTT", "NOTE " + " ".join(note.replace("-->", "→").split())]
    for seg in _checked(timeline):
        lines = _cue_lines(seg, timeline.threshold, words_chars)
        text = "\n".join(html.escape(line, quote=False) for line in lines)
        times = f"{_cue_time(seg.start, '.')} --> {_cue_time(seg.end, '.')}"
        blocks.append(f"segment-{seg.index}\n{times}\n{text}")
    return "\n\n".join(blocks) + "\n"


# --- tables ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "segment",
    "start",
    "end",
    "label",
    "probability",
    "predicted",
    "driven_by",
    *(f"contribution_{m}" for m in MODALITY_ORDER),
    "maxpool_winner",
    "present",
    "missing",
    "error",
)


def csv_rows(timeline: Timeline) -> Iterator[dict[str, Any]]:
    """The rows of :func:`timeline_csv` as dicts keyed by ``CSV_COLUMNS`` (for writers that
    add columns of their own, such as predict's clip id)."""
    for seg in _checked(timeline):
        common = {
            "segment": seg.index,
            "start": f"{seg.start:.3f}",
            "end": f"{seg.end:.3f}",
            "present": ";".join(sorted(seg.present, key=_modality_rank)),
            "missing": "; ".join(
                f"{m}: {seg.missing[m]}" for m in sorted(seg.missing, key=_modality_rank)
            ),
            "error": seg.error or "",
        }
        if not seg.labels:
            yield common
        for score in seg.labels:
            row = dict(common)
            row.update(
                label=score.label,
                probability=f"{score.probability:.6f}",
                predicted=int(score.predicted),
                driven_by=score.driven_by or "",
                maxpool_winner=score.maxpool_winner or "",
            )
            for modality, value in (score.contributions or {}).items():
                row[f"contribution_{modality}"] = f"{value:.6f}"
            yield row


def timeline_csv(timeline: Timeline) -> str:
    """One row per segment and label (an unpredictable segment: one row with its error and no
    label). ``present`` is ``;``-separated; ``missing`` reads ``audio: silence; visual: no
    face``; contribution columns are empty when the model gave none."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(timeline))
    return buffer.getvalue()


def _modality_marks(seg: SegmentResult) -> str:
    """``TVA`` with ``·`` for each absent modality: ``T·A`` has no visual."""
    return "".join(m[0].upper() if m in seg.present else "·" for m in MODALITY_ORDER)


def format_timeline_table(timeline: Timeline, words_chars: int = 40) -> str:
    """The terminal view: a summary line, then one row per segment (time range, modalities
    present as ``TVA``, present labels with probabilities, the first words)."""
    segments = _checked(timeline)
    header = (
        f"{timeline.source}: {clock(timeline.duration)}, {len(segments)} segments "
        f"({timeline.segmentation}), labels at >= {timeline.threshold:.2f}"
    )
    spans = [f"{clock(s.start)}-{clock(s.end)}" for s in segments]
    emotions = [segment_line(s, timeline.threshold) for s in segments]
    span_width = max([len("time"), *map(len, spans)])
    # An unpredictable segment's reason ends its row (it has no words), so it sets no width.
    predictable = [segment_line(s, timeline.threshold) for s in segments if s.error is None]
    width = max(map(len, predictable), default=0)
    width = max(width, len("emotions"))
    lines = [header, f"{'#':>4}  {'time':<{span_width}}  TVA  {'emotions':<{width}}  words"]
    for seg, span, said in zip(segments, spans, emotions, strict=True):
        row = f"{seg.index:>4}  {span:<{span_width}}  {_modality_marks(seg)}  {said:<{width}}"
        if seg.error is None:
            row += "  " + (_short_words(seg.words, words_chars) if seg.words else "-")
        lines.append(row.rstrip())
    lines.append("TVA: text, visual, audio present (· absent)")
    return "\n".join(lines)


# --- the plot ----------------------------------------------------------------------------------

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


def _tick_step(span: float) -> float:
    """A round tick spacing in seconds that puts at most about ten ticks on the axis."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / step <= 10:
            return float(step)
    return 3600.0 * max(1, round(span / 36000))


def _step_series(segments: Sequence[SegmentResult], label: str) -> tuple[list, list]:
    """x, y of one label's line: flat over each segment, joined across pauses of up to
    PLOT_JOIN_SECONDS, broken (a NaN) across longer gaps and unpredictable segments, where there
    is no prediction to draw."""
    xs: list[float] = []
    ys: list[float] = []
    previous_end = None
    for seg in segments:
        score = next((s for s in seg.labels if s.label == label), None)
        if seg.error is not None or score is None:
            previous_end = None
            continue
        if xs and (previous_end is None or seg.start - previous_end > PLOT_JOIN_SECONDS):
            xs.append(seg.start)
            ys.append(float("nan"))
        xs += [seg.start, seg.end]
        ys += [score.probability, score.probability]
        previous_end = seg.end
    return xs, ys


def plot_timeline(
    timeline: Timeline, path: str | Path, width_px: int = 1200, height_px: int = 450
) -> Path:
    """A PNG of each label's probability over time (step lines), segments shaded alternately,
    unpredictable segments hatched, the threshold dashed, time in mm:ss."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    segments = _checked(timeline)
    span = _span(timeline)
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    for n, seg in enumerate(segments):
        if seg.error is not None:
            axes.axvspan(seg.start, seg.end, facecolor="none", edgecolor="#999", hatch="///", lw=0)
        elif n % 2:
            axes.axvspan(seg.start, seg.end, color="#000", alpha=0.05, lw=0)
    for label, colour in label_colours(timeline.label_names).items():
        xs, ys = _step_series(segments, label)
        axes.plot(xs, ys, color=colour, lw=1.8, label=label)
    axes.axhline(timeline.threshold, color="#333", ls="--", lw=1, label="threshold")
    axes.set_xlim(0, span)
    axes.set_ylim(0, 1)
    axes.xaxis.set_major_locator(MultipleLocator(_tick_step(span)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: clock(x)))
    axes.set_xlabel("time in the recording")
    axes.set_ylabel("probability")
    axes.set_title(f"{timeline.source}: emotions per segment ({timeline.segmentation})")
    if not segments:
        axes.text(span / 2, 0.5, "no segments", ha="center", va="center", color="#666")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize="small")
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, format="png", dpi=dpi)
    log.info("wrote the timeline plot %s", out)
    return out


# --- the HTML report ---------------------------------------------------------------------------

_SVG_WIDTH, _SVG_LEFT, _SVG_RIGHT = 820, 64, 18
_LANE_HEIGHT, _LANE_GAP, _MODALITY_HEIGHT, _MODALITY_GAP = 30, 6, 10, 3


def _rect(x0: float, x1: float, y: float, height: float, title: str = "", **attrs: str) -> str:
    """An SVG rect from ``x0`` to ``x1`` (at least half a unit wide, so that short segments
    stay visible); ``attrs`` with ``_`` for ``-`` (``cls`` for ``class``), an optional tooltip."""
    extra = "".join(
        f' {"class" if k == "cls" else k.replace("_", "-")}="{v}"' for k, v in attrs.items()
    )
    shape = f'<rect x="{x0:.2f}" y="{y:.2f}" width="{max(x1 - x0, 0.5):.2f}" height="{height:.2f}"'
    if title:
        return f"{shape}{extra}><title>{html.escape(title)}</title></rect>"
    return f"{shape}{extra}/>"


def _timeline_svg(timeline: Timeline, segments: Sequence[SegmentResult]) -> str:
    """The report's figure: one lane per label (a bar per segment as high as its probability,
    solid when the label is present, the threshold dashed), one thin lane per modality (grey
    where present), a time axis; every segment is a clickable column (``data-segment``)."""
    span = _span(timeline)
    right = _SVG_WIDTH - _SVG_RIGHT

    def x(seconds: float) -> float:
        return _SVG_LEFT + (right - _SVG_LEFT) * seconds / span

    def text(x_at: float, y_at: float, content: str, cls: str, anchor: str = "end") -> str:
        return (
            f'<text class="{cls}" x="{x_at:.2f}" y="{y_at:.2f}" text-anchor="{anchor}">'
            f"{html.escape(content)}</text>"
        )

    def hline(y_at: float, cls: str) -> str:
        return (
            f'<line class="{cls}" x1="{_SVG_LEFT}" x2="{right}" y1="{y_at:.2f}" y2="{y_at:.2f}"/>'
        )

    colours = label_colours(timeline.label_names)
    modalities_top = len(colours) * (_LANE_HEIGHT + _LANE_GAP) + 4
    axis_y = modalities_top + len(MODALITY_ORDER) * (_MODALITY_HEIGHT + _MODALITY_GAP) + 2
    parts = [
        f'<svg id="timeline" viewBox="0 0 {_SVG_WIDTH} {axis_y + 22}" role="img" '
        'aria-label="emotion probability per segment over time">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#b0b0b0" '
        'stroke-width="2"/></pattern></defs>',
    ]
    for n, seg in enumerate(segments):  # background: alternate shading, unpredictable hatched
        fill = "url(#hatch)" if seg.error is not None else ("#f1f1f1" if n % 2 else "#fafafa")
        parts.append(_rect(x(seg.start), x(seg.end), 0, axis_y, fill=fill))
    for lane, (label, colour) in enumerate(colours.items()):
        top = lane * (_LANE_HEIGHT + _LANE_GAP)
        parts.append(text(_SVG_LEFT - 6, top + _LANE_HEIGHT / 2 + 4, label, "lane"))
        for seg in segments:
            score = next((s for s in seg.labels if s.label == label), None)
            if seg.error is None and score is not None:
                bar = _LANE_HEIGHT * min(max(score.probability, 0.0), 1.0)
                opacity = "1" if score.predicted else "0.3"
                y_bar = top + _LANE_HEIGHT - bar
                parts.append(
                    _rect(x(seg.start), x(seg.end), y_bar, bar, fill=colour, fill_opacity=opacity)
                )
        parts.append(hline(top + _LANE_HEIGHT * (1 - timeline.threshold), "threshold"))
        parts.append(hline(top + _LANE_HEIGHT, "baseline"))
    for row, modality in enumerate(MODALITY_ORDER):
        top = modalities_top + row * (_MODALITY_HEIGHT + _MODALITY_GAP)
        parts.append(text(_SVG_LEFT - 6, top + _MODALITY_HEIGHT - 1, modality, "modality"))
        parts += [
            _rect(x(seg.start), x(seg.end), top, _MODALITY_HEIGHT, fill="#8a8a8a")
            for seg in segments
            if modality in seg.present
        ]
    step, tick = _tick_step(span), 0.0
    while tick <= span + 1e-9:
        parts.append(
            f'<line class="tick" x1="{x(tick):.2f}" x2="{x(tick):.2f}" y1="{axis_y}" '
            f'y2="{axis_y + 4}"/>' + text(x(tick), axis_y + 16, clock(tick), "tick", "middle")
        )
        tick += step
    for seg in segments:  # on top: one transparent clickable column per segment
        title = f"#{seg.index} {clock(seg.start)}–{clock(seg.end)}: "
        title += segment_line(seg, timeline.threshold)
        hit = {"cls": "seg", "data_segment": str(seg.index), "data_start": f"{seg.start:.3f}"}
        parts.append(_rect(x(seg.start), x(seg.end), 0, axis_y, title, **hit))
    parts.append("</svg>")
    return "\n".join(parts)


def _labels_cell(seg: SegmentResult, threshold: float, colours: dict[str, str]) -> str:
    if seg.error is not None:
        return f'<span class="error">unpredictable: {html.escape(seg.error)}</span>'
    if not seg.predicted:
        top = max(seg.labels, key=lambda s: s.probability, default=None)
        best = f" (highest: {html.escape(top.label)} {top.probability:.2f})" if top else ""
        return f'<span class="none">no emotion ≥ {threshold:.2f}{best}</span>'
    items = []
    for score in seg.predicted:
        chip = (
            f'<span class="chip" style="--c:{colours.get(score.label, "#555")}">'
            f"{html.escape(score.label)} {score.probability:.2f}</span>"
        )
        if score.contributions:
            shares = []
            for modality in sorted(score.contributions, key=_modality_rank):
                share = f"{html.escape(modality)} {score.contributions[modality]:+.2f}"
                shares.append(f"<b>{share}</b>" if modality == score.driven_by else share)
            chip += f'<span class="why">{" · ".join(shares)}</span>'
        items.append(f"<div>{chip}</div>")
    return "".join(items)


def _modalities_cell(seg: SegmentResult) -> str:
    """The present modalities as chips, then each absent one with its reason."""
    present = [m for m in MODALITY_ORDER if m in seg.present]
    chips = " ".join(f'<span class="mod on">{m}</span>' for m in present)
    absent = "".join(
        f'<div class="mod off">{html.escape(m)}: {html.escape(seg.missing[m] or f"no {m}")}</div>'
        for m in sorted(seg.missing, key=_modality_rank)
    )
    return chips + absent


_ROW = Template(
    '<tr data-segment="$index" data-start="$start" data-end="$end" data-summary="$summary"$css>'
    '<td class="num">$index</td>'
    '<td class="time"><button type="button">▶ $span</button></td>'
    "<td>$emotions</td>"
    '<td class="mods">$modalities</td>'
    '<td class="words">$words</td></tr>'
)


def _segment_rows(timeline: Timeline, segments: Sequence[SegmentResult]) -> str:
    """One table row per segment; ``data-start`` is where a click seeks the player to."""
    colours = label_colours(timeline.label_names)
    return "\n".join(
        _ROW.substitute(
            index=seg.index,
            start=f"{seg.start:.3f}",
            end=f"{seg.end:.3f}",
            summary=html.escape(segment_line(seg, timeline.threshold)),
            css=' class="unpredictable"' if seg.error is not None else "",
            span=f"{clock(seg.start)}–{clock(seg.end)}",
            emotions=_labels_cell(seg, timeline.threshold, colours),
            modalities=_modalities_cell(seg),
            words=html.escape(" ".join(seg.words)) if seg.words else '<span class="none">–</span>',
        )
        for seg in segments
    )


def _summary(timeline: Timeline, segments: Sequence[SegmentResult]) -> str:
    """The key figures and, per label, the share of the predicted time in which it is present."""
    unpredictable = sum(s.error is not None for s in segments)
    facts = [
        ("duration", clock(timeline.duration)),
        (
            "segments",
            f"{len(segments)}" + (f" ({unpredictable} unpredictable)" if unpredictable else ""),
        ),
        ("segmented by", timeline.segmentation),
        ("threshold", f"{timeline.threshold:.2f}"),
    ]
    absent = [(m, sum(m in s.missing for s in segments)) for m in MODALITY_ORDER]
    if any(n for _, n in absent):
        counts = " · ".join(f"{m} {n}" for m, n in absent if n)
        facts.append(("segments without", counts))
    cards = "".join(
        f'<div class="fact"><span>{html.escape(k)}</span><b>{html.escape(v)}</b></div>'
        for k, v in facts
    )
    colours = label_colours(timeline.label_names)
    bars = "".join(
        f'<div class="share"><span class="name">{html.escape(label)}</span>'
        f'<span class="bar"><i style="width:{share * 100:.1f}%;background:{colours[label]}">'
        f'</i></span><span class="pct">{share * 100:.0f}%</span></div>'
        for label, share in label_time_share(timeline).items()
    )
    return (
        f'<div class="facts">{cards}</div><h3>Share of the predicted time each emotion is '
        f'present</h3><div class="shares">{bars}</div>'
    )


def _media_url(media_path: str) -> str:
    """A URL the player can load: a URL (``scheme://``) as given, a file path percent-encoded."""
    return media_path if "://" in media_path else quote(media_path, safe="/")


def _player(timeline: Timeline) -> str:
    if timeline.media_path is None:
        return (
            '<p class="nomedia" id="nomedia">The recording is not reachable from this report, so '
            f"there is no player. Times refer to <b>{html.escape(timeline.source)}</b>.</p>"
        )
    src = html.escape(_media_url(timeline.media_path))
    return (
        f'<video id="player" controls preload="metadata" src="{src}"></video>'
        '<p class="nomedia" id="videoerror" hidden>The video could not be loaded from '
        f"<code>{html.escape(timeline.media_path)}</code> (moved, or a format this browser "
        "cannot play). The timeline and the table still work.</p>"
        '<p class="hint">Click a row or a span of the timeline to play that segment.</p>'
        '<p id="now"></p>'
    )


_TABLE_NOTE = (
    '<p class="legend">Under each emotion: how much each modality adds to its probability '
    "(its Shapley contribution); in bold, the one that drives it.</p>"
)

_PNG_BLOCK = Template(
    "<details><summary>The same timeline as a static image</summary>"
    '<img alt="emotion timeline plot" src="data:image/png;base64,$data"></details>'
)

_REPORT = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 0; background: #fff; }
header { padding: 16px 24px 8px; border-bottom: 1px solid #ddd; }
header h1 { font-size: 20px; margin: 0 0 2px; }
header p { margin: 0; color: #666; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 24px;
  padding: 16px 24px; }
aside { position: sticky; top: 16px; align-self: start; }
@media (max-width: 1000px) { .layout { grid-template-columns: 1fr; } aside { position: static; } }
h2 { font-size: 16px; margin: 18px 0 8px; } h3 { font-size: 13px; margin: 14px 0 6px; color: #555; }
.facts { display: flex; flex-wrap: wrap; gap: 8px; }
.fact { border: 1px solid #ddd; border-radius: 6px; padding: 6px 10px; }
.fact span { display: block; font-size: 11px; color: #777; text-transform: uppercase; }
.shares { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
  gap: 4px 24px; }
.share { display: flex; align-items: center; gap: 8px; }
.share .name { width: 70px; } .share .pct { width: 40px; text-align: right; color: #555; }
.share .bar { flex: 1; height: 10px; background: #eee; border-radius: 5px; overflow: hidden; }
.share .bar i { display: block; height: 100%; }
svg { width: 100%; height: auto; display: block; font-size: 12px; }
svg .seg { fill: transparent; cursor: pointer; }
svg .seg:hover { fill: rgba(0, 0, 0, 0.07); }
svg .seg.current { fill: rgba(30, 100, 220, 0.12); stroke: #1e64dc; stroke-width: 1.5; }
svg .threshold { stroke: #333; stroke-dasharray: 4 3; stroke-width: 0.8; }
svg .baseline, svg .tick { stroke: #999; stroke-width: 0.8; }
svg text.tick { fill: #666; font-size: 11px; stroke: none; }
svg text.modality { fill: #666; font-size: 10px; }
.legend { color: #666; font-size: 12px; margin: 4px 0 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #eee; }
th { font-size: 12px; color: #666; border-bottom: 2px solid #ddd; }
tbody tr { cursor: pointer; } tbody tr:hover { background: #f6f8fb; }
tbody tr.current { background: #e8f0fd; }
tr.unpredictable td {
  background: repeating-linear-gradient(45deg, #fafafa 0 6px, #f0f0f0 6px 12px); }
td.num { color: #999; text-align: right; }
td.time button { font: inherit; border: 1px solid #ccd; background: #fff; border-radius: 4px;
  padding: 1px 6px; cursor: pointer; white-space: nowrap; }
.chip { border-left: 4px solid var(--c); padding: 0 6px; font-weight: 600; }
.why { display: block; font-size: 11px; color: #666; padding-left: 10px; white-space: nowrap; }
.why b { color: #222; }
.none { color: #888; } .error { color: #a33; }
.mod { display: inline-block; font-size: 11px; border-radius: 3px; padding: 0 4px; margin: 1px 0; }
td.mods { white-space: nowrap; }
.mod.on { background: #e6e6e6; }
.mod.off { display: table; color: #a33; border: 1px dashed #d99; }
td.words { color: #444; }
video { width: 100%; background: #000; border-radius: 4px; }
.nomedia { border: 1px solid #e5c07b; background: #fff8e6; padding: 10px; border-radius: 4px; }
.hint { color: #666; font-size: 12px; }
#now { font-weight: 600; }
details img { width: 100%; }
</style></head>
<body>
<header><h1>$title</h1><p>$subtitle</p></header>
<div class="layout">
<main>
<h2>Summary</h2>
$summary
<h2>Timeline</h2>
$svg
<p class="legend">Each bar is a segment's probability: solid when the emotion is present (at or
above the dashed threshold), faint below it. Grey bands: the modalities a segment had. Hatched:
unpredictable.$click_hint</p>
$png
<h2>Segments</h2>
$table_note
<table id="segments"><thead><tr><th>#</th><th>time</th><th>emotions present</th>
<th>modalities</th><th>words</th></tr></thead>
<tbody>
$rows
</tbody></table>
</main>
<aside>$player</aside>
</div>
<script>
(function () {
  var player = document.getElementById("player");
  var items = document.querySelectorAll("[data-segment]");

  var now = document.getElementById("now");

  // Highlight one segment's row and span, and say under the player what it holds.
  function mark(index) {
    items.forEach(function (el) {
      el.classList.toggle("current", el.getAttribute("data-segment") === String(index));
    });
    var row = document.querySelector('#segments tr[data-segment="' + index + '"]');
    if (now && row) {
      now.textContent = "Segment " + index + ": " + row.getAttribute("data-summary");
    }
  }

  // Seek the player to a segment's start and play it; record where it landed.
  function show(el) {
    var index = el.getAttribute("data-segment");
    mark(index);
    history.replaceState(null, "", "#segment=" + index);
    if (!player) return;
    player.currentTime = parseFloat(el.getAttribute("data-start"));
    var playing = player.play();
    if (playing && playing.catch) playing.catch(function () {});
  }

  function onClick(event) {
    var el = event.target.closest("[data-segment]");
    if (el) show(el);
  }
  document.getElementById("segments").addEventListener("click", onClick);
  document.getElementById("timeline").addEventListener("click", onClick);

  if (player) {
    player.addEventListener("seeked", function () {
      player.setAttribute("data-seeked-to", player.currentTime.toFixed(3));
    });
    player.addEventListener("timeupdate", function () {
      var t = player.currentTime;
      document.querySelectorAll("#segments tr[data-segment]").forEach(function (row) {
        if (t >= parseFloat(row.dataset.start) && t < parseFloat(row.dataset.end)) {
          mark(row.dataset.segment);
        }
      });
    });
    player.addEventListener("error", function () {
      player.hidden = true;
      document.getElementById("videoerror").hidden = false;
    });
  }

  // A link to report.html#segment=N opens the report on segment N, as if its row was clicked.
  var wanted = /^#segment=(\\d+)$$/.exec(location.hash);
  var row = wanted && document.querySelector('#segments tr[data-segment="' + wanted[1] + '"]');
  if (row) { row.scrollIntoView({block: "nearest"}); row.click(); }
})();
</script>
</body></html>
""")


def render_report(timeline: Timeline, path: str | Path, plot_png: bytes | None = None) -> Path:
    """One self-contained HTML file: summary, an inline SVG timeline, a table of segments and,
    when ``media_path`` is set, a player that seeks to a segment when its row or its span of the
    timeline is clicked. ``plot_png`` (the bytes :func:`plot_timeline` wrote) is embedded too,
    as a data URI under the timeline, when given."""
    segments = _checked(timeline)
    png = ""
    if plot_png is not None:
        png = _PNG_BLOCK.substitute(data=base64.b64encode(plot_png).decode("ascii"))
    page = _REPORT.substitute(
        title=html.escape(f"Emotion timeline: {timeline.source}"),
        subtitle=html.escape(
            f"carat, {len(timeline.label_names)} labels: {', '.join(timeline.label_names)}"
        ),
        summary=_summary(timeline, segments),
        svg=_timeline_svg(timeline, segments),
        png=png,
        rows=_segment_rows(timeline, segments),
        player=_player(timeline),
        table_note=_TABLE_NOTE if any(s.contributions for g in segments for s in g.labels) else "",
        click_hint=" Click a span to play that segment." if timeline.media_path else "",
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    log.info("wrote the report %s", out)
    return out
