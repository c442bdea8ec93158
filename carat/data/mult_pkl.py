"""MulT's MOSEI pickles (``mosei_senti_data.pkl`` aligned, ``..._noalign.pkl`` unaligned).

Each split holds ``text``, ``vision``, ``audio`` arrays and ``id``; the ``labels`` there are
sentiment only, so the emotion labels come from the CARAT ``train_valid_test.pt``.  The authors
pair the two files by row position without checking; we join by clip id where both files have
ids, fall back to position only when the counts agree, and refuse any count mismatch.
Masks mark zero padding as in :func:`carat.data.mosei_pt.nonzero_step_masks`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from carat.data.formats import MULT_PKL, data_error
from carat.data.mosei_pt import CHUNK_ROWS, split_chunks
from carat.data.types import MODALITIES, SPLITS, SplitData
from carat.errors import DataError

log = logging.getLogger(__name__)

MULT_KEYS: dict[str, str] = {"text": "text", "visual": "vision", "audio": "audio"}


def _id_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value).strip()


def clip_ids(raw_ids: Any) -> list[str] | None:
    """MulT ids as strings: a 1-D array of ids, or rows whose fields are joined with '_'."""
    if raw_ids is None:
        return None
    ids = np.asarray(raw_ids)
    if ids.ndim == 1:
        return [_id_text(v) for v in ids]
    return ["_".join(_id_text(v) for v in np.ravel(row)) for row in ids]


def _join_order(
    n: int,
    feature_ids: list[str] | None,
    label_ids: list[str] | None,
    pkl: Path,
    pt: Path,
    split: str,
) -> np.ndarray:
    """Row order of the labels that matches the features (identity for a position join)."""
    usable = (
        feature_ids is not None
        and label_ids is not None
        and len(set(feature_ids)) == len(feature_ids)
        and len(set(label_ids)) == len(label_ids)
    )
    if not usable:
        log.info("%s split '%s': joining labels from %s by position", pkl, split, pt)
        return np.arange(n)
    where = {clip: i for i, clip in enumerate(label_ids)}
    missing = [clip for clip in feature_ids if clip not in where]
    if missing:
        raise DataError(
            f"{pkl} split '{split}': {len(missing)} clip ids (e.g. {missing[0]!r}) have no "
            f"labels in {pt}; use the two files from the same release"
        )
    return np.array([where[clip] for clip in feature_ids])


LabelsBySplit = dict[str, tuple[np.ndarray, list[str] | None]]


def mult_is_aligned(raw: Any) -> bool:
    """Whether a loaded MulT pickle holds word-aligned data (all modalities equally long)."""
    part = raw.get("train") if isinstance(raw, dict) else None
    if not isinstance(part, dict) or any(k not in part for k in MULT_KEYS.values()):
        return True  # mult_chunks reports the damage
    return len({np.shape(part[k][0])[0] for k in MULT_KEYS.values() if len(part[k])}) <= 1


def mult_chunks(
    raw: Any,
    path: str | Path,
    labels_by_split: LabelsBySplit,
    labels_path: str | Path,
    rows: int = CHUNK_ROWS,
) -> Iterator[tuple[str, SplitData]]:
    """The splits of a loaded MulT pickle, ``rows`` clips at a time, with the emotion labels
    (and clip ids, where the ``.pt`` has them) of ``labels_path`` joined to them.

    Each split's arrays are taken out of ``raw`` as it is converted.
    """
    path, labels_path = Path(path), Path(labels_path)
    if not isinstance(raw, dict):
        raise data_error(path, f"holds a {type(raw).__name__}, not a dict of splits", MULT_PKL)
    for split in SPLITS:
        part = raw.get(split)
        if not isinstance(part, dict) or any(k not in part for k in MULT_KEYS.values()):
            raise data_error(
                path, f"split '{split}' is missing or lacks text/vision/audio", MULT_PKL
            )
        items = {m: part.pop(MULT_KEYS[m]) for m in MODALITIES}
        n = len(items["text"])
        if any(len(x) != n for x in items.values()):
            counts = {MULT_KEYS[m]: len(items[m]) for m in MODALITIES}
            raise data_error(path, f"split '{split}' has unequal counts {counts}", MULT_PKL)
        labels, label_ids = labels_by_split[split]
        if len(labels) != n:
            raise DataError(
                f"{path} split '{split}' has {n} clips but {labels_path} has {len(labels)} "
                "labelled clips: the files do not describe the same clips; "
                "use the MulT pickle and the CARAT .pt of the same MOSEI release"
            )
        ids = clip_ids(part.get("id"))
        labels = labels[_join_order(n, ids, label_ids, path, labels_path, split)]
        ids = ids if ids is not None else [f"{split}-{i}" for i in range(n)]
        yield from split_chunks(split, items, MULT_KEYS, labels, ids, path, MULT_PKL, rows)
        raw[split] = None


def mult_name(aligned: bool) -> str:
    return "mosei" if aligned else "mosei-unaligned"
