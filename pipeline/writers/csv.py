"""CSV (``--csv``): one row per input, segment and label."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.timeline import MODALITY_ORDER, Timeline, modality_rank
from pipeline.writers.registry import INPUTS, writer

if TYPE_CHECKING:
    from pipeline.predict import ClipPrediction

SEGMENT_COLUMNS = (
    "segment",
    "start",
    "end",
    "speaker",
    "face",
    "faces",
    "face_how",
    "label",
    "probability",
    "predicted",
    "driven_by",
    *(f"contribution_{m}" for m in MODALITY_ORDER),
    "maxpool_winner",
    "present",
    "missing",
    "error",
    "language",
)
COLUMNS = ("clip_id", "source", *SEGMENT_COLUMNS)


def segment_rows(timeline: Timeline) -> Iterator[dict[str, Any]]:
    """One row per segment and label, keyed by ``SEGMENT_COLUMNS`` (an unpredictable segment:
    one row with its error and no label). ``present`` is ``;``-separated; ``missing`` reads
    ``audio: silence; visual: no face``; contribution columns are empty when the model gave
    none; ``language`` is the segment's spoken language (empty when not detected).
    ``face``/``faces``/``face_how``: the face track the visual features came from, the faces
    seen and how it was chosen (empty without faces or without a video)."""
    for seg in timeline.ordered():
        span = seg.span
        common = {
            "segment": seg.index,
            "start": f"{seg.start:.3f}",
            "end": f"{seg.end:.3f}",
            "speaker": seg.speaker or "",
            "face": "" if span is None or span.face is None else span.face,
            "faces": "" if span is None or span.faces is None else span.faces,
            "face_how": "" if span is None or span.face_how is None else span.face_how,
            "present": ";".join(sorted(seg.present, key=modality_rank)),
            "missing": "; ".join(
                f"{m}: {seg.missing[m]}" for m in sorted(seg.missing, key=modality_rank)
            ),
            "error": seg.error or "",
            "language": seg.language or "",
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


def _csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    table = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    table.writeheader()
    table.writerows(rows)
    return buffer.getvalue()


def timeline_csv(timeline: Timeline) -> str:
    """One recording's rows (:func:`segment_rows`) under a ``SEGMENT_COLUMNS`` header."""
    return _csv(SEGMENT_COLUMNS, segment_rows(timeline))


def _prediction_rows(predictions: Sequence[ClipPrediction]) -> Iterator[dict[str, Any]]:
    for clip in predictions:
        base = {"clip_id": clip.clip_id, "source": clip.source}
        if clip.timeline is None:
            yield {**base, "error": clip.error}
        else:
            yield from ({**base, **row} for row in segment_rows(clip.timeline))


@writer("csv", INPUTS, "CSV (one row per segment and label)")
def to_csv(predictions: Sequence[ClipPrediction]) -> str:
    """Every input's rows under a ``COLUMNS`` header: its id and source, then its segment rows
    (a failed input: one row with its error)."""
    return _csv(COLUMNS, _prediction_rows(predictions))
