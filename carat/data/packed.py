"""Our own dataset format, for data built from raw video: a folder with ``dataset.json`` and
uncompressed Arrow IPC (Feather v2) shards per split (``<split>-<generation>-NNNNN.arrow``).

Each shard row is one clip: ``id``, ``labels`` and, per modality, the flattened features
(``<m>``), the mask (``<m>_mask``) and the ``[L, D]`` shape (``<m>_shape``), so a shard is
readable on its own (pandas, polars, DuckDB).  Shards and ``dataset.json`` are written under a
temporary name and renamed into place, and ``dataset.json`` is written last: a folder with a
``dataset.json`` is always complete.  Reading memory-maps the shards; features and masks are
read from them row by row as batches ask for them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from carat.data.formats import PACKED, data_error
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, RowChunks, SplitData

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


@dataclass
class PackedHeader:
    """What ``dataset.json`` says besides the splits."""

    name: str
    label_names: list[str]
    aligned: bool
    feature_spec: dict[str, Any] | None = None
    source: str = ""


class PackedWriter:
    """Writes a packed folder a few rows at a time, so that a dataset larger than memory
    can be converted: :meth:`add` rows of each split in order, then :meth:`finish`.

    Each writer names its shards with a fresh generation tag, so rewriting a folder never
    touches the shards its current ``dataset.json`` lists; the old ones are removed only after
    the new ``dataset.json`` is in place.
    """

    def __init__(self, out_dir: str | Path, header: PackedHeader, shard_rows: int = 1000):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.header = header
        self.shard_rows = shard_rows
        self.generation = uuid.uuid4().hex[:8]
        self.shards: dict[str, list[str]] = {name: [] for name in SPLITS}
        self.rows: dict[str, int] = {name: 0 for name in SPLITS}
        self.shapes: dict[str, tuple[int, int]] | None = None

    def add(self, split: str, data: SplitData) -> None:
        """Append ``data``'s rows to ``split`` (an empty ``data`` still fixes its shape)."""
        shapes = {m: tuple(int(n) for n in data.features[m].shape[1:]) for m in MODALITIES}
        if self.shapes is None or (split == "train" and not self.rows["train"] and len(data)):
            self.shapes = shapes
        starts = (
            range(0, len(data), self.shard_rows)
            if len(data)
            else ([] if self.shards[split] else [0])
        )
        for start in starts:
            shard = f"{split}-{self.generation}-{len(self.shards[split]):05d}.arrow"
            table = _shard_table(data, start, min(start + self.shard_rows, len(data)))
            _write_atomic(
                self.out / shard,
                lambda p, t=table: feather.write_feather(t, p, compression="uncompressed"),
            )
            self.shards[split].append(shard)
        self.rows[split] += len(data)

    def finish(self) -> Path:
        """Write ``dataset.json`` (last: a folder with one is complete); drop older shards."""
        if self.shapes is None or not all(self.shards.values()):
            raise ValueError(f"{self.out}: every split needs add() before finish()")
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": self.header.name,
            "label_names": list(self.header.label_names),
            "aligned": self.header.aligned,
            "feature_spec": self.header.feature_spec,
            "dims": {m: shape[1] for m, shape in self.shapes.items()},
            "lengths": {m: shape[0] for m, shape in self.shapes.items()},
            "splits": {
                name: {"rows": self.rows[name], "shards": self.shards[name]} for name in SPLITS
            },
            "source": self.header.source,
        }
        _write_atomic(
            self.out / META_FILE, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n")
        )
        current = {shard for names in self.shards.values() for shard in names}
        for stale in self.out.glob("*.arrow"):
            if stale.name not in current:
                stale.unlink()
        return self.out


def write_packed(out_dir: str | Path, dataset: MultimodalDataset, shard_rows: int = 1000) -> Path:
    """Write ``dataset`` as a packed folder; returns the folder."""
    header = PackedHeader(
        dataset.name,
        list(dataset.label_names),
        dataset.aligned,
        dataset.feature_spec,
        dataset.source,
    )
    writer = PackedWriter(out_dir, header, shard_rows)
    for name in SPLITS:
        writer.add(name, dataset.splits[name])
    return writer.finish()


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


def _column(tables: list[pa.Table], name: str, shape: tuple[int, ...], dtype: type) -> RowChunks:
    """One fixed-size-list column of all shards as ``[N, *shape]`` rows, without a copy: the
    parts are views of the memory-mapped shards."""
    parts = [
        chunk.flatten().to_numpy(zero_copy_only=True).reshape(-1, *shape)
        for table in tables
        for chunk in table.column(name).chunks
        if len(chunk)
    ]
    return RowChunks(parts, shape, dtype)


def _step_shape(tables: list[pa.Table], modality: str, meta: dict) -> tuple[int, int]:
    """``[L, D]`` of a modality in this split, from its shape column (the meta if empty)."""
    for table in tables:
        if table.num_rows:
            length, dim = table.column(f"{modality}_shape")[0].as_py()
            return int(length), int(dim)
    return int(meta["lengths"][modality]), int(meta["dims"][modality])


def read_packed(path: str | Path) -> MultimodalDataset:
    """Open a packed dataset folder written by :class:`PackedWriter`.

    Features and masks stay in the memory-mapped shards (:class:`RowChunks`): opening takes
    milliseconds and the memory a run needs does not grow with the number of clips; labels
    and ids are read into memory.
    """
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
            try:
                tables.append(pa.ipc.open_file(pa.memory_map(str(shard_path))).read_all())
            except (pa.ArrowInvalid, OSError) as exc:
                raise data_error(shard_path, f"unreadable shard ({exc})", PACKED) from None
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
            labels=np.asarray(_column(tables, "labels", (num_labels,), np.float32)),
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
