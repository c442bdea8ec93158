"""CMU Multimodal SDK computational sequences (``.csd``): our own HDF5 reader and writer,
and an adapter for a folder of word-aligned MOSEI sequences.

A ``.csd`` file is plain HDF5: ``<root>/data/<entry>/{features,intervals}`` plus
``<root>/metadata/<key>`` (one variable-length string each).  Reading and writing it with h5py
keeps the SDK (and its network-bound downloads) out of the runtime; tests check that the SDK
reads what we write and that we read what it writes.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

import h5py
import numpy as np

from carat.data.formats import CSD_FILE, CSD_FOLDER, MOSEI_LABELS, data_error
from carat.data.mosei_pt import finite_float32
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData
from carat.errors import DataError

log = logging.getLogger(__name__)

# The metadata keys the SDK expects; it prompts on stdin for any that are missing.
SDK_METADATA_KEYS: tuple[str, ...] = (
    "root name",
    "computational sequence description",
    "computational sequence version",
    "alignment compatible",
    "dataset name",
    "dataset version",
    "creator",
    "contact",
    "featureset bib citation",
    "dataset bib citation",
)

# Which sequence plays which role, by root name or file name (first match wins).
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "text": ("glove",),
    "visual": ("facet", "openface"),
    "audio": ("covarep", "opensmile"),
    "labels": ("all labels", "all_labels", "emotion labels", "emotion_labels", "labels"),
}
STANDARD_FOLDS_MODULE = "mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI.cmu_mosei_std_folds"


def write_csd(
    path: str | Path,
    root_name: str,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    metadata: dict[str, str],
) -> None:
    """Write ``{entry: (features [T, D], intervals [T, 2])}`` as an SDK computational sequence.

    The file appears atomically (written under a temporary name, then renamed).  Metadata keys
    the SDK requires but the caller did not give are written as "not given".  HDF5 reads '/'
    in a name as a group separator, so entry ids are stored with '%' and '/' percent-encoded
    (clip ``a/b`` becomes group ``a%2Fb``); :func:`read_csd` decodes them.
    """
    path = Path(path)
    for entry, (features, intervals) in data.items():
        if features.ndim != 2 or intervals.shape != (len(features), 2):
            raise DataError(
                f"{path}: entry {entry!r} has features {features.shape} and intervals "
                f"{intervals.shape}; expected [T, D] and [T, 2]"
            )
    meta = {key: "not given" for key in SDK_METADATA_KEYS} | dict(metadata)
    meta["root name"] = root_name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as h5:
            root = h5.create_group(root_name)
            group = root.create_group("data")
            for entry, (features, intervals) in data.items():
                item = group.create_group(_encode_entry(entry))
                item.create_dataset("features", data=features)
                item.create_dataset("intervals", data=intervals)
            meta_group = root.create_group("metadata")
            for key, value in meta.items():
                ds = meta_group.create_dataset(key, (1,), dtype=h5py.string_dtype())
                ds[0] = str(value)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _encode_entry(entry: str) -> str:
    return entry.replace("%", "%25").replace("/", "%2F")


def _decode_entry(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_csd(
    path: str | Path,
) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Read a computational sequence: ``(root name, {entry: (features, intervals)}, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise data_error(path, "file not found", CSD_FILE)
    try:
        with h5py.File(path, "r") as h5:
            roots = list(h5.keys())
            if len(roots) != 1:
                raise data_error(path, f"has {len(roots)} top-level groups {roots}", CSD_FILE)
            root = h5[roots[0]]
            if "data" not in root:
                raise data_error(path, f"group '{roots[0]}' has no 'data'", CSD_FILE)
            data = {
                _decode_entry(entry): (group["features"][()], group["intervals"][()])
                for entry, group in root["data"].items()
            }
            metadata = {
                key: _text(ds[0] if ds.shape else ds[()])
                for key, ds in root.get("metadata", {}).items()
            }
    except (OSError, KeyError) as exc:
        raise data_error(path, f"not a readable computational sequence ({exc})", CSD_FILE) from None
    return roots[0], data, metadata


def standard_mosei_folds() -> dict[str, list[str]] | None:
    """The SDK's standard MOSEI train/valid/test video ids, if the SDK is installed."""
    try:
        folds = importlib.import_module(STANDARD_FOLDS_MODULE)
    except ImportError:
        return None
    return {
        "train": list(folds.standard_train_fold),
        "valid": list(folds.standard_valid_fold),
        "test": list(folds.standard_test_fold),
    }


def load_folds(path: str | Path) -> dict[str, list[str]]:
    """A user folds file: JSON ``{"train": [video ids], "valid": [...], "test": [...]}``."""
    path = Path(path)
    try:
        folds = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not a readable folds file ({exc}); expected JSON "
            '{"train": [video ids], "valid": [...], "test": [...]}'
        ) from None
    if not isinstance(folds, dict) or any(not isinstance(folds.get(s), list) for s in SPLITS):
        raise DataError(f"{path}: a folds file needs lists 'train', 'valid' and 'test'")
    return {s: [str(v) for v in folds[s]] for s in SPLITS}


def _find_roles(folder: Path) -> dict[str, Path]:
    """Pick the text/visual/audio/labels sequence among the folder's ``.csd`` files."""
    files = sorted(folder.glob("*.csd"))
    names = {f: _root_name(f).lower() + " " + f.stem.lower() for f in files}
    roles: dict[str, Path] = {}
    for role, patterns in ROLE_NAMES.items():
        for pattern in patterns:
            found = [f for f in files if pattern in names[f] and f not in roles.values()]
            if found:
                roles[role] = found[0]
                break
    missing = [role for role in ROLE_NAMES if role not in roles]
    if missing:
        found_names = ", ".join(f.name for f in files) or "no .csd files"
        raise data_error(
            folder, f"no sequence for {', '.join(missing)} (found {found_names})", CSD_FOLDER
        )
    return roles


def _root_name(path: Path) -> str:
    try:
        with h5py.File(path, "r") as h5:
            return next(iter(h5.keys()), "")
    except OSError:
        raise data_error(path, "not an HDF5 computational sequence", CSD_FILE) from None


def _entry_key(entry: str) -> tuple[str, int]:
    """Sort ``videoid[k]`` entries by video, then segment number."""
    match = re.fullmatch(r"(.*)\[(\d+)\]", entry)
    return (match.group(1), int(match.group(2))) if match else (entry, -1)


def _emotion_labels(values: np.ndarray, entry: str, path: Path) -> np.ndarray:
    """SDK "All Labels" rows [sentiment, 6 emotions] (or the 6 emotions) -> present if > 0."""
    rows = np.asarray(values, dtype=np.float64).reshape(-1, values.shape[-1]).mean(axis=0)
    if rows.shape[0] == len(MOSEI_LABELS) + 1:
        rows = rows[1:]
    if rows.shape[0] != len(MOSEI_LABELS):
        raise data_error(
            path, f"entry {entry!r} has {rows.shape[0]} label columns, not 7 or 6", CSD_FOLDER
        )
    return (rows > 0).astype(np.float32)


def _pad(seq: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros((length, seq.shape[1]), dtype=np.float32)
    out[: min(length, len(seq))] = seq[:length]
    return out


def read_csd_folder(
    folder: str | Path, folds: dict[str, list[str]] | None = None, max_len: int = 60
) -> MultimodalDataset:
    """A folder of word-aligned MOSEI ``.csd`` files -> dataset in the standard folds.

    Entries must be shared by all four sequences (others are dropped, with a log line), and the
    three modalities must have one row per word.  Sequences are cut or zero-padded to
    ``max_len`` at the end; masks mark the real words.  Without ``folds`` the SDK's standard
    MOSEI folds are used.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise data_error(folder, "folder not found", CSD_FOLDER)
    folds = folds if folds is not None else standard_mosei_folds()
    if folds is None:
        raise data_error(
            folder,
            "no folds: the CMU SDK (cmu-multimodal-sdk) is not installed; give a folds file",
            CSD_FOLDER,
        )
    roles = _find_roles(folder)
    sequences = {role: read_csd(path)[1] for role, path in roles.items()}
    shared = set.intersection(*(set(seq) for seq in sequences.values()))
    dropped = {role: len(set(seq) - shared) for role, seq in sequences.items()}
    if any(dropped.values()):
        log.info("%s: dropping entries not in all four sequences: %s", folder, dropped)
    split_of = {video: split for split in SPLITS for video in folds[split]}
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    outside = 0
    for entry in sorted(shared, key=_entry_key):
        split = split_of.get(_entry_key(entry)[0])
        if split is None:
            outside += 1
        else:
            by_split[split].append(entry)
    if outside:
        log.info("%s: %d entries belong to videos in no fold; left out", folder, outside)
    splits: dict[str, SplitData] = {}
    for split, entries in by_split.items():
        if not entries:
            raise data_error(folder, f"no entries belong to the '{split}' fold", CSD_FOLDER)
        splits[split] = _split(entries, sequences, roles, max_len)
    return MultimodalDataset(
        name="mosei-csd",
        splits=splits,
        label_names=list(MOSEI_LABELS),
        aligned=True,
        source=str(folder),
    )


def _split(
    entries: list[str],
    sequences: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    roles: dict[str, Path],
    max_len: int,
) -> SplitData:
    features: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    masks = np.zeros((len(entries), max_len), dtype=np.int64)
    for i, entry in enumerate(entries):
        steps = {m: len(sequences[m][entry][0]) for m in MODALITIES}
        if len(set(steps.values())) != 1:
            raise data_error(
                roles["text"].parent,
                f"entry {entry!r} is not word-aligned (steps per modality {steps}); "
                "align the sequences to the words with mmdatasdk first",
                CSD_FOLDER,
            )
        for m in MODALITIES:
            rows = finite_float32(sequences[m][entry][0], roles[m], entry)
            features[m].append(_pad(rows.reshape(len(rows), -1), max_len))
        masks[i, : min(max_len, steps["text"])] = 1
    labels = np.stack(
        [_emotion_labels(sequences["labels"][e][0], e, roles["labels"]) for e in entries]
    )
    return SplitData(
        features={m: np.stack(features[m]) for m in MODALITIES},
        masks={m: masks.copy() for m in MODALITIES},
        labels=labels,
        ids=list(entries),
    )
