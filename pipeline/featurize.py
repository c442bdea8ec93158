"""One path from a recording to its features: plan it into spans, then per span and modality
take the features from the cache or run the featurizer and store them.

``extract`` calls it inside its workers (whole clips, planned segments, the intervals of
interval labels for ``align --videos``); ``predict`` calls it in process. Both therefore share
one plan cache (a recording is planned once per segmentation: speech recognition is costly)
and one feature cache (keyed by each span's :meth:`~featurizers.span.Span.key`), and a file
extracted by one is free for the other.

Faces work per recording too: its face tracks (every face, stable ids) are computed once and
cached beside its features (:func:`face_tracks`); :func:`assign_faces` gives each span the face
its visual features come from (the one speaking with the voice, a speaker's own face, the
largest, or the one the user named), and a span's visual features are that track's rows.

Messages name the clip as the user gave it: an archive member is decoded from a temporary
spooled copy, whose path must not leak into an error line (:func:`readable`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from featurizers.active_speaker import AUTO, SPEAKER, FaceChoice, link_speakers
from featurizers.base import FeatureSequence, Featurizer, FeaturizerSpec, MediaError
from featurizers.face_tracks import FaceTracks
from featurizers.media import MediaClip
from featurizers.segments import SegmentationSpec, plan_segments, speaker_turns
from featurizers.span import WHOLE, Span
from featurizers.speakers import main_speaker
from pipeline.errors import PipelineError
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
    face: dict[str, Any] | None = None  # visual: the span's face, faces and face_how

    def status(self) -> dict[str, Any]:
        """The manifest's record of it: ``{"status", "entry", "seconds"}`` (and ``readable``
        for a truncated file; ``face`` for visual features made from face tracks) or
        ``{"status", "error"}``."""
        if self.error is not None:
            return {"status": FAILED, "error": self.error}
        done = {"status": DONE, "entry": self.entry}
        if self.seconds is not None:
            done["seconds"] = self.seconds
        if self.face is not None:
            done["face"] = self.face
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


def cached(
    store: FeatureStore,
    key: str,
    specs: Mapping[str, FeaturizerSpec],
    face: str | int = AUTO,
    span: Span | None = None,
) -> dict[str, str]:
    """modality -> entry name, for the modalities of ``specs`` whose features the store holds,
    verified, under cache ``key`` (entries written under a legacy name included); visual
    entries under the key of the ``face`` choice (see :func:`modality_key`)."""
    found = {
        modality: store.find(modality_key(key, modality, face, span), spec)
        for modality, spec in specs.items()
    }
    return {modality: entry for modality, entry in found.items() if entry is not None}


def modality_key(key: str, modality: str, face: str | int, span: Span | None = None) -> str:
    """The cache key of one modality of a span: ``key``, except for visual features chosen
    otherwise than by the default (``--face largest`` or an id, or a speaker's own face): those
    are another person's features of the same span."""
    speaker = getattr(span, "speaker", None)
    if modality != "visual" or (face == AUTO and speaker is None):
        return key
    return hashlib.sha256(f"{key}#face={face}#speaker={speaker}".encode()).hexdigest()


# --- faces ------------------------------------------------------------------------------------


class FaceOptionError(PipelineError):
    """``--face ID`` names a face the recording does not have."""


_last_tracks: dict[tuple[str, str], FaceTracks] = {}  # the last recording's, read once per span


def face_tracks(store: FeatureStore, clip: OpenedClip, media: MediaClip, visual: Any) -> FaceTracks:
    """The recording's face tracks: cached under its content hash, else computed and stored."""
    memo = (str(store.root), f"{clip.content_hash}.{visual.tracks_spec.key()}")
    if memo in _last_tracks:
        return _last_tracks[memo]
    stored = store.lookup(clip.content_hash, visual.tracks_spec)
    if stored is not None:
        tracks = FaceTracks.from_arrays(stored[1].features, stored[1].intervals)
    else:
        started = time.perf_counter()
        tracks = visual.tracks(media)
        features, intervals = tracks.to_arrays()
        seconds = round(time.perf_counter() - started, 4)
        meta = {"clip_id": clip.clip_id, "source": clip.source, "seconds": seconds}
        store.write(
            clip.content_hash, FeatureSequence(features, intervals, visual.tracks_spec), meta
        )
        log.info("%s: %d face tracks found", clip.clip_id, len(tracks.ids()))
    _last_tracks.clear()
    _last_tracks[memo] = tracks
    return tracks


def assign_faces(
    store: FeatureStore,
    clip: OpenedClip,
    media: MediaClip,
    spans: Sequence[Span],
    featurizers: Mapping[str, Featurizer],
) -> tuple[Span, ...]:
    """``spans`` with the face each one's visual features come from (``face``, ``faces``,
    ``face_how``), chosen under the visual featurizer's ``face`` mode; under ``auto`` a span
    with a ``speaker`` takes that speaker's face (:func:`~featurizers.active_speaker.
    link_speakers`) where it is seen. Spans are returned as they are without a multi-face
    visual featurizer.

    Raises FaceOptionError when ``--face ID`` names a face the recording does not have, and
    MediaError when its video cannot be decoded.
    """
    visual = featurizers.get("visual")
    if not hasattr(visual, "tracks_spec"):
        return tuple(spans)
    if not media.info.has_video:
        return tuple(replace(s, faces=0, face_how="no video") for s in spans)
    tracks = face_tracks(store, clip, media, visual)
    found = tracks.ids()
    if isinstance(visual.face, int) and visual.face not in found:
        faces = ", ".join(map(str, found)) or "none"
        raise FaceOptionError(
            f"{clip.source}: --face {visual.face}: no face {visual.face} in this recording "
            f"(faces found: {faces}); give one of them, auto or largest"
        )
    chosen = [_with_face(s, visual.choose(tracks, media, s.start, s.end)) for s in spans]
    links = link_speakers(chosen) if visual.face == AUTO else {}
    return tuple(_speaker_face(s, links, tracks) for s in chosen)


def _with_face(span: Span, choice: FaceChoice) -> Span:
    face = None if choice.face is None else str(choice.face)
    return replace(span, face=face, faces=choice.faces, face_how=choice.how)


def _speaker_face(span: Span, links: Mapping[str, str], tracks: FaceTracks) -> Span:
    """The span with its speaker's linked face, where that face is seen in it."""
    linked = links.get(getattr(span, "speaker", None) or "")
    if linked is None or linked == span.face or int(linked) not in tracks.ids(span.start, span.end):
        return span
    return replace(span, face=linked, face_how=f"{SPEAKER} ({span.speaker})")  # type: ignore[attr-defined]


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
    face = getattr(featurizers.get("visual"), "face", AUTO)
    results: dict[str, Features] = {}
    for modality, featurizer in featurizers.items():
        found = store.lookup(modality_key(key, modality, face, span), featurizer.spec)
        if found is not None:
            results[modality] = Features(*found, cached=True)
    missing = {m: f for m, f in featurizers.items() if m not in results}
    if not missing:
        return _noting_the_cut(media, results)
    if "visual" in missing and hasattr(missing["visual"], "tracks_spec"):
        results["visual"] = _visual(media, span, clip, missing.pop("visual"), store, face)
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


def _visual(
    media: MediaClip, span: Span, clip: OpenedClip, visual: Any, store: FeatureStore, face: Any
) -> Features:
    """A span's visual features: its face's rows of the recording's face tracks, stored under
    the span's visual key (the face is chosen here when the span has none yet)."""
    started = time.perf_counter()
    try:
        if span.faces is None:
            span = assign_faces(store, clip, media, [span], {"visual": visual})[0]
        tracks = face_tracks(store, clip, media, visual)
    except (MediaError, FaceOptionError) as exc:
        return Features(error=readable(str(exc), clip))
    end = float("inf") if span.whole else span.end
    track = None if span.face is None else int(span.face)
    sequence = visual.sequence(tracks, track, span.start, end)
    seconds = round(time.perf_counter() - started, 4)
    chosen = {"face": span.face, "faces": span.faces, "face_how": span.face_how}
    meta = {"clip_id": span.id, "source": clip.source, "seconds": seconds, **chosen}
    entry = store.write(
        modality_key(span.key(clip.content_hash), "visual", face, span), sequence, meta
    )
    return Features(entry, sequence, seconds=seconds, face=chosen)


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
