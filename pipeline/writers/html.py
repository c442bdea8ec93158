"""The HTML report (``--report``): one self-contained page to explore a recording's emotions.

A summary, an inline SVG timeline, a table of segments and, when the recording is reachable, a
player that seeks to a segment when its row or its span of the timeline is clicked. The page's
skeleton, CSS and script are files in ``pipeline/templates/``, inlined into every report (the
only external reference is the recording itself, for its player).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from string import Template
from urllib.parse import quote

from pipeline.timeline import (
    MODALITY_ORDER,
    SegmentResult,
    Timeline,
    clock,
    label_time_share,
    modality_rank,
    segment_line,
    speaker_label_share,
    speakers_of,
)
from pipeline.writers.registry import RECORDING, writer
from pipeline.writers.style import label_colours, tick_step

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
    where present), one thin lane per speaker of a diarized recording (dark where they speak),
    a time axis; every segment is a clickable column (``data-segment``)."""
    span = timeline.axis_seconds
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
    speakers = speakers_of(timeline)
    thin_lanes = [*MODALITY_ORDER, *speakers]
    axis_y = modalities_top + len(thin_lanes) * (_MODALITY_HEIGHT + _MODALITY_GAP) + 2
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
            score = seg.score(label)
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
    for row, speaker in enumerate(speakers, start=len(MODALITY_ORDER)):
        top = modalities_top + row * (_MODALITY_HEIGHT + _MODALITY_GAP)
        parts.append(text(_SVG_LEFT - 6, top + _MODALITY_HEIGHT - 1, speaker, "modality"))
        parts += [
            _rect(x(seg.start), x(seg.end), top, _MODALITY_HEIGHT, fill="#3b3b3b")
            for seg in segments
            if seg.speaker == speaker
        ]
    step, tick = tick_step(span), 0.0
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
            for modality in sorted(score.contributions, key=modality_rank):
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
        for m in sorted(seg.missing, key=modality_rank)
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
        *(tuple(note.split(" ", 1)) for note in timeline.media_notes()),
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
    per_speaker = "".join(
        f"<h3>{html.escape(speaker)}: share of their speaking time with each emotion</h3>"
        f'<div class="shares">{_share_bars(shares, colours)}</div>'
        for speaker, shares in speaker_label_share(timeline).items()
    )
    return (
        f'<div class="facts">{cards}</div><h3>Share of the predicted time each emotion is '
        f'present</h3><div class="shares">{_share_bars(label_time_share(timeline), colours)}'
        f"</div>{per_speaker}"
    )


def _share_bars(shares: dict[str, float], colours: dict[str, str]) -> str:
    return "".join(
        f'<div class="share"><span class="name">{html.escape(label)}</span>'
        f'<span class="bar"><i style="width:{share * 100:.1f}%;background:{colours[label]}">'
        f'</i></span><span class="pct">{share * 100:.0f}%</span></div>'
        for label, share in shares.items()
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


@cache
def _template(name: str) -> str:
    """A file of ``pipeline/templates/`` (shipped in the wheel as package data)."""
    return (files("pipeline") / "templates" / name).read_text(encoding="utf-8")


@writer("html", RECORDING, "an HTML report", flag="report")
def render_report(timeline: Timeline, plot_png: bytes | None = None) -> str:
    """The page: summary, an inline SVG timeline, a table of segments and, when ``media_path``
    is set, a player that seeks to a segment when its row or its span of the timeline is
    clicked. ``plot_png`` (the PNG writer's bytes) is embedded too, as a data URI under the
    timeline, when given."""
    segments = timeline.ordered()
    png = ""
    if plot_png is not None:
        png = _PNG_BLOCK.substitute(data=base64.b64encode(plot_png).decode("ascii"))
    return Template(_template("report.html")).substitute(
        title=html.escape(f"Emotion timeline: {timeline.source}"),
        subtitle=html.escape(
            f"carat, {len(timeline.label_names)} labels: {', '.join(timeline.label_names)}"
        ),
        style=_template("report.css"),
        script=_template("report.js"),
        summary=_summary(timeline, segments),
        svg=_timeline_svg(timeline, segments),
        png=png,
        rows=_segment_rows(timeline, segments),
        player=_player(timeline),
        table_note=_TABLE_NOTE if any(s.contributions for g in segments for s in g.labels) else "",
        click_hint=" Click a span to play that segment." if timeline.media_path else "",
    )
