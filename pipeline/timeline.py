"""A recording's emotion timeline: the data ``predict`` fills and every writer renders.

``predict`` on a recording fills a :class:`Timeline`: one :class:`SegmentResult` per utterance
segment, each with its per-label probabilities and the modalities that were present. The files
and tables made from it live in ``pipeline.writers``; this module holds the data and the few
pure helpers that several writers share (times as ``m:ss``, a segment's one-line summary).

Every output names the modalities a segment was predicted without, and says why a segment is
unpredictable, so that nothing reads as a prediction from data that was not there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from featurizers.languages import language_name
from featurizers.span import Span
from pipeline.errors import PipelineError

# carat.data.types.MODALITIES, not imported from there: carat.data loads torch, and rendering a
# timeline needs none of it.
MODALITY_ORDER = ("text", "visual", "audio")


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
    language: str | None = None  # the spoken language's ISO 639-1 code, when known

    @property
    def speaker(self) -> str | None:
        """Who speaks in it (``S1``, ...), when the recording was diarized."""
        return None if self.span is None else self.span.speaker

    @property
    def face(self) -> str | None:
        """The face track its visual features came from, when one was chosen."""
        return None if self.span is None else self.span.face

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
        language: str | None = None,
    ) -> SegmentResult:
        """The result for ``span``: its times are the span's."""
        return cls(
            index, span.start, span.end, words, labels, present, missing, error, span, language
        )

    @property
    def predicted(self) -> list[LabelScore]:
        """The labels at or above the threshold, most probable first."""
        return sorted((s for s in self.labels if s.predicted), key=lambda s: -s.probability)

    def score(self, label: str) -> LabelScore | None:
        """This segment's score for ``label``; None when it has none (unpredictable)."""
        return next((s for s in self.labels if s.label == label), None)


@dataclass
class Timeline:
    """A whole recording's predictions. ``media_path``: what a file that plays the recording
    (the report) loads, a path relative to that file or a URL; None when the recording is not
    reachable from where the file is read."""

    source: str
    media_path: str | None
    duration: float
    label_names: list[str]
    threshold: float
    segmentation: str
    segments: list[SegmentResult]
    notes: list[str] = field(default_factory=list)  # what the reader should know (one line each)
    language: str | None = None  # the most spoken language over the segments, when known
    orientation: str | None = None  # what was done to the picture ("turned 90°"), if any video
    readable: str | None = None  # where a truncated file's readable part ends, else None

    def media_notes(self) -> list[str]:
        """What the recording's media needed said: language, orientation, readable length."""
        notes = []
        if self.language:
            notes.append(f"language {language_name(self.language)} ({self.language})")
        if self.orientation and self.orientation != "upright":
            notes.append(f"picture {self.orientation}")
        return notes + ([self.readable] if self.readable else [])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain dicts, lists, strings and numbers."""
        return asdict(self)

    def ordered(self) -> list[SegmentResult]:
        """The segments in time order, or a PipelineError naming the first impossible one."""
        for seg in self.segments:
            if not (0 <= seg.start <= seg.end):
                raise PipelineError(
                    f"{self.source}: segment {seg.index} runs from {seg.start:.3f} s to "
                    f"{seg.end:.3f} s; a segment must start at or after 0 and end after it starts"
                )
        return sorted(self.segments, key=lambda s: (s.start, s.index))

    @property
    def axis_seconds(self) -> float:
        """The length a time axis covers: the recording, or its last segment when later."""
        last = max((s.end for s in self.segments), default=0.0)
        return max(self.duration, last, 1e-9)

    def seen_from(self, folder: str | os.PathLike) -> Timeline:
        """This timeline for a file written in ``folder``: a ``media_path`` that is a local path
        (from the current directory) becomes relative to ``folder``, so that the file and the
        recording can be moved together."""
        if self.media_path is None or "://" in self.media_path:
            return self
        media = os.path.relpath(Path(self.media_path).resolve(), Path(folder).resolve())
        return replace(self, media_path=media)


def modality_rank(modality: str) -> int:
    """A modality's place in text, visual, audio order (unknown ones last)."""
    return MODALITY_ORDER.index(modality) if modality in MODALITY_ORDER else len(MODALITY_ORDER)


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on) for axes, tables and the report."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def missing_note(seg: SegmentResult) -> str:
    """The absent modalities as their reasons: "no face, silence"."""
    return ", ".join(seg.missing[m] or f"no {m}" for m in sorted(seg.missing, key=modality_rank))


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
        line += f" [{missing_note(seg)}]"
    return line


def short_words(words: Sequence[str], limit: int) -> str:
    """The first words that fit ``limit`` characters, with "…" when some were left out."""
    text = " ".join(" ".join(words).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut and text[limit - 1] != " ":
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def label_time_share(
    timeline: Timeline, segments: Sequence[SegmentResult] | None = None
) -> dict[str, float]:
    """Per label, the share of the predicted time (seconds of predictable ``segments``, all of
    the timeline's by default) in which it is present. 0.0 for every label when no segment was
    predictable."""
    chosen = timeline.segments if segments is None else segments
    predictable = [s for s in chosen if s.error is None]
    analysed = sum(s.end - s.start for s in predictable)
    share = dict.fromkeys(timeline.label_names, 0.0)
    if analysed <= 0:
        return share
    for seg in predictable:
        for score in seg.labels:
            if score.predicted and score.label in share:
                share[score.label] += (seg.end - seg.start) / analysed
    return share


def speakers_of(timeline: Timeline) -> list[str]:
    """The speakers of a diarized recording in order of first speech (empty if none)."""
    ordered = sorted(timeline.segments, key=lambda s: (s.start, s.index))
    return list(dict.fromkeys(s.speaker for s in ordered if s.speaker is not None))


def several_faces(timeline: Timeline) -> bool:
    """True when more than one face was seen in some segment (then each names its face)."""
    return any(s.span is not None and (s.span.faces or 0) > 1 for s in timeline.segments)


def speaker_label_share(timeline: Timeline) -> dict[str, dict[str, float]]:
    """Per speaker, :func:`label_time_share` over that speaker's segments: the share of their
    speaking time with each emotion."""
    return {
        speaker: label_time_share(timeline, [s for s in timeline.segments if s.speaker == speaker])
        for speaker in speakers_of(timeline)
    }
