"""Per-speaker outputs: the plot and the report have a lane per speaker, the report each
speaker's share of speaking time with each emotion, the table, CSV and cues name the speaker."""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image

from featurizers.span import Span
from pipeline.timeline import LabelScore, SegmentResult, Timeline, speaker_label_share
from pipeline.writers import get_writer
from pipeline.writers.csv import timeline_csv
from pipeline.writers.table import timeline_table

LABELS = ["happy", "sad"]


def segment(
    index: int, start: float, end: float, speaker: str | None, happy: float
) -> SegmentResult:
    scores = [
        LabelScore("happy", happy, happy >= 0.5),
        LabelScore("sad", 1 - happy, happy < 0.5),
    ]
    span = Span(start, end, "asr", "some words", "talk", speaker=speaker)
    return SegmentResult.of(index, span, ["some", "words"], scores, ["text", "audio"], {})


def timeline(diarized: bool = True) -> Timeline:
    a, b = ("S1", "S2") if diarized else (None, None)
    segments = [
        segment(0, 0.0, 4.0, a, 0.9),
        segment(1, 5.0, 9.0, b, 0.2),
        segment(2, 10.0, 12.0, a, 0.1),
        segment(3, 12.0, 20.0, b, 0.3),
    ]
    return Timeline("talk.mp4", None, 20.0, LABELS, 0.5, "asr", segments)


def test_each_speakers_share_of_speaking_time_with_each_emotion() -> None:
    assert speaker_label_share(timeline()) == {
        "S1": {"happy": 4 / 6, "sad": 2 / 6},
        "S2": {"happy": 0.0, "sad": 1.0},
    }
    assert speaker_label_share(timeline(diarized=False)) == {}


def test_the_plot_has_a_lane_per_speaker() -> None:
    def image(tl: Timeline) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(get_writer("png").render(tl))).convert("RGB"))

    one, two = image(timeline(diarized=False)), image(timeline())
    assert two.shape[1] == one.shape[1] and two.shape[0] > 1.5 * one.shape[0]


def test_the_report_has_speaker_lanes_and_their_shares() -> None:
    page = get_writer("html").render(timeline())
    assert page.count("share of their speaking time with each emotion") == 2
    assert ">S1</text>" in page and ">S2</text>" in page  # the speaker lanes' names
    plain = get_writer("html").render(timeline(diarized=False))
    assert "share of their speaking time" not in plain and ">S1</text>" not in plain


def test_table_csv_and_cues_name_the_speaker() -> None:
    tl = timeline()
    rows = list(csv.DictReader(io.StringIO(timeline_csv(tl))))
    assert [(r["segment"], r["speaker"]) for r in rows if r["label"] == "happy"] == [
        ("0", "S1"), ("1", "S2"), ("2", "S1"), ("3", "S2"),
    ]  # fmt: skip
    table = timeline_table(tl).splitlines()
    assert table[1].split()[:3] == ["#", "time", "who"]
    assert [line.split()[2] for line in table[2:6]] == ["S1", "S2", "S1", "S2"]
    srt = get_writer("srt").render(tl)
    assert [line.split(":")[0] for line in srt.splitlines() if line.startswith("S")] == [
        "S1", "S2", "S1", "S2",
    ]  # fmt: skip
    plain = timeline_table(timeline(diarized=False)).splitlines()
    assert "who" not in plain[1]
