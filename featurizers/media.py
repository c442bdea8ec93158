"""Open a clip once, then stream its frames and decode its audio with PyAV.

PyAV ships its own FFmpeg, so no system tools are needed. Frames are streamed one at a time with
their presentation timestamps (seconds from the start of the clip), so memory does not grow with
clip length, variable frame rate is handled by the timestamps themselves, and rotation metadata
(the display matrix phones write) is applied so faces come out upright. The audio track is
decoded once, to 16 kHz mono float32, and kept on the object.

A long recording is read in pieces: ``segment(start, end)`` gives a view with the same interface
whose frames and audio are only that range (timestamps from its start), decoded after a seek, and
``audio_blocks`` streams the sound in blocks, so memory does not grow with the recording's length.

Every problem a user can fix surfaces as a one-line ``MediaError``: the file, what is wrong,
what to do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type

from featurizers.base import MediaError

log = logging.getLogger(__name__)

AUDIO_RATE = 16000
_TICK_TOLERANCE_S = 1e-3  # frame times within 1 ms of a target tick count as on it
# A stream that decodes to less than its declared length by more than this was cut short
# (an mp4 with its index at the front still opens when its tail is missing).
_TRUNCATION_S = 0.5
# Audio decoding after a seek starts this much earlier and drops it: AAC/MP3 frames overlap, so
# the first frames a decoder outputs after a jump differ from a decode from the start.
_AUDIO_PREROLL_S = 0.5
# Finding the readable length reads the last _TAIL_S seconds of packets first (cheap), the
# whole file only when they stop short.
_TAIL_S = 3.0
_APART_S = 1.0  # video and audio stopping this far apart get a warning
_ANGLE_TOLERANCE_DEG = 1.0  # a display rotation this close to a quarter turn is one
# A segment may end this far past the recording's declared length (rounding in cue times).
_SEGMENT_END_SLACK_S = 0.5


@dataclass(frozen=True)
class MediaInfo:
    """What a clip holds. ``width``/``height`` are as displayed (after rotation).

    ``rotation`` is the counter-clockwise turn in degrees that the display matrix asks for,
    rounded to a quarter turn (0, 90, 180 or 270), and ``mirrored`` whether it also flips the
    picture left-right; ``frames()`` applies both. ``duration`` is the readable length:
    shorter than ``declared`` (the header's) when the file was cut short.
    """

    duration: float
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int | None
    height: int | None
    rotation: int
    mirrored: bool = False
    declared: float | None = None

    @property
    def truncated(self) -> bool:
        """The file ends before the length its header declares."""
        return self.declared is not None and self.duration < self.declared - _TRUNCATION_S

    @property
    def orientation(self) -> str:
        """What was done to the stored picture: "upright", "turned 90°", "mirrored", ..."""
        done = [f"turned {self.rotation}°"] if self.rotation else []
        done += ["mirrored"] if self.mirrored else []
        return ", ".join(done) or "upright"

    @property
    def readable(self) -> str | None:
        """ "readable to 2.60 s of 4.93 s (truncated)" for a cut file, else None."""
        if not self.truncated:
            return None
        return f"readable to {self.duration:.2f} s of {self.declared:.2f} s (truncated)"


class MediaClip:
    """A video or audio file opened for feature extraction.

    Opening probes the file (streams, duration, rotation, and one decoded video frame), so a
    broken file fails here with a clear message. ``decode_threads`` is passed to FFmpeg's
    decoder (0 lets FFmpeg choose; a worker pool should pass 1).
    """

    def __init__(self, path: str | Path, decode_threads: int = 0) -> None:
        self.path = Path(path)
        self.decode_threads = decode_threads
        self._audio: np.ndarray | None = None
        self._hash: str | None = None
        self._spans: dict[str, float] = {}  # declared length of the video / audio stream
        self._video_error: MediaError | None = None  # a video stream that cannot be decoded
        self.info = self._probe()

    def __repr__(self) -> str:
        return f"MediaClip({str(self.path)!r})"

    # --- opening ----------------------------------------------------------------------------

    def _fail(self, what: str, todo: str) -> MediaError:
        return MediaError(f"{self.path}: {what}; {todo}")

    def _open(self) -> av.container.InputContainer:
        try:
            return av.open(str(self.path), mode="r", metadata_errors="replace")
        except FileNotFoundError:
            raise self._fail("file not found", "check the path") from None
        except IsADirectoryError:
            raise self._fail("is a folder, not a media file", "pass the clips inside it") from None
        except av.error.FFmpegError as exc:
            raise self._fail(
                f"not a readable video or audio file ({_ffmpeg_reason(exc)})",
                "check that it is a complete video/audio file, not truncated or mis-named",
            ) from None

    def _probe(self) -> MediaInfo:
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise self._fail("file is empty (0 bytes)", "re-copy or re-export the clip")
        with self._open() as container:
            video = _video_stream(container)
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None and audio is None:
                raise self._fail("has no video or audio stream", "pass a video or audio file")
            declared = _duration(container)
            streams = {k: s for k, s in (("video", video), ("audio", audio)) if s is not None}
            indexes = {kind: stream.index for kind, stream in streams.items()}
            for kind, stream in streams.items():
                self._spans[kind] = (
                    float(stream.duration * stream.time_base)
                    if stream.duration and stream.time_base
                    else declared
                )
            first = self._first_frame(container, video, audio is not None) if video else None
            rate = video.average_rate or video.guessed_rate if video else None
        duration = self._readable_length(indexes, declared)
        if first is None:
            info = MediaInfo(duration, False, True, None, None, None, 0, declared=declared)
        else:
            rotation, mirrored = self._orientation(first)
            width, height = first.width, first.height
            if rotation in (90, 270):
                width, height = height, width
            fps = float(rate) if rate else None
            info = MediaInfo(
                duration, True, audio is not None, fps, width, height, rotation, mirrored, declared
            )
        if info.truncated:
            log.warning("%s: %s; using the readable part", self.path, info.readable)
        log.debug("%s: %s", self.path, info)
        return info

    def _orientation(self, frame: av.VideoFrame) -> tuple[int, bool]:
        """(quarter turns counter-clockwise x 90, mirrored) from the frame's display matrix.

        A turn that is not a multiple of 90 degrees is rounded to the nearest one, with a
        warning: the analysis turns whole quarter turns only.
        """
        matrix = frame.side_data.get(Type.DISPLAYMATRIX)
        if matrix is None:
            return 0, False
        a, b, _, c, d = struct.unpack("<9i", bytes(matrix))[:5]
        mirrored = a * d - b * c < 0
        if mirrored:  # undo the flip (of the x axis) to read the rotation that remains
            a, c = -a, -c
        angle = math.degrees(math.atan2(c, a)) % 360
        quarter = int(round(angle / 90)) % 4 * 90
        if abs((angle - quarter + 180) % 360 - 180) > _ANGLE_TOLERANCE_DEG:
            log.warning(
                "%s: display rotation of %.0f degrees is not a multiple of 90; "
                "the picture is turned %d degrees (the nearest quarter turn)",
                self.path,
                angle,
                quarter,
            )
        return quarter, mirrored

    def _readable_length(self, streams: dict[str, int], declared: float) -> float:
        """How far the file can be read: its declared length, or where its packets stop.

        The tail is read first (cheap); only when it ends short is the whole file demuxed.
        Each stream's expected decoded length (``_spans``) becomes what can be read of it, and
        streams that stop far apart get a warning (the rest of the picture or sound is absent).
        """
        if not streams:
            return declared
        wanted = {index: kind for kind, index in streams.items()}

        def complete(ends: dict[str, float]) -> bool:
            return all(ends.get(k, 0.0) >= self._spans[k] - _TRUNCATION_S for k in streams)

        ends = self._packet_ends(wanted, max(declared - _TAIL_S, 0.0))
        if not complete(ends):
            ends = self._packet_ends(wanted, 0.0)
        cut = bool(ends) and not complete(ends)
        if cut:
            for kind in streams:
                self._spans[kind] = min(self._spans[kind], ends.get(kind, 0.0))
        if len(streams) == 2 and abs(self._spans["video"] - self._spans["audio"]) > _APART_S:
            log.warning(
                "%s: the streams stop at different times (video %.2f s, audio %.2f s); "
                "past the shorter one that modality is absent",
                self.path,
                self._spans["video"],
                self._spans["audio"],
            )
        return min(declared, max(ends.values())) if cut else declared

    def _packet_ends(self, wanted: dict[int, str], start: float) -> dict[str, float]:
        """kind -> clip time where the last packet of that stream ends, demuxing from ``start``
        (to the end of the file, or the first place it cannot be read)."""
        ends: dict[str, float] = {}
        with self._open() as container:
            origin = _origin(container)
            try:
                if start > 0:
                    container.seek(int((start + origin) * av.time_base))
                for packet in container.demux():
                    kind = wanted.get(packet.stream.index)
                    if kind is None or packet.pts is None or packet.time_base is None:
                        continue
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
                    ends[kind] = max(ends.get(kind, 0.0), end)
            except av.error.FFmpegError as exc:
                log.debug("%s: demuxing stopped (%s)", self.path, _ffmpeg_reason(exc))
        return ends

    def _first_frame(
        self,
        container: av.container.InputContainer,
        video: av.video.stream.VideoStream,
        has_audio: bool,
    ) -> av.VideoFrame | None:
        """The first picture; None (the error kept for ``frames``) when only the sound works."""
        self._configure(video)
        try:
            for frame in container.decode(video):
                return frame
            error = self._fail(
                "video stream has no decodable frame",
                "the file is damaged or truncated; re-export it",
            )
        except av.error.FFmpegError as exc:
            error = self._fail(
                f"video stream cannot be decoded ({_ffmpeg_reason(exc)})",
                "the file is damaged or truncated; re-export it",
            )
        if not has_audio:
            raise error
        log.warning("%s (its audio is still used)", error)
        self._video_error = error
        return None

    def _configure(self, video: av.video.stream.VideoStream) -> None:
        video.thread_type = "AUTO"
        video.thread_count = self.decode_threads

    # --- frames -----------------------------------------------------------------------------

    def frames(
        self, fps: float | None = None, max_side: int | None = None
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``(seconds, RGB uint8 [H, W, 3])`` for each frame, upright, in display order.

        ``fps`` thins the stream to at most that rate: a frame is kept when its timestamp
        reaches the next 1/fps tick (frames are never duplicated, and each keeps its real
        timestamp, so variable frame rate stays correct). ``max_side`` shrinks frames whose
        longer side exceeds it, keeping the aspect ratio (scaled in FFmpeg, before conversion).
        """
        return self.frames_between(0.0, None, fps, max_side)

    def frames_between(
        self,
        start: float,
        end: float | None,
        fps: float | None = None,
        max_side: int | None = None,
    ) -> Iterator[tuple[float, np.ndarray]]:
        """The frames shown in ``[start, end)`` (``end=None``: to the end), timed from ``start``.

        Decoding seeks to the keyframe before ``start`` and stops at ``end``; thinning ticks
        count from ``start``, so the result is what :meth:`frames` gives on a clip cut there.
        """
        if self._video_error is not None:
            raise self._video_error
        if not self.info.has_video:
            raise self._fail(
                "has no video stream",
                "only its audio and text (words) features can be extracted",
            )
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        return self._frames(start, end, fps, _scaled_size(self.info, max_side))

    def _frames(
        self,
        start: float,
        end: float | None,
        fps: float | None,
        size: tuple[int, int] | None,
    ) -> Iterator[tuple[float, np.ndarray]]:
        next_tick = 0.0
        with self._open() as container:
            video = _video_stream(container)
            self._configure(video)
            origin = _origin(container)
            if start > 0:
                # backward: the keyframe at or before start, then decode forward to it
                container.seek(int((start + origin) / video.time_base), stream=video)
            t = start
            try:
                for frame in container.decode(video):
                    if frame.time is None:
                        continue
                    t = frame.time - origin
                    if t + _TICK_TOLERANCE_S < start:
                        continue
                    if end is not None and t + _TICK_TOLERANCE_S >= end:
                        break
                    rel = max(t - start, 0.0)
                    if fps is not None:
                        if rel + _TICK_TOLERANCE_S < next_tick:
                            continue
                        next_tick = (np.floor((rel + _TICK_TOLERANCE_S) * fps) + 1) / fps
                    yield rel, self._to_rgb(frame, size)
            except av.error.FFmpegError as exc:
                if not self._at_cut("video", t):
                    raise self._fail(
                        f"video decoding failed after {t:.2f} s ({_ffmpeg_reason(exc)})",
                        "the file is damaged or truncated; re-export it",
                    ) from None
        if end is None or t + _TICK_TOLERANCE_S < end:
            self._check_complete("video", t + 1 / (self.info.fps or 30.0), end)

    def _to_rgb(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
        """Scale (in the stored orientation) and convert to RGB, then turn (and mirror) it as
        the display matrix asks."""
        quarter_turns = self.info.rotation // 90
        if size is not None:
            # shrink in the decoder's own pixel format, then convert: half the time of one
            # combined scale-and-convert step on 4K frames (20 vs 44 ms a frame), within 0.8
            # grey levels of it; area averaging suits a shrink
            width, height = size if quarter_turns % 2 == 0 else size[::-1]
            frame = frame.reformat(width=width, height=height, interpolation="AREA")
        rgb = frame.to_ndarray(format="rgb24")
        if quarter_turns:
            rgb = np.rot90(rgb, k=quarter_turns)
        if self.info.mirrored:
            rgb = np.fliplr(rgb)
        return np.ascontiguousarray(rgb)

    # --- audio ------------------------------------------------------------------------------

    def audio(self, sample_rate: int = AUDIO_RATE) -> np.ndarray:
        """The whole audio track as float32 mono at ``sample_rate``, index 0 at clip time 0.

        The default rate is decoded once and cached on the object (the audio and words
        featurizers share it); another rate is decoded afresh on each call. For a long
        recording use :meth:`segment` or :meth:`audio_blocks` instead: this holds all of it.
        """
        if sample_rate == AUDIO_RATE and self._audio is not None:
            return self._audio
        samples = self.audio_between(0.0, None, sample_rate)
        if sample_rate == AUDIO_RATE:
            self._audio = samples
        return samples

    def audio_between(
        self, start: float, end: float | None, sample_rate: int = AUDIO_RATE
    ) -> np.ndarray:
        """The sound of ``[start, end)`` (``end=None``: to the end); index 0 at ``start``."""
        chunks = list(self._audio_chunks(sample_rate, start, end))
        if not chunks:
            if start == 0.0:
                raise self._fail("audio stream has no decodable sound", "re-export the clip")
            return np.zeros(0, np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def audio_blocks(
        self,
        sample_rate: int = AUDIO_RATE,
        block_s: float = 30.0,
        start: float = 0.0,
        end: float | None = None,
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Stream the sound of ``[start, end)`` as ``(clip seconds of the first sample, samples)``.

        Blocks are contiguous, ``block_s`` long (the last one shorter), and together equal
        :meth:`audio_between` over the same range; only one block is held at a time.
        """
        if block_s <= 0:
            raise ValueError(f"block_s must be positive, got {block_s}")
        size = max(1, int(round(block_s * sample_rate)))
        pending: list[np.ndarray] = []
        held = 0
        first = int(round(start * sample_rate))
        for chunk in self._audio_chunks(sample_rate, start, end):
            pending.append(chunk)
            held += len(chunk)
            while held >= size:
                joined = np.concatenate(pending)
                yield first / sample_rate, joined[:size]
                first += size
                pending, held = [joined[size:]], len(joined) - size
        if held:
            yield first / sample_rate, np.concatenate(pending)

    def _audio_chunks(
        self, sample_rate: int, start: float, end: float | None
    ) -> Iterator[np.ndarray]:
        """Decoded float32 chunks whose first sample is at clip time ``start``.

        Sound that starts after ``start`` (audio beginning later than the picture) is preceded
        by zeros, so sample positions always follow clip time. After a seek the decoder starts
        ``_AUDIO_PREROLL_S`` early and that part is dropped, so the samples equal a decode of
        the whole track.
        """
        if not self.info.has_audio:
            raise self._fail(
                "has no audio stream",
                "audio and words features need sound; extract only the visual features",
            )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        wanted = int(round(start * sample_rate))  # clip sample index of the next one to give
        stop = None if end is None else int(round(end * sample_rate))
        position: int | None = None  # clip sample index of the next decoded sample
        decoded = 0
        with self._open() as container:
            stream = container.streams.audio[0]
            origin = _origin(container)
            if start > _AUDIO_PREROLL_S:
                target = start - _AUDIO_PREROLL_S + origin
                container.seek(int(target / stream.time_base), stream=stream)
            try:
                for frame in container.decode(stream):
                    if position is None:
                        if frame.time is None:
                            continue
                        position = int(round(max(frame.time - origin, 0.0) * sample_rate))
                        if position > wanted:  # the sound starts later: keep clip time
                            yield np.zeros(position - wanted, np.float32)
                            wanted = position
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray()[0]
                        decoded += len(samples)
                        piece, position, wanted = _take(samples, position, wanted, stop)
                        if piece is not None:
                            yield piece
                    if stop is not None and position >= stop:
                        return
                for out in resampler.resample(None):
                    samples = out.to_ndarray()[0]
                    decoded += len(samples)
                    piece, position, wanted = _take(samples, position or 0, wanted, stop)
                    if piece is not None:
                        yield piece
            except av.error.FFmpegError as exc:
                if not self._at_cut("audio", (position or 0) / sample_rate):
                    raise self._fail(
                        f"audio decoding failed ({_ffmpeg_reason(exc)})",
                        "the file is damaged or truncated; re-export it",
                    ) from None
        self._check_complete("audio", start if position is None else position / sample_rate, end)

    def _at_cut(self, kind: str, decoded_s: float) -> bool:
        """A decoding error at the end of a truncated file's readable part (its last packet is
        cut through): the stream simply ends there."""
        return self.info.truncated and decoded_s >= self._spans[kind] - _TRUNCATION_S

    def _check_complete(self, kind: str, decoded_s: float, end: float | None = None) -> None:
        """Fail when the stream stopped well before its declared length (or before ``end``)."""
        declared = self._spans.get(kind)
        if declared is None:
            return
        if end is not None and end < declared:
            if decoded_s < end - _TRUNCATION_S:
                raise self._fail(
                    f"{kind} stops at {decoded_s:.2f} s of the {declared:.2f} s declared "
                    "(truncated)",
                    "re-copy or re-export the clip",
                )
            return
        if decoded_s < declared - max(_TRUNCATION_S, 0.05 * declared):
            raise self._fail(
                f"{kind} stops at {decoded_s:.2f} s of the {declared:.2f} s declared (truncated)",
                "re-copy or re-export the clip",
            )

    # --- segments -----------------------------------------------------------------------------

    def segment(self, start: float, end: float, text: str | None = None) -> SegmentClip:
        """A view of ``[start, end)`` that the featurizers take like a clip cut there.

        ``text``: the words known to be said in it (from speech recognition while segmenting),
        used by the words featurizer instead of recognising the segment again. An end up to
        ``_SEGMENT_END_SLACK_S`` past the recording is clipped to it.
        """
        duration = self.info.duration
        if not 0.0 <= start < end or (duration > 0 and end > duration + _SEGMENT_END_SLACK_S):
            readable = self.info.readable
            inside = f"0-{duration:.2f} s" + (f", {readable}" if readable else "")
            raise self._fail(
                f"segment {start:.2f}-{end:.2f} s is not inside the recording ({inside})",
                "give segments with 0 <= start < end <= the recording's length",
            )
        return SegmentClip(self, start, min(end, duration) if duration > 0 else end, text)

    # --- identity ---------------------------------------------------------------------------

    def content_hash(self) -> str:
        """SHA-256 of the whole file's bytes (hex), streamed; the feature store's cache key.

        A full hash rather than a sampled one: it costs ~1 s per GB, small next to extraction,
        and two different clips can never share cached features.
        """
        if self._hash is None:
            with open(self.path, "rb") as fh:
                self._hash = hashlib.file_digest(fh, "sha256").hexdigest()
        return self._hash


def _take(
    samples: np.ndarray, position: int, wanted: int, stop: int | None
) -> tuple[np.ndarray | None, int, int]:
    """The part of ``samples`` (clip samples from ``position``) in ``[wanted, stop)``.

    Returns (that part or None, the position after ``samples``, the next wanted index).
    """
    after = position + len(samples)
    lo = max(wanted - position, 0)
    hi = len(samples) if stop is None else min(len(samples), stop - position)
    if hi <= lo:
        return None, after, wanted
    return samples[lo:hi], after, position + hi


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream; cover art attached to an audio file does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    """FFmpeg's own short reason, without the file name PyAV appends."""
    return exc.strerror or type(exc).__name__


def _origin(container: av.container.InputContainer) -> float:
    """The container's start time in seconds: clip time 0 for every stream."""
    if container.start_time is None:
        return 0.0
    return container.start_time / av.time_base


def _duration(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    spans = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base
    ]
    return max(spans, default=0.0)


def _scaled_size(info: MediaInfo, max_side: int | None) -> tuple[int, int] | None:
    """Display (width, height) fitting ``max_side``, even-sized; None when no scaling is needed."""
    if max_side is None or info.width is None or info.height is None:
        return None
    longest = max(info.width, info.height)
    if longest <= max_side:
        return None
    scale = max_side / longest
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)


class SegmentClip:
    """The ``[start, end)`` range of a recording, with the interface featurizers use on a clip.

    Frames and audio are only that range, timed from ``start``, decoded by seeking in the
    parent (nothing outside the range is held), so featurizers give what they would on a clip
    cut there. Its cache key is its span's (``featurizers.span.Span.key``).
    """

    def __init__(self, parent: MediaClip, start: float, end: float, text: str | None) -> None:
        self.parent = parent
        self.start = float(start)
        self.end = float(end)
        self.text = text
        self.path = parent.path
        self.decode_threads = parent.decode_threads
        # a range is not a truncated file: where the recording stops is the parent's to say
        self.info = replace(parent.info, duration=self.end - self.start, declared=None)
        self._audio: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"MediaClip({str(self.path)!r})[{self.start:.2f}-{self.end:.2f} s]"

    def frames(
        self, fps: float | None = None, max_side: int | None = None
    ) -> Iterator[tuple[float, np.ndarray]]:
        """As :meth:`MediaClip.frames`, for this range only; times from the segment's start."""
        return self.parent.frames_between(self.start, self.end, fps, max_side)

    def audio(self, sample_rate: int = AUDIO_RATE) -> np.ndarray:
        """This range's sound (cached at the default rate); index 0 at the segment's start."""
        if sample_rate == AUDIO_RATE and self._audio is not None:
            return self._audio
        samples = self.parent.audio_between(self.start, self.end, sample_rate)
        if sample_rate == AUDIO_RATE:
            self._audio = samples
        return samples
