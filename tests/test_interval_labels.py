"""Interval labels of full videos (CSV and the SDK's labels .csd) -> segments -> a dataset."""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from long_recording import make_long_recording, srt_time

from carat.data import load_dataset
from cli import main
from featurizers.span import Span
from featurizers.visual import DIM_NAMES
from pipeline.build import BuildOptions, build_dataset
from pipeline.errors import PipelineError
from pipeline.extract import ExtractOptions, run_extract
from pipeline.labels import is_interval_labels, match_ids, read_interval_labels, read_labels
from pipeline.store import DONE, FeatureStore

SAMPLES = Path(__file__).parents[1] / "pipeline" / "sample_data" / "clips"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- reading ----------------------------------------------------------------------------------


def test_list_and_column_styles_read_the_same(tmp_path):
    listed = _write(
        tmp_path / "listed.csv",
        "video_id,start,end,labels,split\n"
        "v1,0.5,3.0,happy;sad,train\n"
        "v1,3.0,6.25,,valid\n"  # touching the previous interval is fine; no label present
        "v2,1,2,sad,test\n",
    )
    columns = _write(
        tmp_path / "columns.csv",
        "video_id,start,end,happy,sad,split\nv1,0.5,3.0,1,0.4,train\nv1,3.0,6.25,0,0,valid\n"
        "v2,1,2,0,2,test\n",
    )
    a, b = read_interval_labels(listed), read_interval_labels(columns)
    assert a.label_names == b.label_names == ["happy", "sad"]
    assert [(r.video_id, r.start, r.end, r.labels, r.split) for r in a.rows] == [
        (r.video_id, r.start, r.end, r.labels, r.split) for r in b.rows
    ]
    assert [r.labels for r in a.rows] == [(1.0, 1.0), (0.0, 0.0), (0.0, 1.0)]
    assert not a.problems and not b.problems
    assert is_interval_labels(listed) and not is_interval_labels(
        _write(tmp_path / "c.csv", "id,a\n")
    )
    # a clip labels CSV takes the same list style
    clips = read_labels(_write(tmp_path / "clips.csv", "clip_id,labels\na,happy;sad\nb,\nc,sad\n"))
    assert clips.label_names == ["happy", "sad"]
    np.testing.assert_array_equal(clips.labels, [[1, 1], [0, 0], [0, 1]])


def test_bad_rows_are_one_line_each_and_the_rest_is_read(tmp_path):
    path = _write(
        tmp_path / "labels.csv",
        "video_id,start,end,labels\n"
        "v1,0,4,happy\n"  # row 2: good
        "v1,5,5,sad\n"  # row 3: start == end
        "v1,3,8,sad\n"  # row 4: overlaps row 2
        "v1,-1,0.5,sad\n"  # row 5: negative start
        "v1,9,x,sad\n"  # row 6: not a number
        "v2,0,2,joy\n"  # row 7: unknown label
        "v2,2,3,happy\n",  # row 8: good
    )
    table = read_interval_labels(path, label_names=["happy", "sad"])
    assert [(r.video_id, r.start) for r in table.rows] == [("v1", 0.0), ("v2", 2.0)]
    assert len(table.problems) == 5
    for problem, row in zip(sorted(table.problems, key=_row_number), (3, 4, 5, 6, 7), strict=True):
        assert "\n" not in problem and str(path) in problem and f"row {row} " in problem, problem
    text = " | ".join(table.problems)
    assert "not before end" in text and "overlaps row 2" in text and "before the video" in text
    assert "'joy'" in text and "expected seconds" in text
    with pytest.raises(PipelineError, match="video_id.*start.*end"):
        read_interval_labels(_write(tmp_path / "no_end.csv", "video_id,start,happy\nv,0,1\n"))
    with pytest.raises(PipelineError, match="no usable labelled interval"):
        read_interval_labels(_write(tmp_path / "bad.csv", "video,start,end,a\nv,2,1,1\n"))


def _row_number(problem: str) -> int:
    return int(problem.split(" row ")[1].split()[0])


def _sdk_labels_csd(path: Path, entries: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """An "All Labels" computational sequence written by the CMU SDK itself."""
    from mmsdk import mmdatasdk
    from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

    sequence = mmdatasdk.computational_sequence("All Labels")
    data = {v: {"features": f, "intervals": i} for v, (f, i) in entries.items()}
    sequence.setData(data, "All Labels")
    metadata = {key: "test" for key in featuresetMetadataTemplate}
    sequence.setMetadata({**metadata, "root name": "All Labels"}, "All Labels")
    sequence.deploy(str(path))
    return path


def test_labels_csd_in_the_sdk_layout(tmp_path):
    # [sentiment, happy, sad, anger, surprise, disgust, fear]
    features = np.array(
        [[2.0, 1.0, 0, 0, 0, 0, 0], [-1.0, 0, 0.33, 0.66, 0, 0, 0], [0.0, 0, 0, 0, 0, 0, 0]],
        dtype=np.float32,
    )
    intervals = np.array([[0.0, 2.5], [2.5, 6.0], [5.0, 7.0]])  # the third overlaps the second
    path = _sdk_labels_csd(
        tmp_path / "CMU_MOSEI_Labels.csd",
        {"vidA": (features, intervals), "vidB": (features[:1], np.array([[3.0, 1.0]]))},
    )
    assert is_interval_labels(path)
    table = read_interval_labels(path)
    assert table.label_names == ["happy", "sad", "anger", "surprise", "disgust", "fear"]
    assert [(r.video_id, r.start, r.end) for r in table.rows] == [
        ("vidA", 0.0, 2.5),
        ("vidA", 2.5, 6.0),
    ]
    assert [r.labels for r in table.rows] == [(1, 0, 0, 0, 0, 0), (0, 1, 1, 0, 0, 0)]
    assert len(table.problems) == 2
    assert all(str(path) in p and "entry '" in p and "interval " in p for p in table.problems)
    assert any("'vidB' interval 0" in p and "not before end" in p for p in table.problems)
    assert any(
        "interval 2" in p and "overlaps entry 'vidA' interval 1" in p for p in table.problems
    )


def test_ids_match_clips_by_id_path_or_file_name():
    clips = ["a.mp4", "sub/b.mp4", "c/d.mkv", "x/e.mp4", "y/e.mp4"]
    assert match_ids(["a", "a.mp4", "sub/b", "b", "d", "e", "zz"], clips) == {
        "a": "a.mp4",
        "a.mp4": "a.mp4",
        "sub/b": "sub/b.mp4",
        "b": "sub/b.mp4",
        "d": "c/d.mkv",
    }


# --- from labels to segments to a dataset ------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A ~40 s recording of sample utterances with a .srt transcript, and its planted spans."""
    folder = tmp_path_factory.mktemp("videos")
    clips = sorted(SAMPLES.glob("*.mp4"))[::6][:8]
    path, planted = make_long_recording(folder / "talk.mp4", clips, gap_s=1.5, with_transcript=True)
    return path, planted


def _segment_id(start: float, end: float) -> str:
    return Span(start, end, "labels", recording="talk.mp4").id


def _spans(planted, pad: float = 0.3) -> list[tuple[float, float]]:
    return [(round(max(p.start - pad, 0), 3), round(p.end + pad, 3)) for p in planted]


def test_interval_extraction_caches_one_entry_per_segment(recording, tmp_path):
    path, planted = recording
    spans = _spans(planted)
    intervals = [Span(s, e, "labels", recording="talk.mp4") for s, e in spans]
    out = tmp_path / "features"
    first = run_extract([path.parent], out, modalities="audio", workers=2, spans=intervals)
    assert first.segmented and first.recordings == 1
    assert first.total == first.extracted == len(spans) and not first.failed
    store = FeatureStore(out)
    ids = [Span(s, e, "labels", recording="talk.mp4").id for s, e in spans]
    assert store.clip_ids() == sorted(ids)
    for (start, end), unit in zip(spans, ids, strict=True):
        record = store.manifest()[unit]
        assert record.segment["recording"] == "talk.mp4" and record.segment["source"] == "labels"
        assert (record.segment["start"], record.segment["end"]) == (start, end)
        sequence = store.load(unit, "audio")
        assert abs(len(sequence.features) - (end - start) * 100) <= 2  # 100 Hz over the segment
        assert sequence.intervals[0, 0] < 0.02  # times from the segment's start
    assert len(list((out / "entries").rglob("*.npz"))) == len(spans)
    again = run_extract([path.parent], out, modalities="audio", workers=1, spans=intervals)
    assert again.cached == len(spans) and again.extracted == 0


def _cut(recording: Path, start: float, end: float, out: Path) -> Path:
    """The range [start, end) of ``recording`` as its own file, as a user who cut the clips
    beforehand would hold it: frames in lossless RGB H.264 at their own times, float PCM sound."""
    import av

    from featurizers.media import MediaClip

    clip = MediaClip(recording)
    audio = clip.audio_between(start, end)
    frames = list(clip.frames_between(start, end))
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264rgb", rate=15, options={"crf": "0"})
        height, width = frames[0][1].shape[:2]
        video.width, video.height, video.pix_fmt = width, height, "rgb24"
        video.time_base = video.codec_context.time_base = Fraction(1, 90000)  # exact: 1/15 s, ms
        sound = container.add_stream("pcm_f32le", rate=16000, layout="mono")
        for t, rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 90000)), video.codec_context.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        for at in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(
                samples[None, at : at + 1024], format="flt", layout="mono"
            )
            chunk.sample_rate = 16000
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return out


def _same_face_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: the same face in the same frame. An interval's rows come from the recording's
    face tracks (the mesh tracking since the recording's start), a cut clip's from a mesh
    started at the cut, so landmarks differ by their tracking history: head angles by a
    degree or two, the other measures by a few hundredths."""
    angles = np.isin(DIM_NAMES, ("pose_pitch", "pose_yaw", "pose_roll"))
    return (np.abs(a - b) <= np.where(angles, 3.0, 0.05)).all(axis=-1)


def test_dataset_from_intervals_equals_the_same_ranges_cut_as_clips(recording, tmp_path):
    path, planted = recording
    spans = _spans(planted)
    names = ["happy", "sad"]
    rows = ["video_id,start,end,labels,split"]
    cut_rows = ["clip_id,labels,split"]
    cuts = tmp_path / "cuts"
    cuts.mkdir()
    for n, ((start, end), utterance) in enumerate(zip(spans, planted, strict=True)):
        present = names[n % 2] + (";happy" if n % 3 == 0 else "")
        split = ("train", "valid", "test")[n % 3]
        rows.append(f"talk,{start},{end},{present},{split}")
        cut = _cut(path, start, end, cuts / f"seg{n}.mov")
        shifted = (utterance.start - start, utterance.end - start)

        cut.with_suffix(".srt").write_text(
            f"1\n{srt_time(shifted[0])} --> {srt_time(shifted[1])}\n{utterance.text}\n"
        )
        cut_rows.append(f"seg{n}.mov,{present},{split}")
    labels = _write(tmp_path / "intervals.csv", "\n".join(rows) + "\n")
    summary = build_dataset(
        tmp_path / "features",
        labels,
        tmp_path / "from-intervals",
        videos=[path.parent],
        extract=ExtractOptions(preset="fast", workers=2),
    )
    assert summary.joined == len(spans) and not summary.problems
    run_extract([cuts], tmp_path / "cut-features", preset="fast", workers=2)
    cut_labels = _write(tmp_path / "cuts.csv", "\n".join(cut_rows) + "\n")
    reference = build_dataset(tmp_path / "cut-features", cut_labels, tmp_path / "from-cuts")
    a, b = load_dataset(str(summary.out)), load_dataset(str(reference.out))
    assert a.feature_spec["segmentation"] == {"how": "labels"}
    assert b.feature_spec["segmentation"] == {"how": "none"}
    assert a.label_names == b.label_names == names
    for split in ("train", "valid", "test"):
        x, y = a.splits[split], b.splits[split]
        assert len(x) == len(y) > 0
        np.testing.assert_array_equal(x.labels, y.labels)
        for modality in ("text", "visual", "audio"):
            np.testing.assert_array_equal(x.masks[modality], y.masks[modality])
        np.testing.assert_allclose(x.features["text"], y.features["text"], atol=1e-6)
        np.testing.assert_allclose(x.features["audio"], y.features["audio"], rtol=1e-4, atol=1e-4)
        # The interval's frames are the recording's, the cut's its own (every other frame of
        # the source, the same or the ones between; checked below), and a word's visual step
        # averages them: the words read the same face (the typical difference is small).
        words = x.masks["visual"] > 0
        typical = np.median(np.abs(x.features["visual"][words] - y.features["visual"][words]), 0)
        assert _same_face_rows(typical, np.zeros_like(typical))
    segments, cut_store = (
        FeatureStore(tmp_path / "features"),
        FeatureStore(tmp_path / "cut-features"),
    )
    for n, span in enumerate(spans):
        mine, theirs = (
            segments.load(_segment_id(*span), "visual"),
            cut_store.load(f"seg{n}.mov", "visual"),
        )
        # The interval's rows are the recording's 15 frames/s (sampled from its start), the
        # cut's are sampled from the cut: the 30 frames/s source gives each every other frame,
        # the same ones or the ones between. Where they share a frame, the face is the same.
        assert abs(len(mine.intervals) - len(theirs.intervals)) <= 1
        assert mine.features[:, 0].all() and theirs.features[:, 0].all()
        gap = np.abs(mine.intervals[:, None, 0] - theirs.intervals[None, :, 0])
        mine_rows, their_rows = np.nonzero(gap < 1.5e-3)
        assert len(mine_rows) > 0
        typical = np.median(np.abs(mine.features[mine_rows] - theirs.features[their_rows]), 0)
        assert _same_face_rows(typical, np.zeros_like(typical))
    assert a.splits["train"].ids[0] == _segment_id(*spans[0])


def test_bad_intervals_are_named_and_the_rest_builds(recording, tmp_path, caplog):
    path, planted = recording
    spans = _spans(planted)[:3]
    rows = ["video_id,start,end,happy,sad"]
    rows += [f"talk,{s},{e},{n % 2},{1 - n % 2}" for n, (s, e) in enumerate(spans)]
    rows.append("talk,300,305,1,0")  # row 5: after the recording's end
    rows.append("nowhere,0,2,1,0")  # row 6: no such recording
    rows.append(f"talk,{spans[0][0]},{spans[0][1] + 0.5},1,0")  # row 7: overlaps row 2
    labels = _write(tmp_path / "labels.csv", "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="pipeline.build"):
        result = CliRunner().invoke(
            main,
            [
                "align",
                str(tmp_path / "features"),
                "--labels",
                str(labels),
                "--out",
                str(tmp_path / "dataset"),
                "--videos",
                str(path.parent),
                "--split",
                "random:1,0,0",
                "--workers",
                "1",
                "--preset",
                "fast",
            ],
        )
    assert result.exit_code == 0, result.output
    assert "3 segments of 1 recording: 3 extracted" in result.output
    assert "3 labelled intervals left out" in result.output
    left_out = [r.getMessage() for r in caplog.records if "left out:" in r.getMessage()]
    assert len(left_out) == 3 and all("\n" not in line for line in left_out), left_out
    assert any("labels.csv row 5" in line and "ends after" in line for line in left_out)
    assert any("'nowhere'" in line and "no recording" in line for line in left_out)
    assert any("row 7" in line and "overlaps row 2" in line for line in left_out)
    assert "3 clips joined" in result.output
    strict = CliRunner().invoke(
        main,
        ["align", str(tmp_path / "features"), "--labels", str(labels), "--out",
         str(tmp_path / "d2"), "--videos", str(path.parent), "--strict", "--preset", "fast"],
    )  # fmt: skip
    assert strict.exit_code == 2 and "(--strict)" in strict.output
    no_videos = CliRunner().invoke(
        main, ["align", str(tmp_path / "f"), "--labels", str(labels), "--out", str(tmp_path / "x")]
    )
    assert no_videos.exit_code == 2 and "--videos" in no_videos.output


def test_labels_csd_with_folds_builds_from_the_recording(recording, tmp_path):
    path, planted = recording
    spans = _spans(planted)[:4]
    features = np.zeros((len(spans), 7), dtype=np.float32)
    features[np.arange(len(spans)), 1 + np.arange(len(spans)) % 6] = 1.5
    csd = _sdk_labels_csd(tmp_path / "labels.csd", {"talk": (features, np.array(spans))})
    folds = _write(
        tmp_path / "folds.json", json.dumps({"train": ["talk"], "valid": [], "test": []})
    )
    summary = build_dataset(
        tmp_path / "features",
        csd,
        tmp_path / "dataset",
        BuildOptions(folds=folds),
        videos=[path.parent],
        extract=ExtractOptions(preset="fast", workers=2),
    )
    assert summary.joined == len(spans) and summary.split_sizes["train"] == len(spans)
    data = load_dataset(str(summary.out))
    assert data.label_names[:2] == ["happy", "sad"]
    np.testing.assert_array_equal(data.splits["train"].labels, np.eye(6)[: len(spans)])
    store = FeatureStore(tmp_path / "features")
    assert all(r.status == DONE for r in store.manifest().values())
