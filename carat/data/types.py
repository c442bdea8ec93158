"""In-memory dataset types shared by every adapter, the trainer and the pipeline.

All adapters (benchmark files, our packed Arrow datasets, synthetic data) return a
:class:`MultimodalDataset`; the trainer only ever sees this type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODALITIES: tuple[str, str, str] = ("text", "visual", "audio")
SPLITS: tuple[str, str, str] = ("train", "valid", "test")


class RowChunks(np.lib.mixins.NDArrayOperatorsMixin):
    """One column's rows held in several arrays (e.g. memory-mapped shards), read as one
    read-only ``[N, ...]`` array of ``dtype``: indexing with row numbers gathers just those
    rows, so a batch never loads the whole column.  Anything else an array does (``np.*``
    functions, operators, ``.sum()`` ...) works on the whole column, loaded for the occasion.
    """

    def __init__(self, parts: Sequence[np.ndarray], row_shape: tuple[int, ...], dtype: Any):
        self.parts = [p for p in parts if len(p)]
        self.dtype = np.dtype(dtype)
        self.offsets = np.cumsum([0, *(len(p) for p in self.parts)])
        self.shape = (int(self.offsets[-1]), *(int(n) for n in row_shape))
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, tuple):  # rows first, then the rest within them
            rows = self[index[0]]
            one_row = isinstance(index[0], int | np.integer)
            rest = index[1:] if one_row else (slice(None), *index[1:])
            return rows[rest]
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        rows = np.asarray(index)
        if rows.dtype == bool and rows.ndim > 1:  # a mask over rows and steps: numpy's rule
            return np.asarray(self)[rows]
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.ndim == 0:
            return self[rows.reshape(1)][0]
        rows = np.where(rows < 0, rows + len(self), rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for part in np.unique(part_of):
            chosen = part_of == part
            out[chosen] = self.parts[part][rows[chosen] - self.offsets[part]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[np.arange(len(self))]
        return whole if dtype is None else whole.astype(dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        arrays = [np.asarray(x) if isinstance(x, RowChunks) else x for x in inputs]
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "parts":  # not set yet (copy, pickle)
            raise AttributeError(name)
        return getattr(np.asarray(self), name)


Rows = np.ndarray | RowChunks  # an in-memory array or a memory-mapped column


@dataclass
class SplitData:
    """One split. Arrays are padded to a fixed length per modality.

    ``masks[m]`` is 1 for real steps and 0 for padding (int64 ``[N, L_m]``).
    ``labels`` is float32 ``[N, C]`` with values in {0, 1}.
    """

    features: dict[str, Rows]  # modality -> float32 [N, L_m, D_m]
    masks: dict[str, Rows]  # modality -> int64 [N, L_m]
    labels: np.ndarray  # float32 [N, C]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in MODALITIES:
            if len(self.features[name]) != n or len(self.masks[name]) != n:
                raise ValueError(
                    f"split has {n} labels but {len(self.features[name])} {name} rows "
                    f"and {len(self.masks[name])} {name} masks"
                )
        if len(self.ids) != n:
            raise ValueError(f"split has {n} labels but {len(self.ids)} ids")


@dataclass
class MultimodalDataset:
    """A whole benchmark or user dataset: three splits plus what describes them."""

    name: str
    splits: dict[str, SplitData]
    label_names: list[str]
    aligned: bool = True
    feature_spec: dict[str, Any] | None = (
        None  # modality -> FeaturizerSpec.to_dict(), if built by us
    )
    source: str = ""  # the file or folder it came from
    # content hash (carat.data.fingerprint); set where it is known without reading every array
    fingerprint: str | None = None

    @property
    def dims(self) -> dict[str, int]:
        train = self.splits["train"]
        return {m: int(train.features[m].shape[-1]) for m in MODALITIES}

    @property
    def lengths(self) -> dict[str, int]:
        train = self.splits["train"]
        return {m: int(train.features[m].shape[1]) for m in MODALITIES}

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass
class Batch:
    """What the model consumes; tensors live on one device."""

    features: dict[str, Any] = field(default_factory=dict)  # modality -> float [B, L, D]
    masks: dict[str, Any] = field(default_factory=dict)  # modality -> int64 [B, L]
    labels: Any = None  # float [B, C]
    # bool [B, 3] in MODALITIES order: which modalities each sample has; None = all of them
    # (or, with model.mask_padding, those whose mask has a real step)
    present: Any = None
