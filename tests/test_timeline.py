"""The timeline outputs: subtitles read back by libavformat, CSV by pandas, the PNG by Pillow and
the HTML report by html.parser (the report in a real browser: bench/report_browser.py)."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carat.data.types import MODALITIES
from pipeline.errors import PipelineError
from pipeline.predict import ClipPrediction
from pipeline.timeline import (
    MODALITY_ORDER,
    LabelScore,
    SegmentResult,
    Timeline,
    label_time_share,
)
from pipeline.writers import INPUTS, RECORDING, WRITERS, get_writer, write_recording_files
from pipeline.writers.csv import SEGMENT_COLUMNS, timeline_csv
from pipeline.writers.png import step_series
from pipeline.writers.srt import to_srt
from pipeline.writers.style import label_colours
from pipeline.writers.table import timeline_table
from pipeline.writers.vtt import to_vtt

LABELS = ["happy", "sad", "surprise"]
HOSTILE = "<script>alert(1)</script>"


def scores(happy: float, sad: float, surprise: float, threshold: float = 0.25) -> list:
    return [
        LabelScore(
            label,
            p,
            p >= threshold,
            contributions={"text": p / 2, "visual": p / 4, "audio": p / 4 - 0.05},
            driven_by="text",
            maxpool_winner="visual",
        )
        for label, p in zip(LABELS, (happy, sad, surprise), strict=True)
    ]


ALL = ["text", "visual", "audio"]


def make_timeline(media_path: str | None = "talk.mp4") -> Timeline:
    """Four segments: two labels present; none present and silent; unpredictable; past the hour
    with a hostile transcript and no face."""
    long_words = "so this is a rather long answer that will not fit on one subtitle line".split()
    segments = [
        SegmentResult(0, 0.5, 4.2, ["hello", "there"], scores(0.812, 0.1, 0.4249), ALL, {}),
        SegmentResult(
            1, 5.0, 9.75, long_words, scores(0.2, 0.1, 0.05), ["text", "visual"],
            {"audio": "silence"},
        ),
        SegmentResult(
            2, 10.0, 12.0, [], [], [],
            {"text": "no words", "visual": "no face", "audio": "silence"},
            error="no modality present",
        ),
        SegmentResult(
            3, 3661.5, 3670.25, [HOSTILE, "-->", "fine"], scores(0.1, 0.9, 0.3),
            ["text", "audio"], {"visual": "no face"},
        ),
    ]  # fmt: skip
    return Timeline(
        source="interview.mp4",
        media_path=media_path,
        duration=3700.0,
        label_names=LABELS,
        threshold=0.25,
        segmentation="transcript",
        segments=segments,
    )


def plot(timeline: Timeline, path: Path) -> Path:
    get_writer("png").write(timeline, path)
    return path


def read_cues(path) -> list[tuple[int, int, str]]:
    """(start ms, duration ms, text) of each cue, as FFmpeg's demuxer and decoder read them."""
    cues = []
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            for subtitle in packet.decode():
                text = subtitle.dialogue.decode("utf-8")
                cues.append((packet.pts * 1000 * stream.time_base, packet.duration, text))
    return [(int(start), int(duration * 1000 * stream.time_base), t) for start, duration, t in cues]


EXPECTED_TIMES = [(500, 3700), (5000, 4750), (10000, 2000), (3661500, 8750)]


def test_srt_cues_read_back_by_libavformat(tmp_path):
    path = tmp_path / "out.srt"
    path.write_text(to_srt(make_timeline()), encoding="utf-8")
    cues = read_cues(path)
    assert [(s, d) for s, d, _ in cues] == EXPECTED_TIMES
    texts = [t.split("\n") for _, _, t in cues]
    assert texts[0] == ["happy 0.81 · surprise 0.42", "hello there"]
    assert texts[1][0] == "(no emotion ≥ 0.25) [silence]"
    assert texts[2] == ["(unpredictable: no modality present)"]
    # The hostile word stays visible text (no tag for the player to swallow), the arrow is defused.
    assert texts[3] == ["sad 0.90 · surprise 0.30 [no face]", "‹script›alert(1)‹/script› → fine"]


def test_srt_is_strict_subrip():
    blocks = to_srt(make_timeline()).strip("\n").split("\n\n")
    assert len(blocks) == 4
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert 1 <= len(lines[2:]) <= 2 and all(line.strip() for line in lines[2:])
    assert blocks[3].split("\n")[1] == "01:01:01,500 --> 01:01:10,250"


def test_vtt_cues_read_back_by_libavformat(tmp_path):
    text = to_vtt(make_timeline())
    assert text.startswith("WEBVTT\n\n")
    assert "-->" not in "".join(line for line in text.split("\n") if not re.match(r"\d\d:", line))
    assert "01:01:01.500 --> 01:01:10.250" in text
    path = tmp_path / "out.vtt"
    path.write_text(text, encoding="utf-8")
    cues = read_cues(path)
    assert [(s, d) for s, d, _ in cues] == EXPECTED_TIMES
    # WebVTT escapes the words; the decoder gives back exactly what was said.
    assert cues[3][2].split("\n")[1] == f"{HOSTILE} → fine"
    assert cues[0][2].split("\n")[0] == "happy 0.81 · surprise 0.42"


def test_subtitle_words_line_is_cut_and_optional():
    timeline = make_timeline()
    words_line = to_srt(timeline).split("\n\n")[1].split("\n")[3]
    assert words_line.endswith("…") and len(words_line) <= 42
    assert words_line == "so this is a rather long answer that will…"
    one_line = to_srt(timeline, words_chars=0).strip("\n").split("\n\n")
    assert all(len(block.split("\n")) == 3 for block in one_line)


def test_csv_has_one_row_per_segment_and_label():
    table = pd.read_csv(io.StringIO(timeline_csv(make_timeline())))
    assert list(table.columns) == list(SEGMENT_COLUMNS)
    assert len(table) == 3 * 3 + 1
    assert table.groupby("segment").size().to_dict() == {0: 3, 1: 3, 2: 1, 3: 3}
    happy = table[(table.segment == 0) & (table.label == "happy")].iloc[0]
    assert happy.probability == pytest.approx(0.812) and happy.predicted == 1
    assert happy.contribution_text == pytest.approx(0.406)
    assert happy.driven_by == "text" and happy.maxpool_winner == "visual"
    assert happy.present == "text;visual;audio"
    unpredictable = table[table.segment == 2].iloc[0]
    assert unpredictable.error == "no modality present" and pd.isna(unpredictable.label)
    assert unpredictable.missing == "text: no words; visual: no face; audio: silence"
    assert set(table[table.segment == 1].missing) == {"audio: silence"}
    assert table[table.segment == 3].start.iloc[0] == pytest.approx(3661.5)


def test_terminal_table_one_row_per_segment():
    lines = timeline_table(make_timeline()).split("\n")
    assert lines[0] == "interview.mp4: 1:01:40, 4 segments (transcript), labels at >= 0.25"
    rows = lines[2:-1]
    assert [row.split()[:3] for row in rows] == [
        ["0", "00:00-00:04", "TVA"],
        ["1", "00:05-00:10", "TV·"],
        ["2", "00:10-00:12", "···"],
        ["3", "1:01:02-1:01:10", "T·A"],
    ]
    assert "happy 0.81 · surprise 0.42" in rows[0] and rows[0].endswith("hello there")
    assert rows[2].endswith("(unpredictable: no modality present)")
    assert "sad 0.90 · surprise 0.30 [no face]" in rows[3]
    # the words column lines up, past the longest emotions that are not an unpredictable reason
    words_at = {rows[0].index("hello"), rows[1].index("so this"), rows[3].index("<script>")}
    assert len(words_at) == 1


def test_plot_draws_each_label_at_its_probability(tmp_path):
    timeline = make_timeline()
    timeline.segments, timeline.duration = timeline.segments[:3], 13.0
    image = Image.open(plot(timeline, tmp_path / "timeline.png"))
    assert image.format == "PNG" and image.size == (1200, 450)
    plot_area = np.asarray(image.convert("RGB"))[:, :1000].astype(int)  # the legend is right of it
    top = {}
    for label, colour in label_colours(LABELS).items():
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        rows, _ = np.nonzero(np.abs(plot_area - rgb).sum(axis=2) < 30)
        assert len(rows) > 200, label  # a line across a quarter of the axis, not just a dot
        top[label] = rows.min()
    # Higher probability, higher line: happy 0.81 above surprise 0.42 above sad 0.10.
    assert top["happy"] < top["surprise"] < top["sad"]


def test_plot_lines_break_where_there_is_no_prediction():
    timeline = make_timeline()
    touching = SegmentResult(4, 12.0, 14.0, ["ok"], scores(0.7, 0.1, 0.1), ALL, {})
    touching_too = SegmentResult(5, 14.0, 16.0, ["ok"], scores(0.6, 0.1, 0.1), ALL, {})
    later = SegmentResult(6, 16.5, 18.0, ["ok"], scores(0.5, 0.1, 0.1), ALL, {})
    segments = [*timeline.segments[:3], touching, touching_too, later]
    xs, ys = step_series(segments, "happy")
    # broken across the 0.8 s pause, the unpredictable segment and the 0.5 s pause; joined
    # between the two segments that touch
    assert xs == [0.5, 4.2, 5.0, 5.0, 9.75, 12.0, 12.0, 14.0, 14.0, 16.0, 16.5, 16.5, 18.0]
    nan = np.isnan(ys).tolist()
    assert nan == [False, False, True, False, False, True] + [False] * 4 + [True, False, False]


def label_columns(image: Image.Image, colour: str) -> np.ndarray:
    """The pixel columns of the plot area (left of the legend) that hold ``colour``."""
    plot_area = np.asarray(image.convert("RGB"))[:, :1000].astype(int)
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return np.unique(np.nonzero(np.abs(plot_area - rgb).sum(axis=2) < 30)[1])


def test_plot_draws_nothing_where_there_is_no_segment(tmp_path):
    """Between two segments (a pause of a third of the axis) no label's line is drawn: the
    columns of each colour are two runs, one over each segment, as wide as the segments."""
    timeline = make_timeline()
    first = SegmentResult(0, 1.0, 4.0, ["hi"], scores(0.8, 0.3, 0.6), ALL, {})
    second = SegmentResult(1, 8.0, 11.0, ["ho"], scores(0.2, 0.7, 0.4), ALL, {})
    timeline.segments, timeline.duration = [first, second], 12.0
    image = Image.open(plot(timeline, tmp_path / "gap.png"))
    for label, colour in label_colours(LABELS).items():
        columns = label_columns(image, colour)
        runs = np.split(columns, np.nonzero(np.diff(columns) > 1)[0] + 1)
        assert len(runs) == 2, label
        widths = [run[-1] - run[0] for run in runs]
        gap = runs[1][0] - runs[0][-1]
        # 3 s segments around a 4 s pause: the gap is 4/3 of a segment's width (line caps aside)
        assert gap == pytest.approx(widths[0] * 4 / 3, rel=0.1), label
        assert widths[0] == pytest.approx(widths[1], abs=2), label


class Page(HTMLParser):
    """Elements the report checks need, with their attributes; script and data bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self.stack.append(tag)
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script":
            self.scripts[-1] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def parse_report(tmp_path, timeline: Timeline, **kwargs) -> tuple[Page, str]:
    path = tmp_path / "report.html"
    get_writer("html").write(timeline, path, **kwargs)
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    return page, text


def test_report_is_self_contained_and_escapes_words(tmp_path):
    page, text = parse_report(tmp_path, make_timeline())
    links = [a.get(k, "") for _, a in page.elements for k in ("src", "href")]
    assert not [link for link in links if re.match(r"(https?:)?//", link)]
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert not page.find("link") and len(page.scripts) == 1 and page.find("style") == [{}]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and HOSTILE not in text


def test_report_rows_and_spans_are_wired_to_the_player(tmp_path):
    timeline = make_timeline()
    page, _ = parse_report(tmp_path, timeline)
    rows = [a for t, a in page.elements if t == "tr" and "data-segment" in a]
    assert [(r["data-segment"], r["data-start"]) for r in rows] == [
        (str(s.index), f"{s.start:.3f}") for s in timeline.segments
    ]
    assert rows[2].get("class") == "unpredictable"
    spans = [a for t, a in page.elements if t == "rect" and a.get("class") == "seg"]
    assert [s["data-segment"] for s in spans] == ["0", "1", "2", "3"]
    (video,) = page.find("video", id="player")
    assert video["src"] == "talk.mp4"
    script = page.scripts[0]
    for target in ("segments", "timeline"):
        assert f'document.getElementById("{target}").addEventListener("click", onClick)' in script
    assert 'closest("[data-segment]")' in script and "player.currentTime = parseFloat" in script


def test_report_without_the_recording_says_so(tmp_path):
    page, text = parse_report(tmp_path, make_timeline(media_path=None))
    assert not page.find("video") and page.find("p", id="nomedia", **{"class": "nomedia"})
    assert "not reachable" in text
    assert len([a for t, a in page.elements if t == "tr" and "data-segment" in a]) == 4


def test_report_encodes_the_media_path_and_embeds_the_plot(tmp_path):
    png = plot(make_timeline(), tmp_path / "plot.png").read_bytes()
    page, _ = parse_report(tmp_path, make_timeline(media_path="my clips/take #1.mp4"), plot_png=png)
    assert page.find("video")[0]["src"] == "my%20clips/take%20%231.mp4"
    (image,) = [a for a in page.find("img") if a["src"].startswith("data:image/png;base64,")]
    assert base64.b64decode(image["src"].split(",", 1)[1]) == png


def test_label_share_is_of_the_predicted_time():
    share = label_time_share(make_timeline())
    analysed = 3.7 + 4.75 + 8.75
    expected = {"happy": 3.7, "sad": 8.75, "surprise": 3.7 + 8.75}
    assert share == pytest.approx({label: t / analysed for label, t in expected.items()})


def test_to_dict_is_json_ready():
    timeline = make_timeline()
    data = json.loads(json.dumps(timeline.to_dict()))
    assert data["segments"][3]["words"][0] == HOSTILE
    assert data["segments"][2]["error"] == "no modality present"
    assert data["segments"][0]["labels"][0]["contributions"]["text"] == pytest.approx(0.406)


def test_empty_timeline_renders(tmp_path):
    timeline = make_timeline()
    timeline.segments = []
    assert to_srt(timeline) == "" and to_vtt(timeline).startswith("WEBVTT")
    assert len(timeline_table(timeline).split("\n")) == 3  # summary, header, legend
    assert len(pd.read_csv(io.StringIO(timeline_csv(timeline)))) == 0
    assert Image.open(plot(timeline, tmp_path / "p.png")).size == (1200, 450)
    page, _ = parse_report(tmp_path, timeline)
    assert not [a for t, a in page.elements if t == "tr" and "data-segment" in a]


def test_impossible_segment_is_one_clear_error():
    timeline = make_timeline()
    timeline.segments[1].end = 4.0
    with pytest.raises(PipelineError, match=r"interview\.mp4: segment 1 runs from 5\.000 s"):
        to_srt(timeline)


def test_modalities_are_carats():
    assert MODALITY_ORDER == MODALITIES


def test_every_format_is_a_writer_found_by_name():
    assert list(WRITERS) == ["table", "json", "csv", "srt", "vtt", "png", "html", "eaf"]
    assert {w.scope for n, w in WRITERS.items() if n in ("table", "json", "csv")} == {INPUTS}
    assert {w.scope for n, w in WRITERS.items() if n in ("srt", "vtt", "png", "html", "eaf")} == {
        RECORDING
    }
    with pytest.raises(PipelineError, match="no output format 'docx'; the formats are: table"):
        get_writer("docx")


def test_a_writer_writes_the_same_to_a_stream_and_a_file(tmp_path):
    srt = get_writer("srt")
    stream = io.StringIO()
    srt.write(make_timeline(), stream, words_chars=0)
    srt.write(make_timeline(), tmp_path / "deep" / "out.srt", words_chars=0)
    assert stream.getvalue() == (tmp_path / "deep" / "out.srt").read_text(encoding="utf-8")
    assert stream.getvalue() == to_srt(make_timeline(), words_chars=0)
    image = io.BytesIO()
    get_writer("png").write(make_timeline(), image)
    assert image.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recording_files_refer_to_the_recording_from_where_they_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = ClipPrediction("talk.mp4", "talk.mp4", timeline=make_timeline(media_path="talk.mp4"))
    targets = {"html": tmp_path / "out" / "r.html", "srt": tmp_path / "out" / "e.srt", "vtt": None}
    assert write_recording_files([clip], targets) == [targets["html"], targets["srt"]]
    page = Page()
    page.feed(targets["html"].read_text(encoding="utf-8"))
    assert page.find("video")[0]["src"] == "../talk.mp4"
    with pytest.raises(PipelineError, match="--report, --srt: these files describe one recording"):
        write_recording_files([clip, clip], targets)
    failed = ClipPrediction("x.mp4", "x.mp4", error="not a video")
    with pytest.raises(PipelineError, match=r"x\.mp4: no timeline to write \(not a video\)"):
        write_recording_files([failed], {"srt": tmp_path / "x.srt"})
