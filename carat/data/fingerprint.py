"""A dataset's content hash: what a checkpoint and a model directory record of their data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np

from carat.data.types import MODALITIES, MultimodalDataset, RowChunks, Rows


def _contiguous_parts(array: Rows) -> Iterator[np.ndarray]:
    """The array's bytes in row order, a part at a time (a memory-mapped column is never
    loaded whole)."""
    parts = array.parts if isinstance(array, RowChunks) else [array]
    for part in parts:
        yield np.ascontiguousarray(part, dtype=array.dtype)


def dataset_fingerprint(dataset: MultimodalDataset) -> str:
    """A content hash of a dataset: ids, labels and every feature and mask array of each split
    (``dataset.fingerprint`` when the dataset already knows it)."""
    if dataset.fingerprint is not None:
        return dataset.fingerprint
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([dataset.label_names, dataset.aligned]).encode())
    for name in sorted(dataset.splits):
        split = dataset.splits[name]
        digest.update(json.dumps([name, list(split.ids)]).encode())
        digest.update(np.ascontiguousarray(split.labels, dtype=np.float32).tobytes())
        for m in MODALITIES:
            for array in (split.features[m], split.masks[m]):
                digest.update(str(array.shape).encode())
                for part in _contiguous_parts(array):
                    digest.update(memoryview(part).cast("B"))
    return digest.hexdigest()
