"""Dataset adapters: every benchmark file, our packed datasets and the synthetic data load
into one :class:`~carat.data.types.MultimodalDataset` through :func:`load_dataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from carat.data.cache import cached_dataset, default_cache_dir
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
from carat.data.mosei_pt import PT_KEYS, infer_label_set, pt_chunks, read_carat_pt
from carat.data.mult_pkl import mult_chunks, mult_is_aligned, mult_name
from carat.data.packed import (
    META_FILE,
    PackedHeader,
    PackedWriter,
    read_packed,
    write_packed,
)
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
    "default_cache_dir",
    "load_dataset",
    "make_synthetic",
    "read_carat_pt",
    "read_csd",
    "read_csd_folder",
    "read_m3ed",
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
CacheDir = str | Path | None


def load_dataset(
    name_or_path: str,
    data_dir: str | Path | None = None,
    folds: str | Path | None = None,
    cache_dir: CacheDir = None,
) -> MultimodalDataset:
    """Load a benchmark by name (files looked up in ``data_dir``) or any dataset by path.

    A benchmark file (``.pt``, ``.pkl``, a ``.csd`` folder) is converted once into a packed
    folder under ``cache_dir`` (default :func:`default_cache_dir`) and memory-mapped from
    there on every later call.  ``folds`` is a JSON folds file for a ``.csd`` folder; without
    it a ``folds.json`` inside the folder is used, else the CMU SDK's standard MOSEI folds.
    """
    if name_or_path in NAMES:
        if data_dir is None:
            raise DataError(
                f"dataset '{name_or_path}' needs --data-dir, the folder holding its files"
            )
        return _load_named(name_or_path, Path(data_dir), cache_dir)
    path = Path(name_or_path)
    if not path.exists() and data_dir is not None and (Path(data_dir) / path).exists():
        path = Path(data_dir) / path
    return load_path(path, folds=folds, cache_dir=cache_dir)


def _load_named(name: str, data_dir: Path, cache_dir: CacheDir) -> MultimodalDataset:
    if name == "mosei":
        return _cached_file(data_dir / MOSEI_PT, cache_dir, MOSEI_LABELS)
    if name == "mosei-unaligned":
        return _cached_file(data_dir / MOSEI_UNALIGNED_PKL, cache_dir)
    for candidate in M3ED_FILES:
        if (data_dir / candidate).is_file():
            return _cached_file(data_dir / candidate, cache_dir, M3ED_LABELS)
    raise data_error(data_dir, f"none of {', '.join(M3ED_FILES)} found", M3ED_PICKLE)


def load_path(
    path: str | Path, folds: str | Path | None = None, cache_dir: CacheDir = None
) -> MultimodalDataset:
    """Load a dataset file or folder, detecting its format from what it holds."""
    path = Path(path)
    if path.is_dir():
        if (path / META_FILE).is_file():
            return read_packed(path)
        csd_files = sorted(path.glob("*.csd"))
        if csd_files:
            if folds is None and (path / "folds.json").is_file():
                folds = path / "folds.json"
            sources = [*csd_files, *([Path(folds)] if folds is not None else [])]
            folds_map = load_folds(folds) if folds is not None else None
            return cached_dataset(
                sources,
                lambda out: write_packed(out, read_csd_folder(path, folds_map)),
                cache_dir,
                source=str(path),
            )
        raise data_error(path, f"folder has neither {META_FILE} nor .csd files", CSD_FOLDER)
    if not path.is_file():
        raise data_error(path, "not found", ANY_PATH)
    return _cached_file(path, cache_dir)


def _labels_source(path: Path) -> Path | None:
    """The CARAT ``.pt`` beside a pickle: a MulT pickle's emotion labels come from it."""
    beside = path.parent / MOSEI_PT
    return beside if path.suffix == ".pkl" and beside.is_file() else None


def _cached_file(
    path: Path, cache_dir: CacheDir, label_names: list[str] | None = None
) -> MultimodalDataset:
    if not path.is_file():
        fmt = M3ED_PICKLE if label_names == M3ED_LABELS else CARAT_PT
        raise data_error(path, "file not found", fmt)
    labels = _labels_source(path)
    return cached_dataset(
        [path, *([labels] if labels is not None else [])],
        lambda out: _convert_file(path, out, cache_dir, label_names),
        cache_dir,
    )


def _convert_file(
    path: Path, out: Path, cache_dir: CacheDir, label_names: list[str] | None
) -> None:
    """Read a benchmark file (the whole object, streamed from disk) and write its splits into
    the packed folder ``out`` a thousand clips at a time."""
    raw = load_file(path, ANY_PATH if label_names is None else _format_of(label_names))
    if isinstance(raw, list | tuple):
        write_packed(out, dataset_from_m3ed_pickle(raw, path))
        return
    train = raw.get("train") if isinstance(raw, dict) else None
    if isinstance(train, dict) and PT_KEYS["text"] in train:
        if label_names is None:
            label_names, name = infer_label_set(raw)
        else:
            name = "m3ed" if label_names == M3ED_LABELS else "mosei"
        header = PackedHeader(name, list(label_names), aligned=True, source=str(path))
        chunks = pt_chunks(raw, path, label_names, _format_of(label_names))
    elif isinstance(train, dict) and "vision" in train:
        labels_path = _labels_source(path) or path.parent / MOSEI_PT
        if not labels_path.is_file():
            raise data_error(
                path,
                f"MulT pickles carry no emotion labels and {labels_path} (their source) is missing",
                CARAT_PT,
            )
        aligned = mult_is_aligned(raw)
        header = PackedHeader(mult_name(aligned), list(MOSEI_LABELS), aligned, source=str(path))
        labels_by_split = _labels_by_split(_cached_file(labels_path, cache_dir, MOSEI_LABELS))
        chunks = mult_chunks(raw, path, labels_by_split, labels_path)
    else:
        raise data_error(path, "holds no known dataset layout", ANY_PATH)
    total = sum(len(part.get("tgt", part.get("text", []))) for part in _splits_of(raw))
    writer = PackedWriter(out, header)
    with tqdm(total=total, unit="clip", desc=f"converting {path.name}", disable=None) as bar:
        for split, chunk in chunks:
            writer.add(split, chunk)
            bar.update(len(chunk))
    writer.finish()


def _format_of(label_names: list[str]) -> FileFormat:
    return M3ED_PICKLE if label_names == M3ED_LABELS else CARAT_PT


def _splits_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return [raw[split] for split in SPLITS if isinstance(raw.get(split), dict)]


def _labels_by_split(dataset: MultimodalDataset) -> dict[str, tuple[Any, list[str] | None]]:
    """Labels and clip ids per split; ids the file did not carry (``<split>-<row>``, made up
    by the reader) are given as None, so that the join goes by position."""
    out = {}
    for split, data in dataset.splits.items():
        made_up = data.ids == [f"{split}-{i}" for i in range(len(data))]
        out[split] = (data.labels, None if made_up else list(data.ids))
    return out
