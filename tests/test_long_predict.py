"""`carat-cli predict` on whole recordings: a timeline of segments, missing modalities masked
and named, the per-segment cache, and the subtitle / plot / report files.

The recording is built from the committed sample utterances (tests/long_recording.py) with a
transcript beside it, so no speech recognition runs. The model is untrained (its scores mean
nothing); what is checked is the path from a long file to per-segment answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from long_recording import SAMPLE_CLIPS, make_long_recording, video_only, write_srt
from test_predict import default_feature_spec, save_untrained_model

from carat.data.types import MODALITIES
from cli import main
from pipeline.predict import predict_clips

CLIPS = SAMPLE_CLIPS[:8]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), default_feature_spec())


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A ~35-s recording, a stretch of it without a face, and its .srt beside it."""
    folder = tmp_path_factory.mktemp("recording")
    return make_long_recording(
        folder / "interview.mp4",
        CLIPS,
        silent_stretch=3.0,
        no_face_stretch=8.0,
        with_transcript=True,
    )


def test_a_recording_becomes_a_timeline_of_its_utterances(
    recording: tuple[Path, list], model_dir: Path, tmp_path: Path
) -> None:
    path, planted = recording
    [clip] = predict_clips([path], model_dir, cache_dir=tmp_path / "cache")
    assert clip.error is None
    timeline = clip.timeline
    assert timeline.segmentation == "transcript"
    segments = timeline.segments
    assert len(segments) > 1 and clip.labels == []  # a cut recording: answers per segment
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(segments, segments[1:], strict=False))
    for utterance in planted:  # every utterance lies in one segment, with its words
        [holder] = [s for s in segments if s.start - 0.05 <= utterance.start < s.end]
        assert utterance.end <= holder.end + 0.05
        assert utterance.text.lower().split()[0] in [w.lower() for w in holder.words]
    for seg in segments:
        assert [p.label for p in seg.labels] == ["happy", "sad", "surprise"]
        assert "text" in seg.present and "audio" in seg.present
    faceless = [
        s for s in segments if all(not p.face for p in planted if s.start <= p.start < s.end)
    ]
    assert faceless, "the no-face stretch should hold at least one whole segment"
    for seg in faceless:
        assert seg.missing.get("visual") == "no face" and seg.labels
    with_face = [s for s in segments if s not in faceless]
    assert all("visual" in s.present for s in with_face)

    [again] = predict_clips([path], model_dir, cache_dir=tmp_path / "cache")
    assert again.cached is True  # every segment from the cache
    assert [s.labels for s in again.timeline.segments] == [s.labels for s in segments]


def test_no_audio_stream_still_predicts_and_says_so(
    recording: tuple[Path, list], model_dir: Path, tmp_path: Path
) -> None:
    path, planted = recording
    silent = video_only(path, tmp_path / "silent_film.mp4")
    write_srt(silent.with_suffix(".srt"), planted)
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(silent),
            "--model",
            str(model_dir),
            "--cache",
            str(tmp_path / "c"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    [clip] = json.loads(result.stdout)
    assert clip["error"] is None and clip["segments"]
    for seg in clip["segments"]:
        assert seg["missing"]["audio"] == "no audio track"
        assert "audio" not in seg["present"] and seg["labels"]
        for label in seg["labels"]:
            assert label["contributions"]["audio"] == 0.0  # absent: it contributes nothing
            assert label["driven_by"] in (None, "text", "visual")


def test_a_segment_with_nothing_in_it_is_unpredictable_with_its_reason(
    model_dir: Path, tmp_path: Path
) -> None:
    path, planted = make_long_recording(
        tmp_path / "radio.m4a", CLIPS[:3], gap_s=1.0, silent_stretch=6.0, size=None
    )
    write_srt(path.with_suffix(".srt"), planted)
    [clip] = predict_clips(
        [path], model_dir, cache_dir=tmp_path / "cache", segments="fixed:3", min_segment=1.0
    )
    assert clip.error is None
    empty = [s for s in clip.timeline.segments if s.error is not None]
    assert empty, "the silent stretch of an audio-only file has nothing to predict from"
    for seg in empty:
        assert seg.labels == [] and seg.present == []
        assert "no modality" in seg.error and "silence" in seg.error
    spoken = [s for s in clip.timeline.segments if s.error is None]
    assert spoken and all(s.missing["visual"] == "no video frames" for s in spoken)


def test_subtitles_plot_and_report_are_written(
    recording: tuple[Path, list], model_dir: Path, tmp_path: Path
) -> None:
    path, _ = recording
    out = tmp_path / "out"
    files = [
        "--srt",
        str(out / "e.srt"),
        "--vtt",
        str(out / "e.vtt"),
        "--plot",
        str(out / "t.png"),
        "--report",
        str(out / "r.html"),
    ]
    args = ["predict", str(path), "--model", str(model_dir), "--cache", str(tmp_path / "c")]
    result = CliRunner().invoke(main, [*args, *files])
    assert result.exit_code == 0, result.stderr
    assert "TVA" in result.stdout  # the timeline table
    cues = (out / "e.srt").read_text().strip().split("\n\n")
    [clip] = predict_clips([path], model_dir, cache_dir=tmp_path / "c")
    assert len(cues) == len(clip.timeline.segments)
    assert (out / "e.vtt").read_text().startswith("WEBVTT")
    assert (out / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "r.html").read_text()
    assert "../" in page and path.name in page  # the player finds the recording relative to it

    two = CliRunner().invoke(main, [*args, str(path), "--srt", str(out / "x.srt")])
    assert two.exit_code != 0 and "one recording" in two.stderr


def test_a_bad_segment_option_is_one_line(model_dir: Path, recording: tuple[Path, list]) -> None:
    path, _ = recording
    result = CliRunner().invoke(
        main, ["predict", str(path), "--model", str(model_dir), "--segments", "fixed:-2"]
    )
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert "--segments" in line


def test_modalities_are_reported_in_model_order(
    recording: tuple[Path, list], model_dir: Path, tmp_path: Path
) -> None:
    path, _ = recording
    [clip] = predict_clips([path], model_dir, cache_dir=tmp_path / "cache", segments="none")
    [seg] = clip.timeline.segments  # none: the whole file, today's behaviour
    assert clip.single is seg and seg.start == 0.0
    assert seg.present == [m for m in MODALITIES if m in seg.present]
