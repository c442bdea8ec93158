"""Speaker diarization on real speech: two real voices (LibriVox, CMU ARCTIC) taking turns
(tests/fixtures/make_two_speakers.py), and one voice alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from featurizers.media import MediaClip
from featurizers.segments import SegmentationSpec, SegmentOptionError, plan_segments
from featurizers.speakers import Turn, diarize, parse_speakers

FIXTURES = Path(__file__).parent / "fixtures"
TWO = FIXTURES / "two_speakers.ogg"
TOLERANCE_S = 0.5  # a found change of speaker lies this close to the true one


def true_turns() -> list[Turn]:
    rows = json.loads((FIXTURES / "two_speakers.turns.json").read_text())
    return [Turn(r["start"], r["end"], r["speaker"]) for r in rows]


def one_voice(tmp_path: Path) -> Path:
    """The LibriVox voice alone: the fixture's turns of speaker A, joined."""
    import soundfile as sf

    audio, rate = sf.read(TWO, dtype="float32")
    pieces = [audio[int(t.start * rate) : int(t.end * rate)] for t in true_turns()]
    pieces = [p for p, t in zip(pieces, true_turns(), strict=True) if t.speaker == "A"]
    gap = np.zeros(rate // 2, np.float32)
    path = tmp_path / "one_voice.wav"
    sf.write(path, np.concatenate([x for p in pieces for x in (p, gap)]), rate)
    return path


@pytest.fixture(scope="module")
def two_speaker_plan() -> list:
    return plan_segments(MediaClip(TWO), SegmentationSpec.parse("vad", speakers="auto"))


def test_two_real_voices_are_found_with_their_turns(two_speaker_plan: list) -> None:
    truth = true_turns()
    spans = two_speaker_plan
    # every found span has a speaker; consecutive spans of one speaker are one turn
    assert all(s.speaker is not None for s in spans)
    turns: list[list] = []
    for span in spans:
        if turns and turns[-1][2] == span.speaker:
            turns[-1][1] = span.end
        else:
            turns.append([span.start, span.end, span.speaker])
    assert len(turns) == len(truth) == 5
    assert {t[2] for t in turns} == {"S1", "S2"}
    # the same speaker names map one to one onto the true voices
    mapping = {t.speaker: found[2] for t, found in zip(truth, turns, strict=True)}
    assert mapping == {"A": "S1", "B": "S2"}
    for t, found in zip(truth, turns, strict=True):
        assert abs(found[0] - t.start) <= TOLERANCE_S
        assert abs(found[1] - t.end) <= TOLERANCE_S


def test_no_segment_straddles_a_change_of_speaker(two_speaker_plan: list) -> None:
    truth = true_turns()
    for span in two_speaker_plan:
        overlapping = {
            t.speaker
            for t in truth
            if min(span.end, t.end) - max(span.start, t.start) > TOLERANCE_S
        }
        assert len(overlapping) == 1, span


def test_a_short_clip_with_two_voices_is_cut_under_auto() -> None:
    spans = plan_segments(MediaClip(TWO), SegmentationSpec(speakers="2", how="vad"))
    auto = plan_segments(MediaClip(TWO), SegmentationSpec(speakers="auto"))
    assert MediaClip(TWO).info.duration < SegmentationSpec().max_len  # kept whole without speakers
    assert len(auto) > 1 and {s.speaker for s in auto} == {"S1", "S2"}
    assert [s.speaker for s in spans] == ["S1", "S2", "S1", "S2", "S1"]


def test_one_voice_asked_for_three_speakers_is_one_speaker(tmp_path: Path) -> None:
    clip = MediaClip(one_voice(tmp_path))
    turns = diarize(clip, [(0.0, clip.info.duration)], "3")
    assert {t.speaker for t in turns} == {"S1"}
    spans = plan_segments(clip, SegmentationSpec(speakers="3"))
    assert [s.speaker for s in spans] == ["S1"] and spans[0].whole


def test_speakers_none_leaves_spans_without_a_speaker() -> None:
    spans = plan_segments(MediaClip(TWO), SegmentationSpec(how="vad"))
    assert spans and all(s.speaker is None for s in spans)


def test_speaker_option_values() -> None:
    assert [parse_speakers(v) for v in ("auto", " AUTO", "none", None, "2", 3)] == [
        "auto",
        "auto",
        "none",
        "none",
        "2",
        "3",
    ]
    for bad in ("0", "-1", "two", "2.5"):
        with pytest.raises(SegmentOptionError, match="auto, none, or a number of speakers"):
            SegmentationSpec(speakers=bad)
    # the spec's dict leaves out speakers when none, so earlier plans and recipes still match
    assert "speakers" not in SegmentationSpec().to_dict()
    assert SegmentationSpec.from_dict(SegmentationSpec(speakers="2").to_dict()).speakers == "2"


def test_no_speech_gives_no_turns(tmp_path: Path) -> None:
    import soundfile as sf

    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16_000 * 4, np.float32), 16_000)
    clip = MediaClip(path)
    assert diarize(clip, [], "auto") == []
    spans = plan_segments(clip, SegmentationSpec(speakers="auto", how="vad"))
    assert [s.speaker for s in spans] == [None]


def test_extract_records_each_segments_speaker(tmp_path: Path) -> None:
    from pipeline.errors import PipelineError
    from pipeline.extract import run_extract
    from pipeline.store import FeatureStore

    out = tmp_path / "store"
    summary = run_extract(
        [TWO], out, modalities="audio", workers=1, segments="vad", speakers="auto"
    )
    assert summary.failed == []
    segments = sorted(
        (r.segment["start"], r.segment["speaker"])
        for r in FeatureStore(out).manifest().values()
        if r.segment is not None
    )
    assert [speaker for _, speaker in segments] == ["S1", "S2", "S1", "S2", "S1"]
    with pytest.raises(PipelineError, match="--speakers apply to segmented recordings"):
        run_extract([TWO], tmp_path / "whole", modalities="audio", speakers="2")


def test_labelled_intervals_are_named_after_their_speaker(tmp_path: Path) -> None:
    from featurizers.span import LABELS, Span
    from pipeline.extract import run_extract
    from pipeline.store import FeatureStore

    truth = true_turns()
    intervals = [Span(t.start, t.end, LABELS, recording=TWO.name) for t in truth]
    out = tmp_path / "store"
    run_extract([TWO], out, modalities="audio", workers=1, spans=intervals, speakers="auto")
    found = sorted(
        (r.segment["start"], r.segment["speaker"], r.segment["end"])
        for r in FeatureStore(out).manifest().values()
    )
    # the intervals are kept as labelled (not cut), each with the speaker heard in it
    assert [(a, b) for a, _, b in found] == [(t.start, t.end) for t in truth]
    assert [s for _, s, _ in found] == ["S1", "S2", "S1", "S2", "S1"]
