"""Dataset adapters: every benchmark file, our packed datasets and the synthetic data load
into one :class:`~carat.data.types.MultimodalDataset` through :func:`load_dataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carat.data.csd import load_folds, read_csd, read_csd_folder, write_csd
from carat.data.formats import (
    CARAT_PT,
    CSD_FOLDER,
    M3ED_LABELS,
    M3ED_PICKLE,
    MOSEI_LABELS,
    FileFormat,
    data_error,
)
from carat.data.m3ed import dataset_from_m3ed_pickle, read_m3ed
from carat.data.mosei_pt import PT_KEYS, dataset_from_pt, infer_label_set, read_carat_pt
from carat.data.mult_pkl import dataset_from_mult, read_mult_pkl
from carat.data.packed import META_FILE, read_packed, write_packed
from carat.data.safe_pickle import UnsafePickleError, load_file
from carat.data.synth import SynthInfo, make_synthetic
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData
from carat.errors import DataError

__all__ = [
    "MODALITIES",
    "M3ED_LABELS",
    "MOSEI_LABELS",
    "SPLITS",
    "DataError",
    "MultimodalDataset",
    "SplitData",
    "SynthInfo",
    "UnsafePickleError",
    "load_dataset",
    "make_synthetic",
    "read_carat_pt",
    "read_csd",
    "read_csd_folder",
    "read_m3ed",
    "read_mult_pkl",
    "read_packed",
    "write_csd",
    "write_packed",
]

MOSEI_PT = "train_valid_test.pt"
MOSEI_UNALIGNED_PKL = "mosei_senti_data_noalign.pkl"
M3ED_FILES = (
    "m3ed_data.pt",
    "m3ed_data_60.pt",
    "Asent_wav2vec_zh2chmed2e5last-Vsent_avg_affectdenseface-Lsent_cls_robert_wwm_base_chinese4chmed.pkl",
)
NAMES = ("mosei", "mosei-unaligned", "m3ed")
ANY_PATH = FileFormat(
    layout="mosei, mosei-unaligned, m3ed (with --data-dir), or a path to a .pt or .pkl file, "
    "a folder of .csd files or a packed dataset folder (with dataset.json)",
    source="the dataset's release (see `carat-cli synth` for built-in data)",
)


def load_dataset(
    name_or_path: str, data_dir: str | Path | None = None, folds: str | Path | None = None
) -> MultimodalDataset:
    """Load a benchmark by name (files looked up in ``data_dir``) or any dataset by path.

    ``folds`` is a JSON folds file for a ``.csd`` folder; without it a ``folds.json`` inside
    the folder is used, else the CMU SDK's standard MOSEI folds.
    """
    if name_or_path in NAMES:
        if data_dir is None:
            raise DataError(
                f"dataset '{name_or_path}' needs --data-dir, the folder holding its files"
            )
        return _load_named(name_or_path, Path(data_dir))
    path = Path(name_or_path)
    if not path.exists() and data_dir is not None and (Path(data_dir) / path).exists():
        path = Path(data_dir) / path
    return load_path(path, folds=folds)


def _load_named(name: str, data_dir: Path) -> MultimodalDataset:
    if name == "mosei":
        return read_carat_pt(data_dir / MOSEI_PT, MOSEI_LABELS)
    if name == "mosei-unaligned":
        return read_mult_pkl(data_dir / MOSEI_UNALIGNED_PKL, data_dir / MOSEI_PT)
    for candidate in M3ED_FILES:
        if (data_dir / candidate).is_file():
            return read_m3ed(data_dir / candidate)
    raise data_error(data_dir, f"none of {', '.join(M3ED_FILES)} found", M3ED_PICKLE)


def load_path(path: str | Path, folds: str | Path | None = None) -> MultimodalDataset:
    """Load a dataset file or folder, detecting its format from what it holds."""
    path = Path(path)
    if path.is_dir():
        if (path / META_FILE).is_file():
            return read_packed(path)
        if any(path.glob("*.csd")):
            if folds is None and (path / "folds.json").is_file():
                folds = path / "folds.json"
            return read_csd_folder(path, load_folds(folds) if folds is not None else None)
        raise data_error(path, f"folder has neither {META_FILE} nor .csd files", CSD_FOLDER)
    if not path.is_file():
        raise data_error(path, "not found", ANY_PATH)
    raw = load_file(path, ANY_PATH)
    return _from_raw(raw, path)


def _from_raw(raw: Any, path: Path) -> MultimodalDataset:
    """Pick the adapter from the loaded object's layout."""
    if isinstance(raw, list | tuple):
        return dataset_from_m3ed_pickle(raw, path)
    train = raw.get("train") if isinstance(raw, dict) else None
    if isinstance(train, dict) and PT_KEYS["text"] in train:
        return dataset_from_pt(raw, path, *infer_label_set(raw))
    if isinstance(train, dict) and "vision" in train:
        labels_path = path.parent / MOSEI_PT
        if not labels_path.is_file():
            raise data_error(
                path,
                f"MulT pickles carry no emotion labels and {labels_path} (their source) is missing",
                CARAT_PT,
            )
        return dataset_from_mult(raw, path, labels_path)
    raise data_error(path, "holds no known dataset layout", ANY_PATH)
