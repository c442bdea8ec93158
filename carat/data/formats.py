"""What each published dataset file looks like and where researchers get it.

Every adapter reports a missing or malformed file with one line built by :func:`data_error`,
so the user always learns the file, what is wrong, the layout we expected and its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carat.errors import DataError

MOSEI_LABELS: list[str] = ["happy", "sad", "anger", "surprise", "disgust", "fear"]
M3ED_LABELS: list[str] = ["happy", "neutral", "sad", "disgust", "anger", "fear", "surprise"]


@dataclass(frozen=True)
class FileFormat:
    """A published file layout: what it holds and where to obtain it."""

    layout: str
    source: str


CARAT_PT = FileFormat(
    layout="a torch-saved dict with splits train/valid/test, each holding "
    "src-text [N,60,300], src-visual [N,60,35], src-audio [N,60,74] and tgt lists [2, 4..9, 3]",
    source="the CARAT/TAILOR aligned MOSEI file train_valid_test.pt from the Google-Drive link "
    "in the CARAT README",
)
MULT_PKL = FileFormat(
    layout="a pickled dict with splits train/valid/test, each holding text [N,50,300], "
    "vision [N,L,35], audio [N,L,74] and id",
    source="MulT's data release (mosei_senti_data.pkl / mosei_senti_data_noalign.pkl, "
    "seq_length_50)",
)
CSD_FOLDER = FileFormat(
    layout="a folder of CMU SDK .csd files (glove_vectors, COVAREP, FACET 4.2 and All Labels, "
    "word-aligned, entries videoid[k])",
    source="the CMU Multimodal SDK (mmdatasdk CMU_MOSEI highlevel + labels, aligned to words "
    "and then to All Labels)",
)
CSD_FILE = FileFormat(
    layout="an HDF5 computational sequence <root>/data/<video_id>/{features,intervals} "
    "plus <root>/metadata",
    source="the CMU Multimodal SDK or `carat-cli` feature export",
)
M3ED_PICKLE = FileFormat(
    layout="the M3ED feature pickle: a sequence whose items 2 (labels), 3/4/5 (text/visual/audio "
    "features per dialogue) and 7/8/9 (train/val/test ids) are used, or the converted "
    "m3ed_data.pt in the MOSEI .pt layout with tgt 4..10",
    source="the M3ED authors' feature release, converted by CARAT's utils/m3ed_reader.py",
)
PACKED = FileFormat(
    layout="a carat packed dataset folder: dataset.json plus Arrow shards "
    "<split>-<generation>-NNNNN.arrow",
    source="`carat-cli` dataset build from raw videos",
)


def data_error(path: str | Path, problem: str, fmt: FileFormat) -> DataError:
    """One line: the file, what is wrong, the expected layout and where to get a good copy."""
    return DataError(f"{path}: {problem}; expected {fmt.layout}; obtain it from {fmt.source}")
