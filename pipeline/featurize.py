"""One path from a recording to its features: plan it into spans, then per span and modality
take the features from the cache or run the featurizer and store them.

``extract`` calls it inside its workers (whole clips, planned segments, the intervals of
interval labels for ``align --videos``); ``predict`` calls it in process. Both therefore share
one plan cache (a recording is planned once per segmentation: speech recognition is costly)
and one feature cache (keyed by each span's :meth:`~featurizers.span.Span.key`), and a file
extracted by one is free for the other.

Messages name the clip as the user gave it: an archive member is decoded from a temporary
spooled copy, whose path must not leak into an error line (:func:`readable`).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from featurizers.base import FeatureSequence, Featurizer, FeaturizerSpec, MediaError
from featurizers.media import MediaClip
from featurizers.segments import SegmentationSpec, plan_segments, speaker_turns
from featurizers.span import WHOLE, Span
from featurizers.speakers import main_speaker
from pipeline.sources import OpenedClip
from pipeline.store import DONE, FAILED, FeatureStore, Plan

log = logging.getLogger(__name__)

# A labelled interval may end this far past the recording's length (rounding of label times).
INTERVAL_END_SLACK_S = 0.5


@dataclass
class Features:
    """One modality of one span: its features (``cached`` when read from the store), or the
    one-line reason there are none (``error``)."""

    entry: str | None = None
    sequence: FeatureSequence | None = None
    cached: bool = False
    seconds: float | None = None
    error: str | None = None
    readable: str | None = None  # where a truncated recording's readable part ends

    def status(self) -> dict[str, Any]:
        """The manifest's record of it: ``{"status", "entry", "seconds"}`` (and ``readable``
        for a truncated file) or ``{"status", "error"}``."""
        if self.error is not None:
            return {"status": FAILED, "error": self.error}
        done = {"status": DONE, "entry": self.entry}
        if self.seconds is not None:
            done["seconds"] = self.seconds
        return done if self.readable is None else {**done, "readable": self.readable}


def readable(text: str, clip: OpenedClip) -> str:
    """The first line of ``text`` with the clip's files named as the user gave them, not as
    their spooled temporary copies: ``a.tar:x.mp4``, ``a.tar:x.mp4 (.srt sidecar)``."""
    if clip.path != Path(clip.source):
        for sidecar in clip.sidecars:
            text = text.replace(str(sidecar), f"{clip.source} ({sidecar.suffix} sidecar)")
        text = text.replace(str(clip.path), clip.source)
    lines = text.strip().splitlines()
    return lines[0] if lines else "unknown error"


# --- planning ---------------------------------------------------------------------------------


def plan(
    store: FeatureStore,
    clip: OpenedClip,
    segmentation: SegmentationSpec,
    media: MediaClip | None = None,
    transcript: Path | None = None,
) -> Plan:
    """``clip`` cut into spans under ``segmentation``: the cached plan, else planned (opening
    ``media`` when not given) and cached. A plan made with an explicit ``transcript`` (not part
    of the clip's content hash) is neither read from nor written to the cache.

    Raises MediaError (or SegmentOptionError) when the recording cannot be planned.
    """
    key = segmentation.to_dict()
    cached = None if transcript is not None else store.read_plan(clip.content_hash, key)
    if cached is None:
        media = media or MediaClip(clip.path, decode_threads=1)
        spans = tuple(plan_segments(media, segmentation, transcript))
        cached = Plan(float(media.info.duration), spans)
        if transcript is None:
            store.write_plan(clip.content_hash, key, cached)
    return Plan(cached.duration, tuple(s.of(clip.clip_id) for s in cached.spans))


def given_plan(
    clip: OpenedClip, intervals: Sequence[Span], media: MediaClip, speakers: str = "none"
) -> tuple[Plan, dict[str, str]]:
    """The spans of interval labels as the recording's plan, and those that do not fit in it
    (span id -> one line saying why). ``speakers`` (auto or a count): the recording is
    diarized and each span named after the speaker heard most in it (spans are not cut: their
    labels are for the whole interval)."""
    duration = float(media.info.duration)
    turns = speaker_turns(media, SegmentationSpec(speakers=speakers))
    spans, problems = [], {}
    for interval in intervals:
        span = interval.of(clip.clip_id)
        if duration > 0 and span.end > duration + INTERVAL_END_SLACK_S:
            problems[span.id] = (
                f"interval {span.start:g}-{span.end:g} s ends after {clip.source} "
                f"({duration:.2f} s long); fix the row's times or give the full recording; "
                "the interval is left out"
            )
        else:
            spans.append(replace(span, speaker=main_speaker(turns, span)))
    return Plan(duration, tuple(spans)), problems


# --- features ---------------------------------------------------------------------------------


def whole(clip: OpenedClip, media: MediaClip) -> Span:
    """The recording as one span (a clip that is not cut)."""
    return Span(0.0, media.info.duration, WHOLE, recording=clip.clip_id)


def cached(store: FeatureStore, key: str, specs: Mapping[str, FeaturizerSpec]) -> dict[str, str]:
    """modality -> entry name, for the modalities of ``specs`` whose features the store holds,
    verified, under cache ``key`` (entries written under a legacy name included)."""
    found = {modality: store.find(key, spec) for modality, spec in specs.items()}
    return {modality: entry for modality, entry in found.items() if entry is not None}


def features(
    media: MediaClip,
    span: Span,
    clip: OpenedClip,
    featurizers: Mapping[str, Featurizer],
    store: FeatureStore,
) -> dict[str, Features]:
    """Each modality's features of ``span`` of ``media``: from the store, else extracted and
    stored at once (so an interrupted run keeps them).

    A failing featurizer is an answer, not an exception: its modality gets the one-line reason
    and the others still run. Only infrastructure errors (out of memory) escape.
    """
    key = span.key(clip.content_hash)
    results: dict[str, Features] = {}
    for modality, featurizer in featurizers.items():
        found = store.lookup(key, featurizer.spec)
        if found is not None:
            results[modality] = Features(*found, cached=True)
    missing = {m: f for m, f in featurizers.items() if m not in results}
    if not missing:
        return _noting_the_cut(media, results)
    try:  # one view for every featurizer: a segment's sound is decoded once
        view = media if span.whole else media.segment(span.start, span.end, span.text)
    except MediaError as exc:
        return {**results, **dict.fromkeys(missing, Features(error=readable(str(exc), clip)))}
    for modality, featurizer in missing.items():
        results[modality] = _extract(
            view, span, clip, modality, featurizer, key, store, media.info.readable
        )
    return _noting_the_cut(media, {m: results[m] for m in featurizers})


def _noting_the_cut(media: MediaClip, results: dict[str, Features]) -> dict[str, Features]:
    """Each result of a truncated recording says where its readable part ends."""
    for found in results.values():
        if found.error is None:
            found.readable = media.info.readable
    return results


def _extract(
    view: Any,  # MediaClip or SegmentClip
    span: Span,
    clip: OpenedClip,
    modality: str,
    featurizer: Featurizer,
    key: str,
    store: FeatureStore,
    readable_part: str | None,
) -> Features:
    started = time.perf_counter()
    try:
        sequence = featurizer.extract(view)
    except MediaError as exc:
        return Features(error=readable(str(exc), clip))
    except MemoryError:
        raise
    except Exception as exc:  # a featurizer bug must not stop the batch
        log.debug("%s: %s failed\n%s", span.id, modality, traceback.format_exc())
        return Features(
            error=readable(f"{type(exc).__name__} in the {modality} featurizer: {exc}", clip)
        )
    seconds = round(time.perf_counter() - started, 4)
    meta = {"clip_id": span.id, "source": clip.source, "seconds": seconds}
    if readable_part is not None:  # the entry holds only the readable part, and says so
        meta["readable"] = readable_part
    entry = store.write(key, sequence, meta)
    log.info("%s: %s features extracted", span.id, modality)
    return Features(entry, sequence, seconds=seconds)
