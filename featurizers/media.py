"""Open a clip once, then stream its frames and decode its audio with PyAV.

PyAV ships its own FFmpeg, so no system tools are needed. Frames are streamed one at a time with
their presentation timestamps (seconds from the start of the clip), so memory does not grow with
clip length, variable frame rate is handled by the timestamps themselves, and rotation metadata
(the display matrix phones write) is applied so faces come out upright. The audio track is
decoded once, to 16 kHz mono float32, and kept on the object.

Every problem a user can fix surfaces as a one-line ``MediaError``: the file, what is wrong,
what to do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from featurizers.base import MediaError

log = logging.getLogger(__name__)

AUDIO_RATE = 16000
_TICK_TOLERANCE_S = 1e-3  # frame times within 1 ms of a target tick count as on it
# A stream that decodes to less than its declared length by more than this was cut short
# (an mp4 with its index at the front still opens when its tail is missing).
_TRUNCATION_S = 0.5


@dataclass(frozen=True)
class MediaInfo:
    """What a clip holds. ``width``/``height`` are as displayed (after rotation).

    ``rotation`` is the counter-clockwise turn in degrees that the display matrix asks for,
    rounded to a quarter turn (0, 90, 180 or 270); ``frames()`` applies it.
    """

    duration: float
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int | None
    height: int | None
    rotation: int


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
            duration = _duration(container)
            for kind, stream in (("video", video), ("audio", audio)):
                if stream is not None and stream.duration and stream.time_base:
                    self._spans[kind] = float(stream.duration * stream.time_base)
            first = self._first_frame(container, video, audio is not None) if video else None
            if first is None:
                info = MediaInfo(duration, False, True, None, None, None, 0)
            else:
                rotation = int(round(first.rotation / 90)) * 90 % 360  # flips are ignored
                width, height = first.width, first.height
                if rotation in (90, 270):
                    width, height = height, width
                rate = video.average_rate or video.guessed_rate
                fps = float(rate) if rate else None
                info = MediaInfo(duration, True, audio is not None, fps, width, height, rotation)
        log.debug("%s: %s", self.path, info)
        return info

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
        if self._video_error is not None:
            raise self._video_error
        if not self.info.has_video:
            raise self._fail(
                "has no video stream",
                "only audio-based features (acoustic, words) can be extracted from it",
            )
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        size = _scaled_size(self.info, max_side)
        next_tick = 0.0
        with self._open() as container:
            video = _video_stream(container)
            self._configure(video)
            origin = _origin(container)
            t = 0.0
            try:
                for frame in container.decode(video):
                    if frame.time is None:
                        continue
                    t = frame.time - origin
                    if fps is not None:
                        if t + _TICK_TOLERANCE_S < next_tick:
                            continue
                        next_tick = (np.floor((t + _TICK_TOLERANCE_S) * fps) + 1) / fps
                    yield t, self._to_rgb(frame, size)
            except av.error.FFmpegError as exc:
                raise self._fail(
                    f"video decoding failed after {t:.2f} s ({_ffmpeg_reason(exc)})",
                    "the file is damaged or truncated; re-export it",
                ) from None
        self._check_complete("video", t + 1 / (self.info.fps or 30.0))

    def _to_rgb(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
        """Scale (in the stored orientation) and convert to RGB, then rotate upright."""
        quarter_turns = self.info.rotation // 90
        if size is not None:
            width, height = size if quarter_turns % 2 == 0 else size[::-1]
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        else:
            rgb = frame.to_ndarray(format="rgb24")
        if quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))
        return rgb

    # --- audio ------------------------------------------------------------------------------

    def audio(self, sample_rate: int = AUDIO_RATE) -> np.ndarray:
        """The whole audio track as float32 mono at ``sample_rate``, index 0 at clip time 0.

        The default rate is decoded once and cached on the object (the acoustic and words
        featurizers share it); another rate is decoded afresh on each call.
        """
        if sample_rate == AUDIO_RATE and self._audio is not None:
            return self._audio
        if not self.info.has_audio:
            raise self._fail(
                "has no audio stream",
                "acoustic and words features need sound; extract only the visual features",
            )
        samples = self._decode_audio(sample_rate)
        if sample_rate == AUDIO_RATE:
            self._audio = samples
        return samples

    def _decode_audio(self, sample_rate: int) -> np.ndarray:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        with self._open() as container:
            stream = container.streams.audio[0]
            origin = _origin(container)
            start: float | None = None
            try:
                for frame in container.decode(stream):
                    if start is None and frame.time is not None:
                        start = frame.time - origin
                    chunks.extend(out.to_ndarray()[0] for out in resampler.resample(frame))
                chunks.extend(out.to_ndarray()[0] for out in resampler.resample(None))
            except av.error.FFmpegError as exc:
                raise self._fail(
                    f"audio decoding failed ({_ffmpeg_reason(exc)})",
                    "the file is damaged or truncated; re-export it",
                ) from None
        if not chunks:
            raise self._fail("audio stream has no decodable sound", "re-export the clip")
        samples = np.concatenate(chunks).astype(np.float32, copy=False)
        self._check_complete("audio", len(samples) / sample_rate)
        lead = int(round(max(start or 0.0, 0.0) * sample_rate))
        if lead:  # the sound starts after the video: keep sample 0 at clip time 0
            samples = np.concatenate([np.zeros(lead, np.float32), samples])
        return samples

    def _check_complete(self, kind: str, decoded_s: float) -> None:
        declared = self._spans.get(kind)
        if declared is not None and decoded_s < declared - max(_TRUNCATION_S, 0.05 * declared):
            raise self._fail(
                f"{kind} stops at {decoded_s:.2f} s of the {declared:.2f} s declared (truncated)",
                "re-copy or re-export the clip",
            )

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
