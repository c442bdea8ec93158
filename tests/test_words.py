"""Words and their times: sidecar formats, Whisper on the committed fixture, forced alignment."""

from __future__ import annotations

import json
import shutil
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from featurizers import words as words_module
from featurizers.asr import force_align, whisper_model_dir
from featurizers.base import MediaError
from featurizers.media import MediaClip
from featurizers.transcripts import find_sidecar, read_transcript, tokenize
from featurizers.words import Word, get_words

FIXTURES = Path(__file__).parent / "fixtures"
CLIP = FIXTURES / "talking_head.mp4"
TRUTH = json.loads((FIXTURES / "talking_head.truth.json").read_text())
SENTENCE = TRUTH["sentence"].split()
TIME_TOLERANCE = 0.2


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Levenshtein distance over words, divided by the reference length."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1] / len(reference)


def assert_onsets_match_truth(found: list[Word], tolerance: float = TIME_TOLERANCE) -> None:
    assert [w.text for w in found] == SENTENCE
    errors = [abs(w.start - t["start"]) for w, t in zip(found, TRUTH["words"], strict=True)]
    assert max(errors) <= tolerance, errors
    assert all(w.end > w.start for w in found)
    assert all(a.start <= b.start for a, b in pairwise(found))


def clip_with_sidecar(tmp_path: Path, suffix: str, content: str) -> MediaClip:
    """A copy of the fixture clip with a transcript beside it."""
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(CLIP, clip)
    (tmp_path / f"clip{suffix}").write_text(content, encoding="utf-8")
    return MediaClip(clip)


def srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


# --- sidecar parsing -------------------------------------------------------------------------


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("Hello, World! It\u2019s a well-known \"café\"...") == [
        "hello", "world", "it's", "a", "well", "known", "café",
    ]  # fmt: skip


HELLO_WORLD_JSON = [
    [
        {"word": " Hello,", "start": 0.5, "end": 0.9},
        {"word": "World.", "start": 1.0, "end": 1.4},
    ],
    [{"text": "Hello", "start": 0.5, "end": 0.9}, {"text": "world", "start": 1.0, "end": 1.4}],
    {
        "words": [
            {"text": "hello", "start": 0.5, "end": 0.9},
            {"text": "world", "start": 1, "end": 1.4},
        ]
    },
    {
        "segments": [
            {
                "start": 0.5,
                "end": 1.4,
                "text": " Hello world.",
                "words": [
                    {"word": " Hello", "start": 0.5, "end": 0.9, "probability": 0.9},
                    {"word": " world.", "start": 1.0, "end": 1.4, "probability": 0.8},
                ],
            }
        ]
    },
]


@pytest.mark.parametrize(
    "payload", HELLO_WORLD_JSON, ids=["word-list", "text-list", "words-key", "whisper-segments"]
)
def test_json_with_word_times(tmp_path, payload):
    path = tmp_path / "clip.json"
    path.write_text(json.dumps(payload))
    transcript = read_transcript(path)
    assert transcript.timed_words == [Word("hello", 0.5, 0.9), Word("world", 1.0, 1.4)]
    assert transcript.cues == []


def test_json_entry_with_two_tokens_is_split_by_length(tmp_path):
    path = tmp_path / "clip.json"
    path.write_text(json.dumps([{"word": "well-known", "start": 1.0, "end": 1.9}]))
    first, second = read_transcript(path).timed_words
    assert (first.text, second.text) == ("well", "known")
    assert first.start == 1.0 and second.end == pytest.approx(1.9)
    assert first.end == pytest.approx(1.4) and second.start == pytest.approx(1.4)


def test_whisper_segments_without_words_become_cues(tmp_path):
    path = tmp_path / "clip.json"
    path.write_text(json.dumps({"segments": [{"start": 1.0, "end": 2.5, "text": "Hi there."}]}))
    (cue,) = read_transcript(path).cues
    assert (cue.words, cue.start, cue.end) == (["hi", "there"], 1.0, 2.5)


def test_srt_cues(tmp_path):
    path = tmp_path / "clip.srt"
    path.write_text(
        "1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there,\r\nfriend!\r\n\r\n"
        "2\r\n01:00:00,250 --> 01:00:03,000\r\nBye.\r\n"
    )
    cues = read_transcript(path).cues
    assert [(c.words, c.start, c.end) for c in cues] == [
        (["hello", "there", "friend"], 1.0, 2.5),
        (["bye"], 3600.25, 3603.0),
    ]


def test_vtt_cues_skip_header_notes_and_tags(tmp_path):
    path = tmp_path / "clip.vtt"
    path.write_text(
        "WEBVTT - made by hand\n\nNOTE a comment\nspanning lines\n\n"
        "intro\n00:01.000 --> 00:02.000 align:start position:10%\n<v Alice>Hi <c.loud>you</c>\n\n"
        "00:00:02.500 --> 00:00:04.000\nSecond cue\n"
    )
    cues = read_transcript(path).cues
    assert [(c.words, c.start, c.end) for c in cues] == [
        (["hi", "you"], 1.0, 2.0),
        (["second", "cue"], 2.5, 4.0),
    ]


def test_txt_is_one_untimed_cue(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("Hello there.\nGeneral Kenobi!\n")
    (cue,) = read_transcript(path).cues
    assert (cue.words, cue.start, cue.end) == (["hello", "there", "general", "kenobi"], None, None)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.json", "{not json", "list of"),
        ("bad.json", json.dumps([{"word": "hi", "start": 2.0, "end": 1.0}]), "list of"),
        ("bad.json", json.dumps({"speaker": "x"}), "segments"),
        ("bad.srt", "1\n00:00:01 --> soon\nhello\n", "SubRip"),
        ("bad.vtt", "WEBVTT\n\njust some text\n", "WebVTT"),
    ],
)
def test_unreadable_sidecar_names_file_and_format(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(MediaError) as info:
        read_transcript(path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_sidecar_lookup_order_and_explicit_override(tmp_path):
    clip = clip_with_sidecar(tmp_path, ".txt", "plain text")
    assert find_sidecar(clip.path) == tmp_path / "clip.txt"
    (tmp_path / "clip.json").write_text(json.dumps([{"word": "timed", "start": 0, "end": 1}]))
    assert find_sidecar(clip.path) == tmp_path / "clip.json"
    assert get_words(clip) == [Word("timed", 0.0, 1.0)]
    explicit = tmp_path / "other.json"
    explicit.write_text(json.dumps([{"word": "explicit", "start": 2, "end": 3}]))
    assert get_words(clip, transcript=explicit) == [Word("explicit", 2.0, 3.0)]
    assert find_sidecar(tmp_path / "elsewhere.mp4") is None


# --- speech recognition and forced alignment on the committed fixture ------------------------


@pytest.fixture(scope="module")
def recognised() -> list[Word]:
    return get_words(MediaClip(CLIP))


def test_whisper_recovers_the_sentence(recognised):
    assert word_error_rate(SENTENCE, [w.text for w in recognised]) <= 0.2


def test_whisper_word_times_are_within_tolerance(recognised):
    assert_onsets_match_truth(recognised)


def test_plain_text_sidecar_is_aligned():
    clip = MediaClip(FIXTURES / "with_transcript" / "talking_head.mp4")
    assert_onsets_match_truth(get_words(clip))


def test_long_plain_text_is_cut_at_whisper_utterances(tmp_path, monkeypatch):
    # two fixture sentences with a pause between them, aligned as if the clip were long
    first = MediaClip(CLIP).audio(16000)
    second = MediaClip(FIXTURES / "frowning_head.mp4").audio(16000)
    pause = np.zeros(8000, dtype=np.float32)
    sf.write(tmp_path / "two.wav", np.concatenate([first, pause, second]), 16000)
    later = json.loads((FIXTURES / "frowning_head.truth.json").read_text())
    offset = (len(first) + len(pause)) / 16000
    truth = TRUTH["words"] + [{**w, "start": w["start"] + offset} for w in later["words"]]
    (tmp_path / "two.txt").write_text(f"{TRUTH['sentence']}. {later['sentence']}.")
    monkeypatch.setattr(words_module, "MAX_ALIGN_SECONDS", 1.0)
    found = get_words(MediaClip(tmp_path / "two.wav"))
    assert [w.text for w in found] == [w["word"] for w in truth]
    errors = [abs(w.start - t["start"]) for w, t in zip(found, truth, strict=True)]
    assert max(errors) <= TIME_TOLERANCE, errors


def repeated_fixture(tmp_path: Path, times: int) -> tuple[Path, list[dict]]:
    """A wav of the fixture's sentence said ``times`` times in a row, and its word truth."""
    audio = MediaClip(CLIP).audio(16000)
    sf.write(tmp_path / "repeated.wav", np.tile(audio, times), 16000)
    step = len(audio) / 16000
    truth = [{**w, "start": w["start"] + k * step} for k in range(times) for w in TRUTH["words"]]
    return tmp_path / "repeated.wav", truth


def assert_times_match(found: list[Word], truth: list[dict]) -> None:
    assert [w.text for w in found] == [w["word"] for w in truth]
    errors = [abs(w.start - t["start"]) for w, t in zip(found, truth, strict=True)]
    assert max(errors) <= TIME_TOLERANCE, max(errors)


def test_plain_text_over_30_s_is_aligned_in_one_pass_without_whisper(tmp_path, monkeypatch):
    clip, truth = repeated_fixture(tmp_path, 8)  # 39 s of speech
    clip.with_suffix(".txt").write_text(". ".join([TRUTH["sentence"]] * 8))

    def no_whisper(*args, **kwargs):
        raise AssertionError("speech recognition should not be needed for this transcript")

    monkeypatch.setattr(words_module.speech, "transcribe", no_whisper)
    assert_times_match(get_words(MediaClip(clip)), truth)


def test_whisper_on_a_repeated_sentence_keeps_its_words_and_their_times(tmp_path):
    # on such audio faster-whisper's default decoding dropped a sentence and Whisper's own
    # times were several seconds off for whole sentences
    clip, truth = repeated_fixture(tmp_path, 7)
    found = get_words(MediaClip(clip))
    expected = [w["word"] for w in truth]
    assert word_error_rate(expected, [w.text for w in found]) <= 0.2
    # every said word should be heard, as the same word, within tolerance of its time
    unused = list(found)
    on_time = 0
    for said in truth:
        heard = [w for w in unused if w.text == said["word"]]
        near = [w for w in heard if abs(w.start - said["start"]) <= TIME_TOLERANCE]
        if near:
            unused.remove(near[0])
            on_time += 1
    assert on_time >= 0.9 * len(truth), f"{on_time} of {len(truth)} words on time"


def test_srt_cues_are_aligned_within_each_cue(tmp_path):
    truth = TRUTH["words"]
    cues = [(0, 5), (5, len(truth))]  # "hello my name is alice" / the rest
    srt = "\n".join(
        f"{n}\n{srt_time(truth[a]['start'] - 0.2)} --> {srt_time(truth[b - 1]['end'])}\n"
        + " ".join(w["word"] for w in truth[a:b]).capitalize()
        + ".\n"
        for n, (a, b) in enumerate(cues, 1)
    )
    # alignment inside the cues does better than spreading the words over them (0.14 s off)
    assert_onsets_match_truth(get_words(clip_with_sidecar(tmp_path, ".srt", srt)), tolerance=0.1)


def test_srt_without_alignment_spreads_words_inside_cues(tmp_path):
    srt = "1\n00:00:00,000 --> 00:00:04,862\n" + TRUTH["sentence"] + "\n"
    found = get_words(clip_with_sidecar(tmp_path, ".srt", srt), align=False)
    assert [w.text for w in found] == SENTENCE
    # spread over the voiced part of the cue, not over its leading silence
    assert found[0].start == pytest.approx(TRUTH["speech_start_s"], abs=0.05)
    assert found[-1].end == pytest.approx(TRUTH["speech_end_s"], abs=0.05)


def test_word_missing_from_the_dictionary_is_still_aligned(tmp_path):
    text = TRUTH["sentence"].replace("alice", "alyssandra").replace("good", "g00d")
    found = get_words(clip_with_sidecar(tmp_path, ".txt", text))
    assert [w.text for w in found] == text.split()
    errors = [abs(w.start - t["start"]) for w, t in zip(found, TRUTH["words"], strict=True)]
    assert max(errors) <= TIME_TOLERANCE, errors


def test_force_align_reports_failure_on_too_short_audio():
    assert force_align(np.zeros(800, dtype=np.float32), ["hello"]) is None


# --- no speech -------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.0, 0.003], ids=["digital-silence", "faint-noise"])
def test_no_speech_gives_no_words(tmp_path, level):
    path = tmp_path / "quiet.wav"
    noise = np.random.default_rng(0).standard_normal(2 * 16000) * level
    sf.write(path, noise.astype(np.float32), 16000)
    assert get_words(MediaClip(path)) == []


def video_only_copy(tmp_path: Path) -> Path:
    """The fixture's picture without its sound (packets copied, no re-encoding)."""
    path = tmp_path / "mute.mp4"
    with av.open(str(CLIP)) as src, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    return path


def test_no_audio_stream_gives_words_only_from_a_transcript(tmp_path, caplog):
    """No sound is a missing modality: no words and a warning, not an error; a transcript
    still gives its words, spread over each cue since there is nothing to align to."""
    clip = MediaClip(video_only_copy(tmp_path))
    assert not clip.info.has_audio
    with caplog.at_level("WARNING", logger="featurizers.words"):
        assert get_words(clip) == []
    assert "no audio stream" in caplog.text and "mute.mp4" in caplog.text
    (tmp_path / "mute.srt").write_text(
        "1\n00:00:00,500 --> 00:00:02,000\nI am so tired\n\n"
        "2\n00:00:02,500 --> 00:00:04,000\nand today was terrible\n"
    )
    found = get_words(clip)
    assert [w.text for w in found] == "i am so tired and today was terrible".split()
    assert all(0.5 <= w.start < w.end <= 2.0 for w in found[:4])
    assert all(2.5 <= w.start < w.end <= 4.0 for w in found[4:])


# --- the Whisper weights cache ----------------------------------------------------------------


def test_whisper_weights_are_joined_once_and_a_broken_join_is_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("CARAT_CACHE", str(tmp_path))
    folder = whisper_model_dir()
    model_bin = folder / "model.bin"
    assert folder == tmp_path / "whisper-base"
    assert {p.name for p in folder.iterdir()} == {
        "model.bin", "config.json", "tokenizer.json", "vocabulary.json",
    }  # fmt: skip
    joined_at = model_bin.stat().st_mtime_ns
    assert whisper_model_dir() == folder and model_bin.stat().st_mtime_ns == joined_at
    size = model_bin.stat().st_size
    with open(model_bin, "r+b") as f:  # as if a copy had been cut short
        f.truncate(size // 2)
    whisper_model_dir()
    assert model_bin.stat().st_size == size


def test_asr_must_name_a_model_folder(tmp_path):
    with pytest.raises(MediaError, match="CTranslate2 Whisper model"):
        whisper_model_dir(str(tmp_path))
