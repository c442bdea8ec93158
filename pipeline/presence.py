"""Which modalities a clip or segment really has, and model inputs that never fake the others.

A modality is absent when there is nothing of it to read: no words (text), no video frames or
no face in any of them (visual), no audio track or no voiced frame (audio); or when its
featurizer says why it gave nothing (``FeatureSequence.absent``: speech in a language the text
features do not cover). Absent modalities are
passed to the model as ``Batch.present = False`` so that CARAT takes its masked path; they are
never fed as zero features that it would read as data. Each absence carries a short reason that
every output shows.

Word-aligned models pool the visual and audio frames onto the words. A segment without words
would then have no rows at all, so its frames are pooled onto evenly spaced word-length slots
instead (text masked): the face and the voice still count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from carat.data.types import MODALITIES
from featurizers.base import FeatureSequence
from pipeline.align import AlignSettings, align_clips

WORD_SLOT_S = 0.4  # about one spoken word: the slot length for frames of a segment without words
_VOICED_DIM = "voiced"


def absence_reasons(
    sequences: Mapping[str, FeatureSequence], masks: Mapping[str, np.ndarray]
) -> dict[str, str]:
    """modality -> why it is absent, for one clip's sequences and its aligned masks ``[L]``."""
    missing: dict[str, str] = {}
    if len(sequences["text"].features) == 0:
        missing["text"] = sequences["text"].absent or "no words"
    if len(sequences["visual"].features) == 0:
        missing["visual"] = "no video frames"
    elif not masks["visual"].any():
        missing["visual"] = "no face"
    audio = sequences["audio"]
    if len(audio.features) == 0:
        missing["audio"] = "no audio track"
    elif _VOICED_DIM in audio.spec.dim_names:
        voiced = audio.features[:, audio.spec.dim_names.index(_VOICED_DIM)]
        if not (voiced > 0.5).any():
            missing["audio"] = "silence"
    if "audio" not in missing and not masks["audio"].any():
        missing["audio"] = "no audio frames"
    return missing


def word_slots(text: FeatureSequence, span: float, max_words: int) -> FeatureSequence:
    """Evenly spaced empty "words" over ``[0, span]`` for pooling frames of a clip without words:
    about ``WORD_SLOT_S`` long each, at most ``max_words`` of them."""
    count = int(max(1, min(max_words, np.ceil(span / WORD_SLOT_S))))
    edges = np.linspace(0.0, span, count + 1)
    return FeatureSequence(
        np.zeros((count, text.spec.dim), np.float32),
        np.stack([edges[:-1], edges[1:]], axis=1),
        text.spec,
        words=[""] * count,
    )


def _span(sequences: Mapping[str, FeatureSequence]) -> float:
    ends = [float(s.intervals[:, 1].max()) for s in sequences.values() if len(s.intervals)]
    return max(ends, default=0.0)


def model_inputs(
    clips: Sequence[Mapping[str, FeatureSequence]], settings: AlignSettings
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, list[dict[str, str]]]:
    """Aligned features and masks ``[n, L, D]`` / ``[n, L]`` for many clips, their presence
    ``[n, 3]`` bool (MODALITIES order) and, per clip, the absent modalities with the reason."""
    slotted = []
    for clip in clips:
        if settings.mode == "aligned" and len(clip["text"].features) == 0:
            slots = word_slots(clip["text"], _span(clip), settings.max_len["text"])
            clip = {**clip, "text": slots}
        slotted.append(clip)
    features, masks = align_clips(slotted, settings)
    reasons = []
    present = np.ones((len(clips), len(MODALITIES)), dtype=bool)
    for i, clip in enumerate(clips):
        missing = absence_reasons(clip, {m: masks[m][i] for m in MODALITIES})
        for modality in missing:
            present[i, MODALITIES.index(modality)] = False
        if "text" in missing:
            masks["text"][i] = 0
        reasons.append(missing)
    return features, masks, present, reasons
