"""Our own dataset format, for data built from raw video: a folder with ``dataset.json`` and
uncompressed Arrow IPC (Feather v2) shards per split (``<split>-<generation>-NNNNN.arrow``).

Each shard row is one clip: ``id``, ``labels`` and, per modality, the flattened features
(``<m>``), the mask (``<m>_mask``) and the ``[L, D]`` shape (``<m>_shape``), so a shard is
readable on its own (pandas, polars, DuckDB).  Shards and ``dataset.json`` are written under a
temporary name and renamed into place, and ``dataset.json`` is written last: a folder with a
``dataset.json`` is always complete.  Reading memory-maps the shards and copies each column
once into the split's arrays.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from carat.data.formats import PACKED, data_error
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData

FORMAT_NAME = "carat-packed"
FORMAT_VERSION = 1
META_FILE = "dataset.json"


def _fixed_list(flat: np.ndarray, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)


def _shard_table(split: SplitData, start: int, stop: int) -> pa.Table:
    n = stop - start
    columns: dict[str, pa.Array] = {
        "id": pa.array(split.ids[start:stop], type=pa.string()),
        "labels": _fixed_list(
            split.labels[start:stop].astype(np.float32).ravel(), split.labels.shape[1]
        ),
    }
    for m in MODALITIES:
        x = np.ascontiguousarray(split.features[m][start:stop], dtype=np.float32)
        length, dim = x.shape[1], x.shape[2]
        columns[m] = _fixed_list(x.ravel(), length * dim)
        columns[f"{m}_mask"] = _fixed_list(
            split.masks[m][start:stop].astype(np.int8).ravel(), length
        )
        columns[f"{m}_shape"] = _fixed_list(np.tile(np.array([length, dim], np.int32), n), 2)
    return pa.table(columns)


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_packed(out_dir: str | Path, dataset: MultimodalDataset, shard_rows: int = 1000) -> Path:
    """Write ``dataset`` as a packed folder; returns the folder.

    Each write names its shards with a fresh generation tag, so rewriting a folder never
    touches the shards its current ``dataset.json`` lists; the old ones are removed only after
    the new ``dataset.json`` is in place.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generation = uuid.uuid4().hex[:8]
    shards: dict[str, list[str]] = {}
    for name in SPLITS:
        split = dataset.splits[name]
        shards[name] = []
        for index, start in enumerate(range(0, max(len(split), 1), shard_rows)):
            shard = f"{name}-{generation}-{index:05d}.arrow"
            table = _shard_table(split, start, min(start + shard_rows, len(split)))
            _write_atomic(
                out / shard,
                lambda p, t=table: feather.write_feather(t, p, compression="uncompressed"),
            )
            shards[name].append(shard)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": dataset.name,
        "label_names": list(dataset.label_names),
        "aligned": dataset.aligned,
        "feature_spec": dataset.feature_spec,
        "dims": dataset.dims,
        "lengths": dataset.lengths,
        "splits": {
            name: {"rows": len(dataset.splits[name]), "shards": shards[name]} for name in SPLITS
        },
        "source": dataset.source,
    }
    _write_atomic(out / META_FILE, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    current = {shard for names in shards.values() for shard in names}
    for stale in out.glob("*.arrow"):
        if stale.name not in current:
            stale.unlink()
    return out


def _read_meta(folder: Path) -> dict:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise data_error(folder, f"no {META_FILE}", PACKED)
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise data_error(meta_path, f"not valid JSON ({exc})", PACKED) from None
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise data_error(
            meta_path,
            f"format {meta.get('format')!r} version {meta.get('format_version')!r}, "
            f"this carat reads {FORMAT_NAME!r} version {FORMAT_VERSION}",
            PACKED,
        )
    return meta


def _column(tables: list[pa.Table], name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Concatenate one fixed-size-list column of all shards into an ``[N, *shape]`` array."""
    parts = [
        chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, *shape)
        for table in tables
        for chunk in table.column(name).chunks
    ]
    return (
        np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros((0, *shape), dtype)
    )


def _step_shape(tables: list[pa.Table], modality: str, meta: dict) -> tuple[int, int]:
    """``[L, D]`` of a modality in this split, from its shape column (the meta if empty)."""
    for table in tables:
        if table.num_rows:
            length, dim = table.column(f"{modality}_shape")[0].as_py()
            return int(length), int(dim)
    return int(meta["lengths"][modality]), int(meta["dims"][modality])


def read_packed(path: str | Path) -> MultimodalDataset:
    """Read a packed dataset folder written by :func:`write_packed`."""
    folder = Path(path)
    meta = _read_meta(folder)
    num_labels = len(meta["label_names"])
    splits: dict[str, SplitData] = {}
    for name in SPLITS:
        info = meta["splits"][name]
        tables = []
        for shard in info["shards"]:
            shard_path = folder / shard
            if not shard_path.is_file():
                raise data_error(shard_path, "shard listed in dataset.json is missing", PACKED)
            tables.append(pa.ipc.open_file(pa.memory_map(str(shard_path))).read_all())
        rows = sum(t.num_rows for t in tables)
        if rows != info["rows"]:
            raise data_error(
                folder, f"split '{name}' has {rows} rows, dataset.json says {info['rows']}", PACKED
            )
        features, masks = {}, {}
        for m in MODALITIES:
            length, dim = _step_shape(tables, m, meta)
            features[m] = _column(tables, m, (length, dim), np.float32)
            masks[m] = _column(tables, f"{m}_mask", (length,), np.int64)
        splits[name] = SplitData(
            features=features,
            masks=masks,
            labels=_column(tables, "labels", (num_labels,), np.float32),
            ids=[str(i) for t in tables for i in t.column("id").to_pylist()],
        )
    return MultimodalDataset(
        name=meta["name"],
        splits=splits,
        label_names=list(meta["label_names"]),
        aligned=bool(meta["aligned"]),
        feature_spec=meta.get("feature_spec"),
        source=str(folder),
    )
