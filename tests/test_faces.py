"""Every face tracked, and the speaking one chosen: face tracks with stable ids, the active
speaker by mouth-voice agreement on a synthetic interview whose listener moves too, speakers
linked to their faces, ``--face`` and recordings without a face.

The interview (tests/fixtures/interview.mp4, made by make_interview.py) has two real faces side
by side taking turns; a transcript written from its truth cuts it into the turns, so no speech
recognition runs.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from long_recording import srt_time
from test_predict import default_feature_spec, save_untrained_model

from cli import main
from featurizers.active_speaker import FALLBACK, GIVEN, NONE, SPEAKER, SPEAKING, link_speakers
from featurizers.face_tracks import FaceTracks, link_tracks
from featurizers.media import MediaClip
from featurizers.span import Span
from featurizers.visual import DIM_NAMES, VisualFeaturizer
from pipeline import featurize
from pipeline.extract import run_extract
from pipeline.sources import open_clips, scan
from pipeline.store import FeatureStore

FIXTURES = Path(__file__).parent / "fixtures"
INTERVIEW = FIXTURES / "interview.mp4"
TRUTH = json.loads((FIXTURES / "interview.truth.json").read_text())


def _box(x: float, y: float = 0.0, size: float = 10.0) -> list[float]:
    return [x, y, x + size, y + size]


# --- linking ---------------------------------------------------------------------------------


def test_ids_stay_with_their_faces_when_detection_order_swaps_and_a_face_blinks_out():
    frames, truth = [], []
    for f in range(12):
        left, right = _box(0 + f * 0.5), _box(40 - f * 0.5)
        if f in (5, 6):  # the right face unseen for two frames, then back
            frames.append([left])
            truth.append([1])
        else:
            frames.append([right, left] if f % 2 else [left, right])
            truth.append([2, 1] if f % 2 else [1, 2])
    ids = link_tracks(frames, max_gap=3)
    assert [i.tolist() for i in ids] == truth


def test_a_face_gone_longer_than_the_gap_comes_back_as_a_new_track():
    frames = [[_box(0)]] * 3 + [[]] * 5 + [[_box(0)]]
    ids = link_tracks(frames, max_gap=3)
    assert [i.tolist() for i in ids] == [[1]] * 3 + [[]] * 5 + [[2]]


def test_a_distant_box_is_another_face_not_a_jump():
    ids = link_tracks([[_box(0)], [_box(100)]], max_gap=3)
    assert [i.tolist() for i in ids] == [[1], [2]]


# --- the interview ---------------------------------------------------------------------------


def _interview_with_turns(folder: Path, video: Path = INTERVIEW) -> Path:
    """A copy of ``video`` with an .srt beside it: one cue per turn of the interview."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = shutil.copy(video, folder / "interview.mp4")
    cues = [
        f"{n}\n{srt_time(t['start'])} --> {srt_time(t['end'])}\n{t['text']}\n"
        for n, t in enumerate(TRUTH["turns"], 1)
    ]
    (folder / "interview.srt").write_text("\n".join(cues))
    return Path(clip)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), default_feature_spec())


@pytest.fixture(scope="module")
def interview(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The interview (with its turns as a transcript) and a cache its face tracks are in."""
    folder = tmp_path_factory.mktemp("interview")
    return _interview_with_turns(folder / "clip"), folder / "cache"


def _predict(clip: Path, model_dir: Path, cache: Path, *options: str) -> tuple[int, str, str]:
    args = ["predict", str(clip), "--model", str(model_dir), "--cache", str(cache), "--json"]
    args += ["--segments", "transcript", "--min-segment", "1"]  # one segment per turn
    result = CliRunner().invoke(main, [*args, *options])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def predicted(interview, model_dir) -> list[dict]:
    clip, cache = interview
    code, out, err = _predict(clip, model_dir, cache)
    assert code == 0, err
    [prediction] = json.loads(out)
    return prediction["segments"]


@pytest.fixture(scope="module")
def tracks(interview, predicted) -> FaceTracks:
    """The interview's face tracks, as predict cached them."""
    clip, cache = interview
    store = FeatureStore(cache)
    [opened] = list(open_clips(scan([clip]), cache / "spool"))
    media = MediaClip(opened.path)
    return featurize.face_tracks(store, opened, media, VisualFeaturizer())


def _side_ids(tracks: FaceTracks) -> dict[str, int]:
    """left/right -> track id, by where each track's face lies."""
    x = DIM_NAMES.index("face_x")
    centre = {i: tracks.rows[tracks.track == i, x].mean() for i in tracks.ids()}
    return {"left": min(centre, key=centre.get), "right": max(centre, key=centre.get)}


def test_two_faces_two_tracks_each_stable_over_the_whole_interview(tracks):
    assert len(tracks.ids()) == 2
    sides = _side_ids(tracks)
    x = DIM_NAMES.index("face_x")
    n_frames = len(tracks.times)
    for side, track_id in sides.items():
        mine = tracks.track == track_id
        assert mine.sum() >= 0.95 * n_frames  # seen in (nearly) every frame, under one id
        on_left = tracks.rows[mine, x] < 0.5
        assert on_left.all() if side == "left" else not on_left.any()


def test_the_speaking_face_is_chosen_in_every_turn_though_the_listener_moves(predicted, tracks):
    sides = _side_ids(tracks)
    fps = TRUTH["fps"]
    for turn, segment in zip(TRUTH["turns"], predicted, strict=True):
        span = segment["span"]
        assert (segment["start"], segment["end"]) == (turn["start"], turn["end"])
        assert span["face"] == str(sides[turn["face"]]), (turn, span)
        assert span["faces"] == 2 and span["face_how"].startswith(SPEAKING)
        # the listener really moves its mouth meanwhile, about as much as the speaker
        listener = "A" if turn["speaker"] == "B" else "B"
        frames = slice(int(turn["start"] * fps), int(turn["end"] * fps))
        jaw = {s: np.std(TRUTH["jaw"][s][frames]) for s in ("A", "B")}
        assert jaw[listener] > 0.5 * jaw[turn["speaker"]]
    # the largest face is one face for every turn: it would be wrong for half of them
    assert len({s["span"]["face"] for s in predicted}) == 2


def test_visual_features_of_a_turn_are_its_speakers_face(interview, predicted, tracks):
    clip, cache = interview
    store = FeatureStore(cache)
    sides = _side_ids(tracks)
    x = DIM_NAMES.index("face_x")
    for turn in TRUTH["turns"]:
        face = sides[turn["face"]]
        rows = tracks.of(face, turn["start"], turn["end"])
        assert (rows[:, 0] > 0).mean() > 0.9
        assert (rows[:, x] < 0.5).all() == (turn["face"] == "left")
    assert any(store.entries_dir.rglob("*.npz"))


def test_face_largest_and_a_given_id(interview, model_dir, predicted, tracks):
    clip, cache = interview
    code, out, err = _predict(clip, model_dir, cache, "--face", "largest")
    assert code == 0, err
    largest = [s["span"] for s in json.loads(out)[0]["segments"]]
    assert len({s["face"] for s in largest}) == 1
    assert all(s["face_how"].startswith(FALLBACK) for s in largest)
    right = str(_side_ids(tracks)["right"])
    code, out, err = _predict(clip, model_dir, cache, "--face", right)
    assert code == 0, err
    given = [s["span"] for s in json.loads(out)[0]["segments"]]
    assert all(s["face"] == right and s["face_how"].startswith(GIVEN) for s in given)


def test_the_csv_names_each_segments_face(interview, model_dir, predicted):
    clip, cache = interview
    args = ["predict", str(clip), "--model", str(model_dir), "--cache", str(cache), "--csv"]
    result = CliRunner().invoke(main, [*args, "--segments", "transcript", "--min-segment", "1"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    by_segment = {int(r["segment"]): r for r in rows}
    for index, segment in enumerate(predicted):
        row = by_segment[index]
        assert row["face"] == segment["span"]["face"] and row["faces"] == "2"
        assert row["face_how"] == segment["span"]["face_how"]


def test_the_table_names_each_segments_face(interview, model_dir, predicted):
    clip, cache = interview
    args = ["predict", str(clip), "--model", str(model_dir), "--cache", str(cache)]
    result = CliRunner().invoke(main, [*args, "--segments", "transcript", "--min-segment", "1"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#"))
    assert header > 0 and "face" in lines[header].split()
    column = lines[header].split().index("face")
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(predicted)]]
    assert [row[column] for row in rows] == [s["span"]["face"] for s in predicted]


def test_a_face_that_is_not_there_names_the_faces_found(interview, model_dir, predicted):
    clip, cache = interview
    code, _, err = _predict(clip, model_dir, cache, "--face", "7")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert (
        "--face 7" in lines[0] and "faces found: 1, 2" in lines[0] and "interview.mp4" in lines[0]
    )


def test_a_face_option_that_is_no_face_is_one_line(interview, model_dir):
    clip, cache = interview
    code, _, err = _predict(clip, model_dir, cache, "--face", "left")
    assert code != 0
    assert err.strip().splitlines()[-1].endswith("use auto, largest or a face track id (1, 2, ...)")


def _grey_picture(source: Path, out: Path) -> Path:
    """``source``'s sound under a grey picture (nobody in view)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        video = dst.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        sound = dst.add_stream_from_template(src.streams.audio[0])
        grey = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 90, np.uint8), format="rgb24")
        for _ in range(int(TRUTH["duration_s"] * 10)):
            dst.mux(video.encode(grey))
        dst.mux(video.encode(None))
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = sound
                dst.mux(packet)
    return out


def test_nobody_in_view_is_predicted_from_words_and_voice_with_the_reason(tmp_path, model_dir):
    grey = _grey_picture(INTERVIEW, tmp_path / "grey.mp4")
    clip = _interview_with_turns(tmp_path / "clip", grey)
    code, out, err = _predict(clip, model_dir, tmp_path / "cache")
    assert code == 0, err
    segments = json.loads(out)[0]["segments"]
    assert len(segments) == len(TRUTH["turns"])
    for segment in segments:
        assert segment["error"] is None and segment["labels"]
        assert segment["present"] == ["text", "audio"]
        assert segment["missing"] == {"visual": "no face"}
        assert segment["span"]["face"] is None and segment["span"]["face_how"] == NONE


# --- a crowd ---------------------------------------------------------------------------------


def test_faces_per_frame_are_bounded_by_max_faces(tmp_path):
    """Four faces (the interview's two, and mirrored) in a 2x2 grid."""
    with av.open(str(INTERVIEW)) as source:
        frame = next(source.decode(video=0)).to_ndarray(format="rgb24")
    left, right = frame[:, : frame.shape[1] // 2], frame[:, frame.shape[1] // 2 :]
    grid = np.ascontiguousarray(
        np.concatenate([np.hstack([left, right]), np.hstack([right, left])[:, ::-1]])
    )
    path = tmp_path / "four faces.mp4"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = grid.shape[1], grid.shape[0], "yuv420p"
        for _ in range(4):
            out.mux(video.encode(av.VideoFrame.from_ndarray(grid, "rgb24")))
        out.mux(video.encode(None))
    for max_faces in (2, 4):
        found = VisualFeaturizer(fps=10, max_faces=max_faces).tracks(MediaClip(path))
        per_frame = np.bincount(found.frame[found.track > 0], minlength=len(found.times))
        # the mesh takes up the faces its detector saw on the first frame from the second on
        assert 1 <= per_frame[0] <= max_faces and per_frame[1:].tolist() == [max_faces] * 3
        assert found.ids() == list(range(1, max_faces + 1))  # the same ids in every frame


# --- speakers and faces ----------------------------------------------------------------------


@dataclass(frozen=True)
class _SpeakerSpan(Span):
    """A span with a speaker, as diarization will label them."""

    speaker: str | None = None


def test_each_speaker_takes_the_face_that_speaks_with_their_voice(interview, predicted):
    clip, cache = interview
    store = FeatureStore(cache)
    [opened] = list(open_clips(scan([clip]), cache / "spool2"))
    media = MediaClip(opened.path)
    spans = []
    for turn in TRUTH["turns"]:
        start, end, who = turn["start"], turn["end"], turn["speaker"]
        spans.append(_SpeakerSpan(start, end, "transcript", speaker=who))
        spans.append(_SpeakerSpan(end - 0.3, end, "transcript", speaker=who))  # too short to judge
    visual = {"visual": VisualFeaturizer()}
    without_speakers = [Span(s.start, s.end, s.source) for s in spans]
    chosen = featurize.assign_faces(store, opened, media, without_speakers, visual)
    unlinked = [
        replace(s, face=c.face, faces=c.faces, face_how=c.face_how)
        for s, c in zip(spans, chosen, strict=True)
    ]
    links = link_speakers(unlinked)
    whole_turns = {s.speaker: s.face for s in unlinked[::2]}
    assert links == whole_turns and links["A"] != links["B"]
    short = unlinked[1::2]
    assert all(s.face_how.startswith(FALLBACK) for s in short)
    assert len({s.face for s in short}) == 1  # the largest face, whoever speaks
    # assign_faces links them: every span of a speaker takes that speaker's face
    linked = featurize.assign_faces(store, opened, media, spans, visual)
    assert [s.face for s in linked] == [links[s.speaker] for s in spans]
    relinked = [s for s in linked[1::2] if s.face_how == f"{SPEAKER} ({s.speaker})"]
    assert len(relinked) == len(TRUTH["turns"]) // 2  # the other speaker's short spans


# --- extract ---------------------------------------------------------------------------------


def test_extract_takes_each_segments_visual_features_from_its_speaker(interview, tracks, tmp_path):
    clip, _ = interview
    out = tmp_path / "features"
    summary = run_extract(
        [clip], out, modalities="visual", workers=1, segments="transcript", min_segment=1
    )
    assert summary.total == len(TRUTH["turns"]) and not summary.failed
    sides = _side_ids(tracks)
    records = sorted(
        (r for r in FeatureStore(out).manifest().values() if r.segment),
        key=lambda r: r.segment["start"],
    )
    for turn, record in zip(TRUTH["turns"], records, strict=True):
        assert record.segment["start"] == turn["start"]
        assert record.segment["face"] == str(sides[turn["face"]])
        assert record.results["visual"]["face"]["face"] == record.segment["face"]
    bad = run_extract([clip], out, modalities="visual", segments="transcript", face="7")
    assert len(bad.failed) == 1 and "faces found: 1, 2" in bad.failed[0][1]
