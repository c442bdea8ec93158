"""MediaClip on the committed talking-head fixture and on broken or unusual files made here."""

from __future__ import annotations

import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from featurizers.base import MediaError
from featurizers.media import MediaClip

FIXTURES = Path(__file__).parent / "fixtures"
CLIP = FIXTURES / "talking_head.mp4"
TRUTH = json.loads((FIXTURES / "talking_head.truth.json").read_text())


def marked_picture(width: int, height: int) -> np.ndarray:
    """Black RGB picture with a white block in its top-left corner, to see orientation."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2, : width // 4] = 255
    return rgb


def write_clip(
    path: Path,
    *,
    n_frames: int = 0,
    size: tuple[int, int] = (64, 48),
    audio_s: float = 0.0,
    rotation: int | None = None,
    pts_ms: list[int] | None = None,
) -> Path:
    """Write a small H.264/AAC mp4 (or m4a) with PyAV: a marked picture and/or a 220 Hz tone."""
    with av.open(str(path), "w") as out:
        if n_frames:
            video = out.add_stream("libx264", rate=None if pts_ms else 30)
            video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
            if pts_ms:
                video.codec_context.time_base = video.time_base = Fraction(1, 1000)
            if rotation is not None:
                video.set_display_rotation(rotation)
        if audio_s:
            sound = out.add_stream("aac", rate=16000, layout="mono")
        if n_frames:
            for i in range(n_frames):
                frame = av.VideoFrame.from_ndarray(marked_picture(*size), format="rgb24")
                if pts_ms:
                    frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        if audio_s:
            tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(audio_s * 16000)) / 16000)
            for start in range(0, len(tone), 1024):
                chunk = tone[None, start : start + 1024].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 16000, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


# --- the fixture ------------------------------------------------------------------------------


def test_info_of_the_fixture() -> None:
    info = MediaClip(CLIP).info
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.fps == pytest.approx(30.0)
    assert info.duration == pytest.approx(TRUTH["duration_s"], abs=0.05)


def test_frames_stream_with_timestamps() -> None:
    frames = list(MediaClip(CLIP).frames())
    assert len(frames) == TRUTH["n_frames"]
    times = np.array([t for t, _ in frames])
    np.testing.assert_allclose(times, np.arange(len(frames)) / 30, atol=1e-3)
    picture = frames[0][1]
    assert picture.shape == (360, 640, 3) and picture.dtype == np.uint8


def test_frames_thinned_to_a_target_rate_by_timestamp() -> None:
    times = np.array([t for t, _ in MediaClip(CLIP).frames(fps=10)])
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-3)
    assert len(times) == int(np.ceil(TRUTH["n_frames"] / 3))


def test_frames_shrunk_to_max_side() -> None:
    _, picture = next(MediaClip(CLIP).frames(max_side=320))
    assert picture.shape == (180, 320, 3)


def test_audio_is_16k_mono_aligned_to_the_speech() -> None:
    clip = MediaClip(CLIP)
    audio = clip.audio()
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / 16000 == pytest.approx(TRUTH["duration_s"], abs=0.05)
    rms = np.sqrt(np.mean(audio[: len(audio) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    loud = np.flatnonzero(rms > 0.05 * rms.max()) / 100
    assert loud[0] == pytest.approx(TRUTH["speech_start_s"], abs=0.05)
    assert loud[-1] == pytest.approx(TRUTH["speech_end_s"], abs=0.1)
    assert clip.audio() is audio  # decoded once
    assert len(clip.audio(sample_rate=8000)) == pytest.approx(len(audio) / 2, abs=100)


def test_content_hash_follows_the_bytes_not_the_name(tmp_path: Path) -> None:
    copy = tmp_path / "renamed.mp4"
    shutil.copyfile(CLIP, copy)
    digest = MediaClip(CLIP).content_hash()
    assert MediaClip(copy).content_hash() == digest
    assert digest == hashlib.sha256(CLIP.read_bytes()).hexdigest()
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert MediaClip(copy).content_hash() != digest


def test_path_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    folder = tmp_path / "ñandú clips é"
    folder.mkdir()
    odd = folder / "talking head ü 中文.mp4"
    shutil.copyfile(CLIP, odd)
    clip = MediaClip(odd)
    assert clip.info.width == 640
    assert next(clip.frames())[1].shape == (360, 640, 3)
    assert len(clip.audio()) > 16000


# --- broken files -----------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError, match="empty") as exc:
        MediaClip(empty)
    assert_one_line_naming(exc, empty)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found") as exc:
        MediaClip(tmp_path / "nowhere.mp4")
    assert_one_line_naming(exc, tmp_path / "nowhere.mp4")


def test_text_file_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my meeting notes, not a video\n")
    with pytest.raises(MediaError, match="not a readable video or audio file") as exc:
        MediaClip(fake)
    assert_one_line_naming(exc, fake)


def test_truncated_mp4_loses_its_index(tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 2])
    with pytest.raises(MediaError, match="truncated") as exc:
        MediaClip(cut)
    assert_one_line_naming(exc, cut)


def faststart_copy(path: Path) -> Path:
    """The fixture remuxed with its index in front ('faststart'), so a cut copy still opens."""
    with (
        av.open(str(CLIP)) as src,
        av.open(str(path), "w", options={"movflags": "faststart"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return path


def cut_copy(path: Path, target: Path, fraction: float = 0.6) -> Path:
    target.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    return target


def remux(path: Path, target: Path) -> Path:
    with av.open(str(path)) as src, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return target


@pytest.mark.parametrize("container", ["faststart.mp4", "recording.mkv"])
def test_truncated_file_gives_its_readable_part(
    tmp_path: Path, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A cut file whose header still opens (an interrupted .mkv, a 'faststart' .mp4): the
    readable part decodes without error, and the info says where it ends."""
    whole = (
        faststart_copy(tmp_path / container)
        if container.endswith(".mp4")
        else remux(CLIP, tmp_path / container)
    )
    assert not MediaClip(whole).info.truncated
    cut = cut_copy(whole, tmp_path / f"cut {container}")
    clip = MediaClip(cut)
    info = clip.info
    assert info.truncated
    assert info.declared == pytest.approx(TRUTH["duration_s"], abs=0.1)
    assert 1.5 < info.duration < 0.75 * info.declared
    expected = f"readable to {info.duration:.2f} s of {info.declared:.2f} s (truncated)"
    assert info.readable == expected
    assert "truncated" in caplog.text
    times = [t for t, _ in clip.frames()]
    assert times[-1] == pytest.approx(info.duration, abs=0.1)
    assert len(clip.audio()) / 16000 == pytest.approx(info.duration, abs=0.15)


def test_segment_of_a_truncated_file_is_refused_past_the_cut(tmp_path: Path) -> None:
    """A range before the cut decodes; a range reaching into the missing tail is refused."""
    cut = cut_copy(faststart_copy(tmp_path / "faststart.mp4"), tmp_path / "cut.mp4")
    clip = MediaClip(cut)
    early = clip.segment(0.5, 1.5)
    assert len(list(early.frames())) == 30
    assert len(early.audio()) == 16000
    with pytest.raises(MediaError, match="readable to .* \\(truncated\\)") as exc:
        clip.segment(3.0, clip.info.declared)
    assert_one_line_naming(exc, cut)


def test_streams_that_stop_apart_get_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "short sound.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=16000, layout="mono")
        for _ in range(90):
            out.mux(video.encode(av.VideoFrame.from_ndarray(marked_picture(64, 48))))
        out.mux(video.encode(None))
        tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, start
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    clip = MediaClip(path)
    assert "stop at different times (video 3.00 s, audio 0.5" in caplog.text
    assert clip.info.duration == pytest.approx(3.0, abs=0.1) and not clip.info.truncated
    assert len(list(clip.frames())) == 90
    assert len(clip.audio()) / 16000 == pytest.approx(0.5, abs=0.1)


def test_audio_only_file(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "voice memo.m4a", audio_s=1.0)
    clip = MediaClip(path)
    assert clip.info.has_audio and not clip.info.has_video
    assert len(clip.audio()) / 16000 == pytest.approx(1.0, abs=0.05)
    with pytest.raises(MediaError, match="no video stream") as exc:
        next(clip.frames())
    assert_one_line_naming(exc, path)


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "silent film.mp4", n_frames=10)
    clip = MediaClip(path)
    assert clip.info.has_video and not clip.info.has_audio
    assert len(list(clip.frames())) == 10
    with pytest.raises(MediaError, match="no audio stream") as exc:
        clip.audio()
    assert_one_line_naming(exc, path)


def test_one_frame_video(tmp_path: Path) -> None:
    clip = MediaClip(write_clip(tmp_path / "still.mp4", n_frames=1, audio_s=0.5))
    frames = list(clip.frames())
    assert len(frames) == 1 and frames[0][0] == 0.0
    assert list(clip.frames(fps=5))[0][1].shape == (48, 64, 3)


def test_4k_frames_stream_and_shrink(tmp_path: Path) -> None:
    clip = MediaClip(write_clip(tmp_path / "uhd.mp4", n_frames=2, size=(3840, 2160)))
    assert (clip.info.width, clip.info.height) == (3840, 2160)
    _, full = next(clip.frames())
    assert full.shape == (2160, 3840, 3)
    _, small = next(clip.frames(max_side=640))
    assert small.shape == (360, 640, 3)
    assert small[:10, :10].mean() > 200 and small[-10:, -10:].mean() < 50  # same picture


# (display rotation, hflip, vflip) as PyAV writes the display matrix -> (quarter turns
# counter-clockwise, then mirrored left-right): the picture FFmpeg's own player shows (checked
# against `ffmpeg -i clip -frames:v 1 shown.png`, FFmpeg 5.1, for all 16).
SHOWN = {
    (0, False, False): (0, False), (0, False, True): (2, True),
    (0, True, False): (0, True), (0, True, True): (2, False),
    (90, False, False): (1, False), (90, False, True): (3, True),
    (90, True, False): (1, True), (90, True, True): (3, False),
    (180, False, False): (2, False), (180, False, True): (0, True),
    (180, True, False): (2, True), (180, True, True): (0, False),
    (270, False, False): (3, False), (270, False, True): (1, True),
    (270, True, False): (3, True), (270, True, True): (1, False),
}  # fmt: skip


def write_oriented(path: Path, rotation: float, hflip: bool = False, vflip: bool = False) -> Path:
    """A 3-frame marked clip whose display matrix turns (and mirrors) it."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for _ in range(3):
            out.mux(video.encode(av.VideoFrame.from_ndarray(marked_picture(64, 48))))
        out.mux(video.encode(None))
    return path


@pytest.mark.parametrize(("rotation", "hflip", "vflip"), sorted(SHOWN))
def test_rotation_and_mirroring_are_applied(
    tmp_path: Path, rotation: int, hflip: bool, vflip: bool
) -> None:
    """A phone clip stored turned (or a front camera's mirrored one), with a display matrix
    saying so, comes out as players show it."""
    path = write_oriented(tmp_path / "phone.mp4", rotation, hflip, vflip)
    turns, mirrored = SHOWN[(rotation, hflip, vflip)]
    expected = np.rot90(marked_picture(64, 48), k=turns)
    expected = np.fliplr(expected) if mirrored else expected
    clip = MediaClip(path)
    assert (clip.info.rotation, clip.info.mirrored) == (turns * 90, mirrored)
    assert (clip.info.height, clip.info.width) == expected.shape[:2]
    _, shown = next(clip.frames())
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(int) - expected).mean() < 10
    _, small = next(clip.frames(max_side=32))
    assert small.shape == (expected.shape[0] // 2, expected.shape[1] // 2, 3)
    words = {(0, False): "upright", (1, False): "turned 90°", (2, True): "turned 180°, mirrored"}
    if (turns, mirrored) in words:
        assert clip.info.orientation == words[(turns, mirrored)]


def test_rotation_off_a_quarter_turn_is_rounded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = MediaClip(write_oriented(tmp_path / "tilted.mp4", 80))
    assert clip.info.rotation == 90
    assert "display rotation of 80 degrees is not a multiple of 90" in caplog.text
    assert "turned 90 degrees (the nearest quarter turn)" in caplog.text
    assert next(clip.frames())[1].shape == (64, 48, 3)


def test_audio_starting_late_keeps_clip_time(tmp_path: Path) -> None:
    """Sound that starts 0.5 s after the picture is padded so sample 0 stays at time 0."""
    path = tmp_path / "late.mp4"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=16000, layout="mono")
        for _ in range(45):
            out.mux(video.encode(av.VideoFrame.from_ndarray(marked_picture(64, 48))))
        out.mux(video.encode(None))
        tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[None, start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, 8000 + start
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    audio = MediaClip(path).audio()
    rms = np.sqrt(np.mean(audio[: len(audio) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    onset = np.flatnonzero(rms > 0.1)[0] / 100
    assert onset == pytest.approx(0.5, abs=0.03)


def test_variable_frame_rate_keeps_real_timestamps(tmp_path: Path) -> None:
    pts_ms = [0, 40, 100, 300, 320, 700]
    clip = MediaClip(write_clip(tmp_path / "vfr.mp4", n_frames=len(pts_ms), pts_ms=pts_ms))
    times = [t for t, _ in clip.frames()]
    np.testing.assert_allclose(times, np.array(pts_ms) / 1000, atol=1e-3)
    thinned = [t for t, _ in clip.frames(fps=5)]  # ticks every 0.2 s
    np.testing.assert_allclose(thinned, [0.0, 0.3, 0.7], atol=1e-3)


def write_undecodable_video(path: Path, with_audio: bool) -> Path:
    """An mp4 whose H.264 packets are random bytes, optionally beside a good 1 s tone."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=16000, layout="mono") if with_audio else None
        picture = av.VideoFrame.from_ndarray(marked_picture(64, 48))
        packets = [p for _ in range(10) for p in video.encode(picture)] + video.encode(None)
        for real in packets:
            fake = av.Packet(rng.integers(0, 256, real.size + 20, dtype=np.uint8).tobytes())
            fake.pts, fake.dts, fake.time_base, fake.stream = (
                real.pts,
                real.dts,
                real.time_base,
                video,
            )
            out.mux(fake)
        if sound is not None:
            tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = tone[None, start : start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 16000, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def test_undecodable_video_keeps_the_audio(tmp_path: Path) -> None:
    clip = MediaClip(write_undecodable_video(tmp_path / "garbled.mp4", with_audio=True))
    assert not clip.info.has_video and clip.info.has_audio
    assert len(clip.audio()) / 16000 == pytest.approx(1.0, abs=0.05)
    with pytest.raises(MediaError, match="video stream cannot be decoded") as exc:
        next(clip.frames())
    assert_one_line_naming(exc, clip.path)


def test_undecodable_video_without_audio_fails_at_open(tmp_path: Path) -> None:
    path = write_undecodable_video(tmp_path / "garbled.mp4", with_audio=False)
    with pytest.raises(MediaError, match="video stream cannot be decoded") as exc:
        MediaClip(path)
    assert_one_line_naming(exc, path)
