"""M3ED as CARAT uses it (CARAT-SPEC.md section 3.3): one sample per dialogue.

The M3ED feature pickle is a sequence; item 2 maps a dialogue id to one emotion per
utterance, items 3/4/5 map it to one text/visual/audio feature row per utterance, and items
7/8/9 list the train/val/test dialogue ids.  A sample's target is the *set* of emotions that
occur; its time steps are utterances, zero-padded or cut to 60.  Item 4 is what the authors
call "visual" (1024-d) and item 5 "audio" (342-d); by the file name these may be swapped, which
does not matter to CARAT (both encoders are configured alike).

The converted ``m3ed_data.pt`` that CARAT's reader writes has the MOSEI ``.pt`` layout with
seven labels (tgt 4..10) and is read by :mod:`carat.data.mosei_pt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carat.data.formats import M3ED_LABELS, M3ED_PICKLE, data_error
from carat.data.mosei_pt import dataset_from_pt, finite_float32
from carat.data.safe_pickle import load_file
from carat.data.types import SPLITS, MultimodalDataset, SplitData

M3ED_LENGTH = 60
LABELS_ITEM = 2
FEATURE_ITEMS: dict[str, int] = {"text": 3, "visual": 4, "audio": 5}
SPLIT_ITEMS: dict[str, int] = {"train": 7, "valid": 8, "test": 9}
_LABEL_COLUMN = {name: i for i, name in enumerate(M3ED_LABELS)}


def _label_column(value: Any, dialogue: str, path: Path) -> int:
    """An utterance emotion, given as its column index or its name (e.g. 'Happy')."""
    if isinstance(value, str | bytes):
        name = value.decode() if isinstance(value, bytes) else value
        column = _LABEL_COLUMN.get(name.strip().lower())
    else:
        column = int(value) if 0 <= int(value) < len(M3ED_LABELS) else None
    if column is None:
        raise data_error(
            path,
            f"dialogue {dialogue!r} has emotion {value!r}, not one of {M3ED_LABELS}",
            M3ED_PICKLE,
        )
    return column


def _rows(table: Mapping[Any, Any], dialogue: Any, what: str, path: Path) -> np.ndarray:
    if dialogue not in table:
        raise data_error(path, f"{what} has no entry for dialogue {dialogue!r}", M3ED_PICKLE)
    value = table[dialogue]
    rows = np.stack([np.ravel(r) for r in value]) if isinstance(value, list) else np.asarray(value)
    if rows.ndim != 2:
        raise data_error(path, f"{what}[{dialogue!r}] has shape {rows.shape}", M3ED_PICKLE)
    return finite_float32(rows, path, f"{what}[{dialogue!r}]")


def _split(data: Sequence[Any], dialogues: list[Any], path: Path) -> SplitData:
    n = len(dialogues)
    labels = np.zeros((n, len(M3ED_LABELS)), dtype=np.float32)
    features: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for m, item in FEATURE_ITEMS.items():
        per_dialogue = [_rows(data[item], d, f"item {item} ({m})", path) for d in dialogues]
        dims = {rows.shape[1] for rows in per_dialogue}
        if len(dims) > 1:
            raise data_error(
                path, f"item {item} ({m}) mixes feature sizes {sorted(dims)}", M3ED_PICKLE
            )
        features[m] = np.zeros((n, M3ED_LENGTH, dims.pop() if dims else 0), dtype=np.float32)
        masks[m] = np.zeros((n, M3ED_LENGTH), dtype=np.int64)
        for i, rows in enumerate(per_dialogue):
            kept = rows[:M3ED_LENGTH]
            features[m][i, : len(kept)] = kept
            masks[m][i, : len(kept)] = 1
    for i, dialogue in enumerate(dialogues):
        if dialogue not in data[LABELS_ITEM]:
            raise data_error(path, f"item 2 (labels) has no dialogue {dialogue!r}", M3ED_PICKLE)
        for value in np.ravel(np.asarray(data[LABELS_ITEM][dialogue], dtype=object)):
            labels[i, _label_column(value, str(dialogue), path)] = 1.0
    return SplitData(features=features, masks=masks, labels=labels, ids=[str(d) for d in dialogues])


def dataset_from_m3ed_pickle(data: Any, path: str | Path) -> MultimodalDataset:
    """The M3ED authors' loaded feature pickle -> dialogue-level multi-label dataset.

    Masks mark the real utterances (the authors' loader uses all ones; the
    ``model.mask_padding`` switch decides whether the model looks at them).
    """
    path = Path(path)
    if not isinstance(data, list | tuple) or len(data) < 10:
        raise data_error(
            path, f"holds a {type(data).__name__}, not a sequence of 10+ items", M3ED_PICKLE
        )
    for item in (LABELS_ITEM, *FEATURE_ITEMS.values()):
        if not isinstance(data[item], Mapping):
            raise data_error(
                path, f"item {item} is a {type(data[item]).__name__}, not a dict", M3ED_PICKLE
            )
    splits = {split: _split(data, list(data[SPLIT_ITEMS[split]]), path) for split in SPLITS}
    return MultimodalDataset(
        name="m3ed", splits=splits, label_names=list(M3ED_LABELS), aligned=True, source=str(path)
    )


def read_m3ed(path: str | Path) -> MultimodalDataset:
    """Either M3ED form: the converted ``m3ed_data.pt`` (a dict) or the feature pickle."""
    data = load_file(path, M3ED_PICKLE)
    if isinstance(data, dict):
        return dataset_from_pt(data, path, list(M3ED_LABELS), "m3ed", M3ED_PICKLE)
    return dataset_from_m3ed_pickle(data, Path(path))
