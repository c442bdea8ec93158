"""Segmenting a long recording, and segment views that featurizers take like pre-cut clips.

The recording is built here from the committed sample utterances (tests/long_recording.py):
utterances with 1.5-s gaps, a silent stretch with the face still, and a stretch without a face.
"""

from __future__ import annotations

import json
import logging
import shutil
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from long_recording import (
    SAMPLE_CLIPS,
    Planted,
    make_long_recording,
    srt_time,
    video_only,
    write_srt,
)

from featurizers import segments as segments_module
from featurizers.audio import AudioFeaturizer
from featurizers.base import MediaError
from featurizers.media import MediaClip
from featurizers.segments import SegmentationSpec, SegmentOptionError, plan_segments
from featurizers.span import Span
from featurizers.transcripts import tokenize
from featurizers.visual import VisualFeaturizer
from featurizers.words import get_words

N_UTTERANCES = 9
LOOSE = SegmentationSpec(min_len=1.0)  # the sample utterances last about 2 s


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, list[Planted]]:
    """~40 s: 9 utterances, 6 s of silence after the 5th, then 6 s with no face."""
    folder = tmp_path_factory.mktemp("long")
    return make_long_recording(
        folder / "talk.mp4",
        SAMPLE_CLIPS[:N_UTTERANCES],
        gap_s=1.5,
        silent_stretch=6.0,
        no_face_stretch=6.0,
        with_transcript=True,
    )


@pytest.fixture(scope="module")
def bare(recording, tmp_path_factory) -> Path:
    """The same recording without its transcript."""
    path = tmp_path_factory.mktemp("bare") / "talk.mp4"
    shutil.copyfile(recording[0], path)
    return path


def boundary_errors(found: list[Span], planted: list[Planted]) -> list[float]:
    assert len(found) == len(planted), (found, planted)
    return [
        max(abs(s.start - p.start), abs(s.end - p.end)) for s, p in zip(found, planted, strict=True)
    ]


def assert_well_formed(segments: list[Span], duration: float) -> None:
    assert all(type(s.start) is float and type(s.end) is float for s in segments)
    assert segments[0].start >= 0 and segments[-1].end <= duration + 1e-6
    assert all(s.start < s.end for s in segments)
    assert all(a.end <= b.start for a, b in pairwise(segments))


def test_the_recording_plants_what_it_says(recording):
    path, planted = recording
    clip = MediaClip(path)
    assert clip.info.has_video and clip.info.has_audio and len(planted) == N_UTTERANCES
    assert [p.face for p in planted].count(False) >= 1  # the no-face stretch holds speech
    silence = planted[5].start - planted[4].end
    assert silence == pytest.approx(1.5 + 6.0, abs=0.8)


# --- sources ------------------------------------------------------------------------------


def test_auto_takes_the_transcript_cues(recording):
    path, planted = recording
    segments = plan_segments(MediaClip(path), LOOSE)
    assert {s.source for s in segments} == {"transcript"}
    assert_well_formed(segments, MediaClip(path).info.duration)
    assert max(boundary_errors(segments, planted)) < 0.002
    assert [s.text for s in segments] == [" ".join(tokenize(p.text)) for p in planted]


def test_vtt_and_whisper_json_give_the_same_cues(recording, tmp_path):
    path, planted = recording
    vtt = tmp_path / "cues.vtt"
    vtt.write_text(
        "WEBVTT\n\n"
        + "\n".join(
            f"{srt_time(p.start).replace(',', '.')} --> {srt_time(p.end).replace(',', '.')}\n"
            f"{p.text}\n"
            for p in planted
        )
    )
    whisper = tmp_path / "cues.json"
    whisper.write_text(
        json.dumps(
            {"segments": [{"start": p.start, "end": p.end, "text": p.text} for p in planted]}
        )
    )
    clip = MediaClip(path)
    for transcript in (vtt, whisper):
        segments = plan_segments(clip, SegmentationSpec(how="transcript", min_len=1.0), transcript)
        assert max(boundary_errors(segments, planted)) < 0.002


def test_timed_words_are_cut_into_utterances_at_pauses(recording, tmp_path):
    path, planted = recording
    words = []
    for p in planted:
        tokens = tokenize(p.text)
        step = (p.end - p.start) / len(tokens)
        words += [
            {"word": w, "start": p.start + i * step, "end": p.start + (i + 1) * step}
            for i, w in enumerate(tokens)
        ]
    timed = tmp_path / "words.json"
    timed.write_text(json.dumps(words))
    segments = plan_segments(MediaClip(path), LOOSE, transcript=timed)
    assert max(boundary_errors(segments, planted)) < 0.01


@pytest.fixture(scope="module")
def recognised(bare) -> list[Span]:
    return plan_segments(MediaClip(bare), LOOSE)  # no transcript: auto recognises speech


def test_speech_recognition_finds_the_utterances(recognised, recording):
    planted = recording[1]
    segments = recognised
    assert {s.source for s in segments} == {"asr"}
    assert_well_formed(segments, MediaClip(recording[0]).info.duration)
    assert max(boundary_errors(segments, planted)) < 0.8
    recognised = " ".join(s.text or "" for s in segments).split()
    truth = " ".join(" ".join(tokenize(p.text)) for p in planted).split()
    assert len(set(recognised) & set(truth)) >= 0.8 * len(set(truth))


def test_speech_recognition_streams_in_blocks_without_cutting_utterances(
    bare, recording, recognised, monkeypatch
):
    """With 12-s blocks, utterances that straddle a block edge wait for the next block."""
    monkeypatch.setattr(segments_module, "_ASR_BLOCK_S", 12.0)
    blocked = plan_segments(MediaClip(bare), LOOSE)
    assert_well_formed(blocked, MediaClip(bare).info.duration)
    assert max(boundary_errors(blocked, recording[1])) < 0.8
    assert [s.text for s in blocked] == [s.text for s in recognised]


def test_voice_activity_is_the_same_in_small_blocks(bare, monkeypatch):
    clip = MediaClip(bare)
    spec = SegmentationSpec(how="vad", min_len=1.0)
    default = plan_segments(clip, spec)
    monkeypatch.setattr(segments_module, "_VAD_BLOCK_WINDOWS", 100)  # 3.2-s blocks
    small = plan_segments(clip, spec)
    assert len(small) == len(default)
    assert (
        max(
            abs(a.start - b.start) + abs(a.end - b.end) for a, b in zip(small, default, strict=True)
        )
        < 0.1
    )


def test_voice_activity_finds_the_utterances(bare, recording):
    planted = recording[1]
    clip = MediaClip(bare)
    segments = plan_segments(clip, SegmentationSpec(how="vad", min_len=1.0))
    assert {s.source for s in segments} == {"vad"} and all(s.text is None for s in segments)
    assert max(boundary_errors(segments, planted)) < 0.3
    assert_well_formed(segments, clip.info.duration)


def test_fixed_windows_cover_the_recording(recording):
    clip = MediaClip(recording[0])
    duration = clip.info.duration
    segments = plan_segments(clip, SegmentationSpec.parse("fixed:10"))
    assert {s.source for s in segments} == {"fixed"}
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(duration, abs=1e-3)
    assert all(a.end == b.start for a, b in pairwise(segments))
    assert all(s.end - s.start == pytest.approx(10) for s in segments[:-1])
    assert 3.0 <= segments[-1].end - segments[-1].start < 13.0  # a short tail joins the last


def test_none_and_short_clips_are_one_whole_segment(recording, tmp_path):
    clip = MediaClip(recording[0])
    whole = Span(0.0, clip.info.duration, "whole")
    assert plan_segments(clip, SegmentationSpec.parse("none")) == [whole]
    one = MediaClip(SAMPLE_CLIPS[0])  # one utterance, shorter than min_len: today's behaviour
    assert plan_segments(one, SegmentationSpec()) == [Span(0.0, one.info.duration, "whole")]
    # a single utterance found in a longer clip is the whole clip too
    single = tmp_path / "single.srt"
    single.write_text("1\n00:00:02,000 --> 00:00:05,000\nhello there\n")
    assert plan_segments(clip, SegmentationSpec(), transcript=single) == [
        Span(0.0, clip.info.duration, "whole", "hello there")
    ]


def test_auto_keeps_a_clip_of_one_utterance_length_whole(tmp_path):
    path, planted = make_long_recording(tmp_path / "precut.mp4", SAMPLE_CLIPS[:3], gap_s=0.5)
    write_srt(path.with_suffix(".srt"), planted)
    clip = MediaClip(path)
    assert clip.info.duration <= SegmentationSpec().max_len and len(planted) == 3
    # a pre-cut clip no longer than max_len stays one clip under auto (nothing recognised)
    assert plan_segments(clip, SegmentationSpec()) == [Span(0.0, clip.info.duration, "whole")]
    # an explicit source still cuts it
    cut = plan_segments(clip, SegmentationSpec.parse("transcript", min_len=1.0))
    assert [s.source for s in cut] == ["transcript"] * 3


def test_no_audio_stream_uses_the_transcript_else_fixed_windows(recording, tmp_path):
    path, planted = recording
    mute = MediaClip(video_only(path, tmp_path / "mute.mp4"))
    assert not mute.info.has_audio
    fixed = plan_segments(mute, SegmentationSpec())
    assert {s.source for s in fixed} == {"fixed"} and len(fixed) >= 3
    cues = plan_segments(mute, LOOSE, transcript=path.with_suffix(".srt"))
    assert max(boundary_errors(cues, planted)) < 0.002
    for how in ("asr", "vad"):
        with pytest.raises(MediaError, match="no audio stream") as info:
            plan_segments(mute, SegmentationSpec(how=how))
        assert "\n" not in str(info.value) and "mute.mp4" in str(info.value)


def test_silence_only_falls_back_to_fixed_windows(tmp_path, caplog):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(25 * 16000, np.float32), 16000)
    with caplog.at_level(logging.WARNING, logger="featurizers.segments"):
        segments = plan_segments(MediaClip(path), SegmentationSpec(how="vad"))
    assert {s.source for s in segments} == {"fixed"} and "no speech" in caplog.text


# --- shaping ------------------------------------------------------------------------------


def cues_file(tmp_path: Path, spans: list[tuple[float, float]], name: str = "cues.srt") -> Path:
    return write_srt(
        tmp_path / name, [Planted(a, b, f"cue {i}", True) for i, (a, b) in enumerate(spans)]
    )


def test_short_utterances_join_a_near_neighbour_or_widen(recording, tmp_path):
    clip = MediaClip(recording[0])
    spans = [(1.0, 2.0), (2.5, 8.0), (15.0, 16.0), (25.0, 30.0)]
    segments = plan_segments(clip, SegmentationSpec(), cues_file(tmp_path, spans))
    # 1-2 s is 0.5 s from 2.5-8: joined; 15-16 s is alone: widened to 3 s around itself
    assert [(s.start, s.end) for s in segments] == [(1.0, 8.0), (14.0, 17.0), (25.0, 30.0)]
    assert segments[0].text == "cue 0 cue 1"


def test_long_utterances_split_at_the_pause_nearest_the_middle(recording, tmp_path):
    clip = MediaClip(recording[0])
    words = [{"word": f"w{i}", "start": 0.5 * i, "end": 0.5 * i + 0.45} for i in range(72)]
    words[40:] = [dict(w, start=w["start"] + 0.6, end=w["end"] + 0.6) for w in words[40:]]
    timed = tmp_path / "timed.json"
    timed.write_text(json.dumps({"segments": [{"start": 0.0, "end": 36.6, "words": words}]}))
    segments = plan_segments(clip, SegmentationSpec(max_len=30.0), timed)
    assert [(s.start, s.end) for s in segments] == [(0.0, 19.95), (20.6, 36.6)]
    assert segments[0].text.split() == [f"w{i}" for i in range(40)]
    # a long cue with no pause inside: equal pieces no longer than max_len
    no_pause = plan_segments(
        clip, SegmentationSpec(max_len=10.0), cues_file(tmp_path, [(2.0, 27.0)])
    )
    assert [(s.start, s.end) for s in no_pause] == [
        (2.0, pytest.approx(10.333, abs=1e-3)),
        (pytest.approx(10.333, abs=1e-3), pytest.approx(18.667, abs=1e-3)),
        (pytest.approx(18.667, abs=1e-3), 27.0),
    ]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(1.0, 3.0), (5.0, 400.0)], "ends after the recording"),
        ([(1.0, 5.0), (4.0, 8.0)], "overlaps cue 1"),
        ([(10.0, 12.0), (3.0, 5.0)], "starts before cue 1"),
    ],
)
def test_bad_transcripts_are_one_clear_line(recording, tmp_path, spans, expected):
    srt = cues_file(tmp_path, spans)
    with pytest.raises(MediaError, match=expected) as info:
        plan_segments(MediaClip(recording[0]), SegmentationSpec(), srt)
    message = str(info.value)
    assert "\n" not in message and str(srt) in message


def test_explicit_transcript_must_exist_and_have_times(bare, tmp_path):
    clip = MediaClip(bare)
    with pytest.raises(MediaError, match="no transcript") as info:
        plan_segments(clip, SegmentationSpec(how="transcript"))
    assert str(bare) in str(info.value)
    plain = tmp_path / "plain.txt"
    plain.write_text("just some words")
    with pytest.raises(MediaError, match="no times"):
        plan_segments(clip, SegmentationSpec(how="transcript"), plain)


@pytest.mark.parametrize(
    ("value", "limits", "expected"),
    [
        ("sometimes", {}, "use one of auto, transcript, asr, vad, fixed:SECONDS"),
        ("fixed:soon", {}, "fixed windows take seconds"),
        ("fixed:0", {}, "positive number of seconds"),
        ("vad:3", {}, "use one of"),
        ("auto", {"min_len": 40.0}, "need 0 <= min < max"),
        ("auto", {"longest": 3}, "unknown"),
    ],
)
def test_bad_segment_options(value, limits, expected):
    with pytest.raises(ValueError, match=expected) as info:
        SegmentationSpec.parse(value, **limits)
    assert isinstance(info.value, MediaError) and "\n" not in str(info.value)


def test_spec_parses_every_value_and_round_trips():
    assert SegmentationSpec.parse("fixed:7.5").window == 7.5
    assert SegmentationSpec.parse(" VAD ", max_len=20).max_len == 20
    for value in ("auto", "transcript", "asr", "vad", "fixed", "none"):
        spec = SegmentationSpec.parse(value, min_len=2.0)
        assert SegmentationSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(SegmentOptionError):
        SegmentationSpec.from_dict({"how": "auto", "typo": 1})


# --- segment views ------------------------------------------------------------------------


def test_audio_blocks_stream_the_whole_track(recording):
    clip = MediaClip(recording[0])
    whole = clip.audio()
    blocks = list(clip.audio_blocks(block_s=7.0))
    assert all(len(b) == 7 * 16000 for _, b in blocks[:-1])
    assert [t for t, _ in blocks] == pytest.approx([7.0 * i for i in range(len(blocks))])
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), whole)
    part = np.concatenate([b for _, b in clip.audio_blocks(block_s=3.0, start=11.3, end=20.0)])
    assert_same_sound(part, whole[int(11.3 * 16000) : 20 * 16000])


def assert_same_sound(after_seek: np.ndarray, whole: np.ndarray) -> None:
    """Sound decoded after a seek equals the whole decode, sample for sample in time; AAC's
    noise substitution fills some bands with fresh random noise on each decode, so a few
    frames differ by less than -40 dBFS."""
    assert len(after_seek) == len(whole)
    np.testing.assert_allclose(after_seek, whole, atol=0.01)
    assert np.mean(after_seek != whole) < 0.05


def test_segment_audio_and_frames_are_the_range_in_segment_time(recording):
    clip = MediaClip(recording[0])
    whole_audio = clip.audio()
    whole_frames = list(clip.frames(fps=5))
    start, end = 17.3, 23.1  # inside a group of pictures: decoding seeks to a keyframe before
    segment = clip.segment(start, end)
    assert segment.info.duration == pytest.approx(end - start)
    assert (segment.info.has_video, segment.info.fps) == (True, clip.info.fps)
    assert_same_sound(segment.audio(), whole_audio[int(start * 16000) : int(end * 16000)])
    frames = list(segment.frames())
    expected = [(t - start, rgb) for t, rgb in clip.frames() if start - 1e-3 <= t < end - 1e-3]
    assert [t for t, _ in frames] == pytest.approx([t for t, _ in expected], abs=1e-6)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(frames, expected, strict=True))
    thinned = [t for t, _ in segment.frames(fps=5)]
    assert thinned == pytest.approx(np.arange(len(thinned)) / 5, abs=0.04)
    assert len(whole_frames) > len(thinned)


def test_a_span_has_one_id_and_one_cache_key_to_the_millisecond():
    recording = "ab" * 32
    a = Span(1.0, 4.0, "fixed", recording="talks/a.mp4")
    assert a.id == "talks/a.mp4@1.000-4.000"
    assert a.key(recording) != Span(1.0, 4.5, "fixed").key(recording) != recording
    assert Span(1.0004, 3.9996, "asr").key(recording) == a.key(recording)  # rounded once
    assert Span(1.0, 4.0, "fixed", "hi").key(recording) == a.key(recording)  # times only
    whole = Span(0.0, 12.3456, recording="b.mp4")
    assert (whole.end, whole.id, whole.key(recording)) == (12.346, "b.mp4", recording)
    assert Span.from_dict(a.to_dict()) == a
    assert Span.from_dict([1.0, 4.0, "fixed", None]) == Span(1.0, 4.0, "fixed")  # old plan rows
    assert Span.from_dict({**a.to_dict(), "a_later_field": 1}) == a  # a newer field is ignored
    assert Span.from_dict({**a.to_dict(), "speaker": "S1"}).speaker == "S1"


def test_segment_outside_the_recording_is_refused(recording):
    clip = MediaClip(recording[0])
    with pytest.raises(MediaError, match="not inside the recording"):
        clip.segment(5.0, clip.info.duration + 10)
    with pytest.raises(MediaError, match="not inside the recording"):
        clip.segment(6.0, 5.0)


def cut_losslessly(clip: MediaClip, start: float, end: float, out: Path) -> Path:
    """[start, end) of the recording as its own file: the decoded pictures re-encoded without
    loss (H.264 qp 0, each at its time after ``start``) and the decoded sound as float PCM."""
    audio = clip.audio()[int(start * 16000) : int(end * 16000)]
    with av.open(str(clip.path)) as src, av.open(str(out), "w") as dst:
        video = dst.add_stream("libx264", options={"qp": "0"})
        video.width, video.height, video.pix_fmt = clip.info.width, clip.info.height, "yuv420p"
        video.codec_context.time_base = video.time_base = Fraction(1, 1000)
        sound = dst.add_stream("pcm_f32le", rate=16000, layout="mono")
        for frame in src.decode(src.streams.video[0]):
            if start - 1e-3 <= frame.time < end - 1e-3:
                frame.pts = round((frame.time - start) * 1000)
                frame.time_base = Fraction(1, 1000)
                dst.mux(video.encode(frame))
        dst.mux(video.encode(None))
        for i in range(0, len(audio), 1024):
            chunk = av.AudioFrame.from_ndarray(
                audio[None, i : i + 1024], format="flt", layout="mono"
            )
            chunk.sample_rate, chunk.pts = 16000, i
            dst.mux(sound.encode(chunk))
        dst.mux(sound.encode(None))
    return out


def test_segment_features_equal_those_of_the_range_cut_as_its_own_clip(recording, tmp_path):
    path, planted = recording
    clip = MediaClip(path)
    start, end = planted[2].start - 0.4, planted[3].end + 0.3  # two utterances and a gap
    segment = clip.segment(start, end)
    cut = MediaClip(cut_losslessly(clip, start, end, tmp_path / "cut.mkv"))

    featurizer = AudioFeaturizer()
    mine, theirs = featurizer.extract(segment), featurizer.extract(cut)
    np.testing.assert_array_equal(mine.intervals, theirs.intervals)
    np.testing.assert_allclose(mine.features, theirs.features, atol=1e-4)

    visual = VisualFeaturizer()
    mine, theirs = visual.extract(segment), visual.extract(cut)
    assert mine.features[:, 0].mean() > 0.9  # a face is there
    np.testing.assert_allclose(mine.intervals, theirs.intervals, atol=1e-3)
    np.testing.assert_allclose(mine.features, theirs.features, atol=1e-3)

    # words: the recording's .srt cut to the segment, against the cut clip's own shifted .srt
    write_srt(
        tmp_path / "cut.srt",
        [Planted(p.start - start, p.end - start, p.text, p.face) for p in planted[2:4]],
    )
    mine, theirs = get_words(segment), get_words(cut)
    assert (
        [w.text for w in mine]
        == [w.text for w in theirs]
        == tokenize(planted[2].text + " " + planted[3].text)
    )
    np.testing.assert_allclose(
        [(w.start, w.end) for w in mine], [(w.start, w.end) for w in theirs], atol=0.02
    )


def test_words_of_a_segment_come_from_the_recordings_transcript(recording, tmp_path):
    path, planted = recording
    clip = MediaClip(path)
    p = planted[6]
    words = get_words(clip.segment(p.start - 0.5, p.end + 0.5))
    assert [w.text for w in words] == tokenize(p.text)
    assert all(0 <= w.start < w.end <= p.end - p.start + 1.0 for w in words)
    # a segment that cuts a cue in half keeps the words whose share falls inside it
    middle = (p.start + p.end) / 2
    first_half = get_words(clip.segment(p.start - 0.5, middle, text=None))
    assert 0 < len(first_half) < len(tokenize(p.text))
    assert [w.text for w in first_half] == tokenize(p.text)[: len(first_half)]


def test_words_recognised_while_segmenting_are_reused(bare, recognised):
    clip = MediaClip(bare)
    s = recognised[1]
    words = get_words(clip.segment(s.start, s.end, text=s.text))
    assert [w.text for w in words] == s.text.split()
    assert all(0 <= w.start < w.end <= s.end - s.start + 1e-6 for w in words)


def test_no_face_stretch_gives_rows_without_a_face(recording):
    path, planted = recording
    clip = MediaClip(path)
    hidden = next(p for p in planted if not p.face)
    rows = VisualFeaturizer().extract(clip.segment(hidden.start, hidden.end)).features
    assert len(rows) > 10 and (rows[:, 0] == 0).all()
