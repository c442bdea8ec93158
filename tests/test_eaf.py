"""ELAN export: the file read back with pympi-ling holds a tier per speaker and label."""

from __future__ import annotations

from pathlib import Path

from pympi.Elan import Eaf

from featurizers.span import Span
from pipeline.timeline import LabelScore, SegmentResult, Timeline
from pipeline.writers.eaf import to_eaf

LABELS = ["happy", "sad"]


def scored(happy: float, sad: float) -> list[LabelScore]:
    return [
        LabelScore(label, p, p >= 0.5, contributions={}, driven_by=None, maxpool_winner=None)
        for label, p in zip(LABELS, (happy, sad), strict=True)
    ]


def segment(
    index: int, start: float, end: float, speaker: str | None, words: str, **p
) -> SegmentResult:
    span = Span(start, end, "asr", words, "talk", speaker=speaker)
    return SegmentResult.of(index, span, words.split(), scored(**p), ["text"], {})


def timeline(segments: list[SegmentResult]) -> Timeline:
    return Timeline("talk.mp4", "talk.mp4", 20.0, LABELS, 0.5, "asr", segments)


def read_back(tmp_path: Path, tl: Timeline) -> Eaf:
    path = tmp_path / "talk.eaf"
    path.write_bytes(to_eaf(tl))
    return Eaf(str(path))


def test_a_tier_per_speaker_and_label_read_back(tmp_path: Path) -> None:
    tl = timeline(
        [
            segment(0, 0.5, 4.25, "S1", "how are you", happy=0.81, sad=0.1),
            segment(1, 5.0, 9.0, "S2", "not well today", happy=0.2, sad=0.7),
            segment(2, 9.5, 12.0, "S1", "oh I am sorry", happy=0.1, sad=0.6),
        ]
    )
    eaf = read_back(tmp_path, tl)
    assert set(eaf.get_tier_names()) == {
        "S1 words", "S1 happy", "S1 sad", "S2 words", "S2 happy", "S2 sad",
    }  # fmt: skip
    assert eaf.get_parameters_for_tier("S2 sad")["PARTICIPANT"] == "S2"
    assert sorted(eaf.get_annotation_data_for_tier("S1 happy")) == [(500, 4250, "0.81")]
    assert sorted(eaf.get_annotation_data_for_tier("S1 sad")) == [(9500, 12000, "0.60")]
    assert sorted(eaf.get_annotation_data_for_tier("S2 sad")) == [(5000, 9000, "0.70")]
    assert eaf.get_annotation_data_for_tier("S2 happy") == []
    assert sorted(eaf.get_annotation_data_for_tier("S1 words")) == [
        (500, 4250, "how are you"),
        (9500, 12000, "oh I am sorry"),
    ]
    assert [m["MEDIA_URL"] for m in eaf.get_linked_files()] == ["talk.mp4"]


def test_a_recording_without_speakers_has_one_participant(tmp_path: Path) -> None:
    failed = segment(1, 5.0, 9.0, None, "", happy=0.9, sad=0.9)
    failed.error = "no modality present"
    tl = timeline([segment(0, 0.0, 4.0, None, "hello", happy=0.9, sad=0.1), failed])
    eaf = read_back(tmp_path, tl)
    assert set(eaf.get_tier_names()) == {"all words", "all happy", "all sad"}
    # an unpredictable segment is not annotated as if it had been predicted
    assert sorted(eaf.get_annotation_data_for_tier("all happy")) == [(0, 4000, "0.90")]
