"""Build a long recording from the committed sample utterances, with known utterance times.

Used by tests/test_segments.py and bench/segments.py. The demo sample clips (espeak speech over
a warped astronaut portrait, ``pipeline/sample_data/clips``) are concatenated with silent gaps
between them; a longer silent stretch (the face still shown) and a stretch without a face
(a grey picture while utterances go on) can be planted. What was planted is returned: each
utterance's speech span in recording time (found from its sound), its words and whether a
face was shown, and optionally written as a .srt transcript beside the recording.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from featurizers.media import MediaClip
from featurizers.transcripts import find_sidecar

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CLIPS = tuple(sorted((REPO / "pipeline" / "sample_data" / "clips").glob("*.mp4")))
RATE = 16000
FPS = 15
_GREY = 128
_AUDIO_CHUNK = 1024


@dataclass(frozen=True)
class Planted:
    """One utterance placed in the recording: its speech span (seconds), words, face shown."""

    start: float
    end: float
    text: str
    face: bool


@dataclass(frozen=True)
class _Utterance:
    frames: list[np.ndarray]  # RGB at the output size, FPS frames per second
    audio: np.ndarray  # float32 at RATE
    speech: tuple[float, float]  # speech span inside the clip
    text: str


def make_long_recording(
    out_path: Path,
    clips: Sequence[Path] = SAMPLE_CLIPS,
    gap_s: float = 1.5,
    silent_stretch: float = 0.0,
    no_face_stretch: float = 0.0,
    with_transcript: bool = False,
    *,
    length_s: float | None = None,
    size: tuple[int, int] | None = (160, 90),
    sample_rate: int = RATE,
) -> tuple[Path, list[Planted]]:
    """Write ``out_path`` and return it with the planted utterances.

    Utterances are ``clips`` in order (cycled until ``length_s`` seconds when given), each
    followed by ``gap_s`` of silence with the face still. ``silent_stretch`` seconds of silence
    (face shown) follow the utterance at the middle; the ``no_face_stretch`` seconds after the
    silent stretch show a grey picture. ``size=None`` writes sound only (an .m4a-style file:
    give ``out_path`` a suffix that suits, e.g. ``.m4a``). ``sample_rate`` is the stored rate
    of the sound (resampled from 16 kHz when different). ``with_transcript`` writes a .srt of
    the planted spans beside the recording.
    """
    out_path = Path(out_path)
    utterances = [_load(Path(c), size) for c in clips]
    order = _schedule(utterances, gap_s, length_s)
    middle = len(order) // 2
    planted: list[Planted] = []
    with _Writer(out_path, size, sample_rate) as writer:
        writer.silence(gap_s, still=_first_picture(utterances[order[0]]))
        no_face_until = -1.0
        for n, index in enumerate(order):
            utterance = utterances[index]
            grey = writer.time < no_face_until
            start = writer.time
            writer.add(utterance.frames, utterance.audio, grey)
            planted.append(
                Planted(
                    round(start + utterance.speech[0], 3),
                    round(start + utterance.speech[1], 3),
                    utterance.text,
                    face=not grey,
                )
            )
            still = _first_picture(utterances[order[min(n + 1, len(order) - 1)]])
            writer.silence(gap_s, still=still, grey=writer.time < no_face_until)
            if n == middle and silent_stretch > 0:
                writer.silence(silent_stretch, still=still)
                no_face_until = writer.time + no_face_stretch
    if with_transcript:
        write_srt(out_path.with_suffix(".srt"), planted)
    return out_path, planted


def write_srt(path: Path, planted: Sequence[Planted]) -> Path:
    """A SubRip file with one cue per planted utterance."""
    blocks = [
        f"{i}\n{srt_time(p.start)} --> {srt_time(p.end)}\n{p.text}\n"
        for i, p in enumerate(planted, 1)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def video_only(source: Path, out: Path) -> Path:
    """``source`` without its audio stream (video packets copied, nothing re-encoded)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out


def srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _schedule(utterances: list[_Utterance], gap_s: float, length_s: float | None) -> list[int]:
    if length_s is None:
        return list(range(len(utterances)))
    order, total = [], gap_s
    while total < length_s:
        index = len(order) % len(utterances)
        order.append(index)
        total += len(utterances[index].audio) / RATE + gap_s
    return order


def _load(path: Path, size: tuple[int, int] | None) -> _Utterance:
    clip = MediaClip(path)
    audio = clip.audio(RATE)
    frames = []
    if size is not None:
        frames = [_resize(rgb, size) for _, rgb in clip.frames(fps=FPS)]
        n = int(round(len(audio) / RATE * FPS))  # as many frames as the sound lasts
        frames = (frames + [frames[-1]] * n)[:n]
    sidecar = find_sidecar(path)
    text = sidecar.read_text(encoding="utf-8").strip() if sidecar else ""
    return _Utterance(frames, audio, _speech_span(audio), text)


def _first_picture(utterance: _Utterance) -> np.ndarray | None:
    return utterance.frames[0] if utterance.frames else None


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


def _speech_span(audio: np.ndarray, frame: int = 160) -> tuple[float, float]:
    """First and last 10-ms frame above 5% of the loudest frame's RMS."""
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms >= 0.05 * rms.max())
    return float(loud[0] * frame / RATE), float((loud[-1] + 1) * frame / RATE)


class _Writer:
    """Appends pictures and sound to an H.264/AAC file as they come (nothing is held)."""

    def __init__(self, path: Path, size: tuple[int, int] | None, sample_rate: int) -> None:
        self.container = av.open(str(path), "w")
        self.size = size
        self.rate = sample_rate
        self.video = None
        if size is not None:
            self.video = self.container.add_stream("libx264", rate=FPS)
            self.video.width, self.video.height = size
            self.video.pix_fmt = "yuv420p"
        self.sound = self.container.add_stream("aac", rate=sample_rate, layout="mono")
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        self.n_frames = 0
        self.n_samples = 0  # at 16 kHz, before resampling

    @property
    def time(self) -> float:
        return self.n_samples / RATE

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._mux_audio(None)
        if self.video is not None:
            self.container.mux(self.video.encode(None))
        self.container.close()

    def add(self, frames: list[np.ndarray], audio: np.ndarray, grey: bool = False) -> None:
        if self.video is not None:
            for rgb in frames:
                self._mux_picture(np.full_like(rgb, _GREY) if grey else rgb)
        for chunk in _chunks(audio):
            self._mux_audio(chunk)
        self.n_samples += len(audio)
        self._pad_pictures()

    def silence(self, seconds: float, still: np.ndarray | None, grey: bool = False) -> None:
        n = int(round(seconds * RATE))
        frames = []
        if self.video is not None and still is not None:
            picture = np.full_like(still, _GREY) if grey else still
            frames = [picture] * int(round(seconds * FPS))
        self.add(frames, np.zeros(n, np.float32))

    def _pad_pictures(self) -> None:
        """Keep the picture in step with the sound (repeat the last picture if short)."""
        if self.video is None or self.n_frames == 0:
            return
        while self.n_frames < int(round(self.time * FPS)):
            self._mux_picture(self._last)

    def _mux_picture(self, rgb: np.ndarray) -> None:
        self._last = rgb
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = self.n_frames, Fraction(1, FPS)
        self.container.mux(self.video.encode(frame))
        self.n_frames += 1

    def _mux_audio(self, chunk: np.ndarray | None) -> None:
        if chunk is None:
            frames = self.resampler.resample(None)
        else:
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, None, Fraction(1, RATE)
            frames = self.resampler.resample(frame)
        for out in frames:
            out.pts = None
            self.container.mux(self.sound.encode(out))
        if chunk is None:
            self.container.mux(self.sound.encode(None))


def _chunks(audio: np.ndarray) -> Iterator[np.ndarray]:
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    for start in range(0, len(audio), _AUDIO_CHUNK):
        yield audio[start : start + _AUDIO_CHUNK]
