"""The terminal table (predict's default output): a block per input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.timeline import (
    MODALITY_ORDER,
    SegmentResult,
    Timeline,
    clock,
    segment_line,
    several_faces,
    short_words,
    speakers_of,
)
from pipeline.writers.registry import INPUTS, writer

if TYPE_CHECKING:
    from pipeline.predict import ClipPrediction


@writer("table", INPUTS, "a readable table")
def to_table(predictions: Sequence[ClipPrediction]) -> str:
    """A block per input: for one segment, label, probability, yes/no and each modality's
    contribution (:func:`clip_table`); for a cut recording, :func:`timeline_table`."""
    blocks = []
    for clip in predictions:
        if clip.error is not None:
            blocks.append(f"{clip.source}\n  error: {clip.error}")
        elif clip.single is None:
            blocks.append(timeline_table(clip.timeline))
        else:
            blocks.append(clip_table(clip, clip.single))
    return "\n\n".join(blocks) + "\n"


def clip_table(clip: ClipPrediction, seg: SegmentResult) -> str:
    """A clip that is one segment: its words, then a row per label."""
    heard = " ".join(seg.words) or "(no words)"
    origin = clip.transcript or "speech recognition"
    lines = [f"{clip.source}", f'  words ({origin}): "{heard}"']
    lines += [f"  {note}" for note in clip.timeline.media_notes()]
    if seg.missing:
        absent = "; ".join(f"{m}: {why}" for m, why in seg.missing.items())
        lines.append(f"  predicted without {absent}")
    if seg.error is not None:
        lines.append(f"  unpredictable: {seg.error}")
        return "\n".join(lines)
    decision = f"yes at >= {clip.timeline.threshold:.2f}"
    columns = "  ".join(f"{m:>7}" for m in MODALITY_ORDER)
    lines.append(
        f"  {'label':<14} {'probability':>11}  {decision:<16}  {'driven by':<9}  {columns}"
    )
    for p in seg.labels:
        shares = "  ".join(f"{p.contributions[m]:>+7.3f}" for m in MODALITY_ORDER)
        lines.append(
            f"  {p.label:<14} {p.probability:>11.3f}  {'yes' if p.predicted else 'no':<16}  "
            f"{p.driven_by or '-':<9}  {shares}"
        )
    lines.append(
        "  text/visual/audio: each modality's Shapley contribution to the probability "
        "(they add up to probability - prior)"
    )
    return "\n".join(lines)


def _modality_marks(seg: SegmentResult) -> str:
    """``TVA`` with ``·`` for each absent modality: ``T·A`` has no visual."""
    return "".join(m[0].upper() if m in seg.present else "·" for m in MODALITY_ORDER)


def timeline_table(timeline: Timeline, words_chars: int = 40) -> str:
    """A cut recording: a summary line, then one row per segment (time range, its speaker when
    the recording was diarized, its face track when several faces were seen, modalities present
    as ``TVA``, present labels with
    probabilities, the first words), then the notes."""
    segments = timeline.ordered()
    header = (
        f"{timeline.source}: {clock(timeline.duration)}, {len(segments)} segments "
        f"({timeline.segmentation}), labels at >= {timeline.threshold:.2f}"
        + "".join(f"; {note}" for note in timeline.media_notes())
    )
    spans = [f"{clock(s.start)}-{clock(s.end)}" for s in segments]
    time_title = "time"
    if speakers_of(timeline):
        time_title = f"{'time':<{len(spans[0]) + 2}}who"
        spans = [f"{span}  {s.speaker or '-':<3}" for span, s in zip(spans, segments, strict=True)]
    if several_faces(timeline):
        time_title = f"{time_title:<{len(spans[0]) + 2}}face"
        spans = [f"{span}  {s.face or '-':<4}" for span, s in zip(spans, segments, strict=True)]
    emotions = [segment_line(s, timeline.threshold) for s in segments]
    span_width = max([len(time_title), *map(len, spans)])
    # An unpredictable segment's reason ends its row (it has no words), so it sets no width.
    predictable = [segment_line(s, timeline.threshold) for s in segments if s.error is None]
    width = max(map(len, predictable), default=0)
    width = max(width, len("emotions"))
    lines = [header, f"{'#':>4}  {time_title:<{span_width}}  TVA  {'emotions':<{width}}  words"]
    for seg, span, said in zip(segments, spans, emotions, strict=True):
        row = f"{seg.index:>4}  {span:<{span_width}}  {_modality_marks(seg)}  {said:<{width}}"
        if seg.error is None:
            row += "  " + (short_words(seg.words, words_chars) if seg.words else "-")
        lines.append(row.rstrip())
    lines.append("TVA: text, visual, audio present (· absent)")
    lines += [f"note: {note}" for note in timeline.notes]
    return "\n".join(lines)
