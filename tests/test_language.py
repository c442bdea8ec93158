"""Spoken language: detected per clip and per segment, text absent (with its reason) where the
word vectors do not cover it, forced with --language, translated with --translate.

The clips are committed (tests/fixtures/media/, made by make_media_survey.py with espeak-ng):
French speech over the talking head's face, and a recording that switches from English to
French halfway.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faster_whisper.tokenizer import _LANGUAGE_CODES
from test_predict import default_feature_spec, save_untrained_model

from cli import main
from featurizers.languages import NAMES, check_language, language_name
from featurizers.media import MediaClip
from featurizers.text import TextFeaturizer
from pipeline.presence import absence_reasons
from pipeline.store import FeatureStore

MEDIA = Path(__file__).parent / "fixtures" / "media"
FRENCH = MEDIA / "french.mp4"
SWITCH = MEDIA / "english_then_french.m4a"
NOT_ENGLISH = "speech in French; the text features are English-only"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), default_feature_spec())


def test_every_language_the_recogniser_knows_has_a_name() -> None:
    assert set(NAMES) == set(_LANGUAGE_CODES)
    assert language_name("fr") == "French" and check_language(" FR ") == "fr"
    with pytest.raises(ValueError, match="'xx' is not a language code") as exc:
        check_language("xx")
    assert "\n" not in str(exc.value)


def test_french_speech_makes_the_text_absent_with_its_reason(tmp_path: Path) -> None:
    featurizer = TextFeaturizer()
    sequence = featurizer.extract(MediaClip(FRENCH))
    assert sequence.language == "fr"
    assert len(sequence.features) == 0 and sequence.absent == NOT_ENGLISH
    store = FeatureStore(tmp_path / "store")
    entry = store.write("abc", sequence)
    again = store.read(entry)
    assert (again.language, again.absent) == ("fr", NOT_ENGLISH)
    empty = {"visual": np.ones(3), "audio": np.ones(3)}
    assert absence_reasons({"text": again, "visual": _rows(2), "audio": _rows(2)}, empty) == {
        "text": NOT_ENGLISH
    }


def _rows(n: int):  # noqa: ANN202 - a stand-in FeatureSequence with n rows of ones
    from featurizers.base import FeatureSequence, FeaturizerSpec

    spec = FeaturizerSpec("stand-in", "1", "visual", ("x",), 10.0)
    return FeatureSequence(np.ones((n, 1)), np.stack([np.arange(n), np.arange(n) + 1], 1), spec)


def test_a_forced_language_is_recognised_in_it() -> None:
    """Text features that cover any language (``language=None``) keep French words."""
    sequence = TextFeaturizer(language=None, speech_language="fr").extract(MediaClip(FRENCH))
    assert sequence.language == "fr" and sequence.absent is None
    assert {"je", "heureux", "voir", "enfin"} <= set(sequence.words)
    assert TextFeaturizer(speech_language="fr").spec.params["speech_language"] == "fr"
    assert "speech_language" not in TextFeaturizer().spec.params  # the default spec unchanged


def test_translation_gives_english_words_spread_over_each_sentence() -> None:
    featurizer = TextFeaturizer(translate=True)
    assert featurizer.spec.params["translate"] is True
    sequence = featurizer.extract(MediaClip(FRENCH))
    assert sequence.language == "fr" and sequence.absent is None
    assert len(sequence.words) >= 3 and {"i", "you"} & set(sequence.words)
    # one sentence: its words share its span end to end (by their length), no word timing
    starts, ends = sequence.intervals[:, 0], sequence.intervals[:, 1]
    np.testing.assert_allclose(starts[1:], ends[:-1])
    assert 0 <= starts[0] < ends[-1] <= MediaClip(FRENCH).info.duration


def test_predict_says_the_language_and_uses_the_other_modalities(
    model_dir: Path, tmp_path: Path
) -> None:
    args = ["predict", str(FRENCH), "--model", str(model_dir), "--cache", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    [clip] = json.loads(result.output)
    assert clip["language"] == "fr" and clip["error"] is None
    assert clip["missing"] == {"text": NOT_ENGLISH}
    assert clip["present"] == ["visual", "audio"] and len(clip["labels"]) == 3
    assert clip["segments"][0]["language"] == "fr"
    table = CliRunner().invoke(main, args)
    assert "language French (fr)" in table.output
    assert f"predicted without text: {NOT_ENGLISH}" in table.output
    rows = CliRunner().invoke(main, [*args, "--csv"]).output.splitlines()
    assert rows[0].split(",")[-1] == "language" and rows[1].endswith(",fr")


def test_an_unknown_language_code_is_one_line(model_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["predict", str(FRENCH), "--model", str(model_dir), "--language", "klingon"]
    )
    assert result.exit_code != 0
    assert "'klingon' is not a language code" in result.output


def test_each_segment_has_its_own_language(model_dir: Path, tmp_path: Path) -> None:
    args = ["predict", str(SWITCH), "--model", str(model_dir), "--cache", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--segments", "vad", "--min-segment", "1", "--json"])
    assert result.exit_code == 0, result.output
    [clip] = json.loads(result.output)
    spoken = [(s["language"], s["missing"].get("text")) for s in clip["segments"]]
    assert spoken == [("en", None), ("fr", NOT_ENGLISH)]
    assert "happy" in clip["segments"][0]["words"]
