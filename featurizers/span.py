"""A span: a stretch of one recording, the unit that segmentation, the feature cache, labels and
predictions share.

A span says where it lies (``start``/``end``, seconds from the recording's start, kept to the
millisecond: the one place times are rounded), how it was found (``source``), what is known to
be said in it (``text``) and which recording it belongs to (``recording``, the clip id). Its id
(``<clip_id>@<start>-<end>``) names it in the store's manifest, in datasets and in outputs; its
cache key derives from the recording's content hash and the times. A ``whole`` span is the
recording itself: its id is the clip id and its key the recording's hash, as for a clip that
was never cut.

Later fields (speaker, face track, language) are added with a default, so every span written
before them still reads back. ``face`` is the face track the span's visual features come from
(``featurizers.face_tracks``; None: none, or not chosen yet), ``faces`` how many tracks were seen
in it and ``face_how`` how the face was chosen (``featurizers.active_speaker``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

WHOLE = "whole"  # the recording as one span (not cut)
LABELS = "labels"  # given by interval labels
SOURCES = (WHOLE, "transcript", "asr", "vad", "fixed", LABELS)
_DECIMALS = 3  # milliseconds


@dataclass(frozen=True)
class Span:
    """``[start, end)`` of recording ``recording``, found by ``source``; ``text``: its words,
    when known before feature extraction (a transcript cue, speech recognition); ``speaker``:
    the one voice heard in it, when the recording was diarized."""

    start: float
    end: float
    source: str = WHOLE
    text: str | None = None
    recording: str = ""
    speaker: str | None = None  # who speaks in it (diarization: "S1", "S2", ...), when known
    face: str | None = None
    faces: int | None = None
    face_how: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", round(float(self.start), _DECIMALS))
        object.__setattr__(self, "end", round(float(self.end), _DECIMALS))

    @property
    def whole(self) -> bool:
        return self.source == WHOLE

    @property
    def times(self) -> str:
        """``<start>-<end>`` in seconds with 3 decimals (stable text for ids and keys)."""
        return f"{self.start:.3f}-{self.end:.3f}"

    @property
    def id(self) -> str:
        """The recording's clip id for a whole span, else ``<clip_id>@<start>-<end>``."""
        return self.recording if self.whole else f"{self.recording}@{self.times}"

    def key(self, recording_hash: str) -> str:
        """The feature cache key: the recording's content hash (whole), else a hash of it and
        the times."""
        if self.whole:
            return recording_hash
        return hashlib.sha256(f"{recording_hash}@{self.times}".encode()).hexdigest()

    def of(self, recording: str) -> Span:
        """This span as a span of ``recording`` (clip id)."""
        return replace(self, recording=recording)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Any]) -> Span:
        """A span from :meth:`to_dict`, or from an older ``[start, end, source, text]`` row;
        keys it does not know (a newer carat's fields) are ignored."""
        if not isinstance(data, Mapping):
            start, end, source, text = data
            return cls(start, end, source, text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
