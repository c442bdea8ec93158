"""The CARAT/TAILOR ``train_valid_test.pt`` layout (aligned MOSEI, and M3ED once converted).

A dict with splits ``train``/``valid``/``test``; each split holds ``src-text``, ``src-visual``,
``src-audio`` (N arrays ``[L, D]`` or one ``[N, L, D]`` array) and ``tgt`` (N lists
``[2, e1, ..., ek, 3]`` where ``e - 4`` is the label column).  Non-finite values (COVAREP's
``-inf``) become 0, as in the authors' loader.

The file stores no lengths; the authors' loader uses all-ones masks.  We mark as padding the
steps where every modality is exactly zero (see :func:`nonzero_step_masks`).  The ``paper``
presets (``model.mask_padding: false``) ignore masks, so they still see what the authors' model
saw; presets that mask padding get real masks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carat.data.formats import CARAT_PT, M3ED_LABELS, MOSEI_LABELS, FileFormat, data_error
from carat.data.safe_pickle import load_file
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData

log = logging.getLogger(__name__)

PT_KEYS: dict[str, str] = {"text": "src-text", "visual": "src-visual", "audio": "src-audio"}
FIRST_LABEL_TOKEN = 4  # tgt tokens 0..3 are <blank>, <unk>, <s>, </s>
CHUNK_ROWS = 1000  # clips converted at a time (bounds the conversion's extra memory)


def finite_float32(x: np.ndarray, path: str | Path, what: str) -> np.ndarray:
    """Cast to float32 and zero non-finite entries (the authors zero audio ``-inf``)."""
    x = np.asarray(x, dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        log.info("%s: %s has %d non-finite values, set to 0", path, what, int(bad.sum()))
        x = np.where(bad, np.float32(0), x)
    return x


def nonzero_step_masks(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """int64 ``[N, L]`` masks: 1 where a step holds any nonzero value, 0 for zero padding.

    When all modalities share their steps (aligned data) a step is real if any modality is
    nonzero there.  A clip with no nonzero step keeps an all-ones mask, so that attention
    always has something to attend to.
    """
    nonzero = {m: (x != 0).any(axis=2) for m, x in features.items()}
    if len({x.shape[1] for x in features.values()}) == 1:
        shared = np.logical_or.reduce(list(nonzero.values()))
        nonzero = {m: shared for m in features}
    masks = {}
    for m, real in nonzero.items():
        mask = real.astype(np.int64)
        mask[~real.any(axis=1)] = 1
        masks[m] = mask
    return masks


def stack_items(items: Any, path: str | Path, what: str, fmt: FileFormat) -> np.ndarray:
    """N per-sample arrays (or one stacked array / tensor) -> float32 ``[N, L, D]``."""
    try:
        if hasattr(items, "numpy"):  # a torch tensor saved instead of numpy arrays
            items = items.numpy()
        x = np.stack([np.asarray(item) for item in items]) if isinstance(items, list) else items
        x = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise data_error(path, f"{what} items do not stack into one array ({exc})", fmt) from None
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise data_error(path, f"{what} has shape {x.shape} and dtype {x.dtype}", fmt)
    return finite_float32(x, path, what)


def split_chunks(
    split: str,
    items: dict[str, Any],
    names: dict[str, str],
    labels: np.ndarray,
    ids: Sequence[str],
    path: str | Path,
    fmt: FileFormat,
    rows: int,
) -> Iterator[tuple[str, SplitData]]:
    """One split's clips as ``(split, SplitData)`` chunks of ``rows`` clips (one chunk, maybe
    empty, for an empty split); ``names[m]``: modality m's key in the file, for messages."""
    for start in range(0, max(len(labels), 1), rows):
        stop = min(start + rows, len(labels))
        features = {
            m: stack_items(items[m][start:stop], path, f"{split}.{names[m]}", fmt)
            for m in MODALITIES
        }
        chunk = SplitData(
            features=features,
            masks=nonzero_step_masks(features),
            labels=labels[start:stop],
            ids=ids[start:stop],
        )
        yield split, chunk


def tgt_to_multihot(
    tgt: Sequence[Sequence[int]], num_labels: int, path: str | Path, what: str, fmt: FileFormat
) -> np.ndarray:
    """``[2, e..., 3]`` token lists -> float32 ``[N, C]`` 0/1 (column ``e - 4``)."""
    labels = np.zeros((len(tgt), num_labels), dtype=np.float32)
    for i, tokens in enumerate(tgt):
        for token in list(tokens)[1:-1]:
            column = int(token) - FIRST_LABEL_TOKEN
            if not 0 <= column < num_labels:
                raise data_error(
                    path,
                    f"{what}[{i}] has label token {int(token)} outside "
                    f"{FIRST_LABEL_TOKEN}..{FIRST_LABEL_TOKEN + num_labels - 1}",
                    fmt,
                )
            labels[i, column] = 1.0
    return labels


def _split_dict(raw: Any, split: str, path: str | Path, fmt: FileFormat) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise data_error(path, f"holds a {type(raw).__name__}, not a dict of splits", fmt)
    part = raw.get(split)
    if not isinstance(part, dict):
        raise data_error(path, f"has no '{split}' split (keys: {sorted(map(str, raw))})", fmt)
    return part


def _split_ids(part: dict[str, Any], split: str, n: int) -> list[str]:
    """Clip ids when the file carries them (our synthetic files do), else split-index ids."""
    ids = part.get("id")
    if ids is not None and len(ids) == n:
        return [str(i) for i in ids]
    return [f"{split}-{i}" for i in range(n)]


def max_label_token(raw: Any) -> int:
    """Largest tgt token over all splits (9 for MOSEI, 10 for M3ED)."""
    tokens = [
        int(t)
        for split in SPLITS
        if isinstance(raw, dict) and isinstance(raw.get(split), dict)
        for seq in raw[split].get("tgt", [])
        for t in list(seq)[1:-1]
    ]
    return max(tokens, default=FIRST_LABEL_TOKEN)


def pt_chunks(
    raw: Any,
    path: str | Path,
    label_names: list[str],
    fmt: FileFormat = CARAT_PT,
    rows: int = CHUNK_ROWS,
) -> Iterator[tuple[str, SplitData]]:
    """The splits of an already loaded ``.pt`` dict, ``rows`` clips at a time.

    Each split's arrays are taken out of ``raw`` as it is converted, so that a large file is
    not held twice in memory.
    """
    for split in SPLITS:
        part = _split_dict(raw, split, path, fmt)
        missing = [k for k in (*PT_KEYS.values(), "tgt") if k not in part]
        if missing:
            raise data_error(path, f"split '{split}' lacks {', '.join(missing)}", fmt)
        items = {m: part.pop(PT_KEYS[m]) for m in MODALITIES}
        labels = tgt_to_multihot(part["tgt"], len(label_names), path, f"{split}.tgt", fmt)
        counts = {PT_KEYS[m]: len(items[m]) for m in MODALITIES} | {"tgt": len(labels)}
        if len(set(counts.values())) != 1:
            raise data_error(path, f"split '{split}' has unequal counts {counts}", fmt)
        ids = _split_ids(part, split, len(labels))
        yield from split_chunks(split, items, PT_KEYS, labels, ids, path, fmt, rows)
        raw[split] = None  # the split's arrays can go now


def concatenate_chunks(chunks: Iterator[tuple[str, SplitData]]) -> dict[str, SplitData]:
    """Whole in-memory splits from :func:`pt_chunks`-style chunks."""
    parts: dict[str, list[SplitData]] = {split: [] for split in SPLITS}
    for split, chunk in chunks:
        parts[split].append(chunk)
    return {
        split: SplitData(
            features={m: np.concatenate([c.features[m] for c in group]) for m in MODALITIES},
            masks={m: np.concatenate([c.masks[m] for c in group]) for m in MODALITIES},
            labels=np.concatenate([c.labels for c in group]),
            ids=[i for c in group for i in c.ids],
        )
        for split, group in parts.items()
    }


def dataset_from_pt(
    raw: Any, path: str | Path, label_names: list[str], name: str, fmt: FileFormat = CARAT_PT
) -> MultimodalDataset:
    """Build the dataset in memory from an already loaded ``.pt`` dict."""
    return MultimodalDataset(
        name=name,
        splits=concatenate_chunks(pt_chunks(raw, path, label_names, fmt)),
        label_names=list(label_names),
        aligned=True,
        source=str(path),
    )


def read_carat_pt(path: str | Path, label_names: list[str] | None = None) -> MultimodalDataset:
    """Read a ``train_valid_test.pt``-layout file.

    Without ``label_names`` the label set is inferred (:func:`infer_label_set`).
    """
    raw = load_file(path, CARAT_PT)
    if label_names is None:
        label_names, name = infer_label_set(raw)
    else:
        name = "m3ed" if label_names == M3ED_LABELS else "mosei"
    return dataset_from_pt(raw, path, label_names, name)


def infer_label_set(raw: Any) -> tuple[list[str], str]:
    """MOSEI's six labels (tgt tokens up to 9) or M3ED's seven (a token 10): names and name."""
    if max_label_token(raw) > FIRST_LABEL_TOKEN + len(MOSEI_LABELS) - 1:
        return list(M3ED_LABELS), "m3ed"
    return list(MOSEI_LABELS), "mosei"
