"""ELAN annotation file (``--eaf``): a recording's emotion timeline in the format annotation
researchers work in.

One tier per speaker and label (``S1 happy``: the segments where the label is predicted, each
annotated with its probability) and one words tier per speaker (``S1 words``); each tier names
its speaker as ELAN's participant. A recording that was not diarized has one speaker, ``all``.
Written through pympi-ling (MIT), which ELAN users already script with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.timeline import SegmentResult, Timeline
from pipeline.writers.registry import RECORDING, writer

if TYPE_CHECKING:
    from pympi.Elan import Eaf

NO_SPEAKER = "all"  # the participant of a recording that was not diarized
_MIMETYPES = {".wav": "audio/x-wav", ".mp3": "audio/mpeg", ".mp4": "video/mp4"}


def speaker_of(seg: SegmentResult) -> str:
    return seg.speaker or NO_SPEAKER


def build_eaf(timeline: Timeline) -> Eaf:
    """The timeline as a pympi ``Eaf`` object (tiers as described in the module docstring)."""
    from pympi.Elan import Eaf  # imported when an ELAN file is asked for

    eaf = Eaf(author="carat")
    eaf.remove_tier("default")
    if timeline.media_path:
        suffix = Path(timeline.media_path).suffix.lower()
        eaf.add_linked_file(timeline.media_path, mimetype=_MIMETYPES.get(suffix, "video/*"))
    segments = sorted(timeline.segments, key=lambda s: (s.start, s.index))
    for speaker in dict.fromkeys(speaker_of(s) for s in segments):
        own = [s for s in segments if speaker_of(s) == speaker and s.error is None]
        words = f"{speaker} words"
        eaf.add_tier(words, part=speaker)
        for seg in own:
            if seg.words:
                eaf.add_annotation(words, _ms(seg.start), _ms(seg.end), " ".join(seg.words))
        for label in timeline.label_names:
            tier = f"{speaker} {label}"
            eaf.add_tier(tier, part=speaker)
            for seg in own:
                score = next(s for s in seg.labels if s.label == label)
                if score.predicted:
                    eaf.add_annotation(
                        tier, _ms(seg.start), _ms(seg.end), f"{score.probability:.2f}"
                    )
    return eaf


@writer("eaf", RECORDING, "an ELAN file (a tier per speaker and label)")
def to_eaf(timeline: Timeline) -> bytes:
    """The ``.eaf`` file's content (UTF-8 XML): pympi writes files, so through a temporary one."""
    from pympi.Elan import to_eaf as write_eaf

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "timeline.eaf"
        write_eaf(str(path), build_eaf(timeline), pretty=True)
        return path.read_bytes()


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))
