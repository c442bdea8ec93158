"""Load the benchmark pickles and torch files without ever running code from them.

The published MOSEI/M3ED files are pickles (plain or inside ``torch.save`` archives), and a
pickle can name any importable callable.  We admit only what is needed to rebuild numpy arrays,
numbers, strings, bytes, containers and ``argparse.Namespace``; any other global is refused
with :class:`UnsafePickleError` before it is imported or called.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import logging
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from carat.data.formats import FileFormat, data_error
from carat.errors import DataError

log = logging.getLogger(__name__)


def _rebuild_namespace(cls: Any, base: Any, state: Any) -> argparse.Namespace:
    """What protocol-0/1 pickles call (``copyreg._reconstructor``), for Namespace only."""
    if cls is not argparse.Namespace or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r} is not allowed")
    return argparse.Namespace()


_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
}
_PYTHON_GLOBALS: dict[tuple[str, str], Any] = {
    **{("builtins", t.__name__): t for t in (int, float, complex, bool, str, bytes, bytearray)},
    **{("builtins", t.__name__): t for t in (list, tuple, dict, set, frozenset)},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles store bytes
    ("argparse", "Namespace"): argparse.Namespace,
    ("copyreg", "_reconstructor"): _rebuild_namespace,
    ("builtins", "object"): object,  # only as _reconstructor's base argument
}
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {**_NUMPY_GLOBALS, **_PYTHON_GLOBALS}

# Legacy torch files start with this pickled number (torch.serialization.MAGIC_NUMBER).
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafePickleError(DataError):
    """The file names a global outside the allowlist; nothing from it was imported or run."""

    def __init__(self, path: str | Path, module: str, name: str) -> None:
        super().__init__(
            f"refusing to load {module}.{name} from {path}: "
            "only arrays, numbers, strings and containers are allowed"
        )
        self.module = module


def _canonical(module: str, name: str) -> tuple[str, str]:
    """Map the names older numpy and Python 2 pickles use onto today's names."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module[len("numpy.core") :]
    module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
    return module, name


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader whose ``find_class`` only hands out allowlisted objects."""

    def __init__(self, file: Any, path: str | Path) -> None:
        super().__init__(file, encoding="latin1")  # latin1 lets numpy read Python 2 pickles
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get(_canonical(module, name))
        if found is None:
            raise UnsafePickleError(self._path, module, name)
        return found


def _torch_safe_globals() -> list[Any]:
    """Allowlist entries for torch's weights-only loader, under new and old numpy names.

    torch also checks the class of every object it rebuilds state into, so the concrete
    dtype classes (``numpy.dtypes.Float32DType`` ...) are listed too.
    """
    entries: list[Any] = [argparse.Namespace, collections.OrderedDict]
    entries += [getattr(np.dtypes, n) for n in np.dtypes.__all__]
    for (module, name), obj in _NUMPY_GLOBALS.items():
        entries.append((obj, f"{module}.{name}"))
        if module.startswith("numpy._core"):
            entries.append((obj, f"numpy.core{module[len('numpy._core') :]}.{name}"))
    return entries


def _load_torch(path: Path, fmt: FileFormat) -> Any:
    """``torch.load(weights_only=True)`` with only our numpy and argparse types added.

    torch's weights-only reader lacks some opcodes of pickle protocols 3+ (files saved with
    ``pickle_protocol=4``); a zip file it cannot read is read with our own restricted
    unpickler instead, which works whenever the file holds no tensors (as the benchmarks).
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with torch.serialization.safe_globals(_torch_safe_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if refused:
            module, _, name = refused.group(1).rpartition(".")
            raise UnsafePickleError(path, module, name) from None
        reason = _torch_reason(exc)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise data_error(path, f"not a readable torch file ({_first_line(exc)})", fmt) from None
    try:
        return _load_zip_pickle(path)
    except UnsafePickleError as exc:
        if exc.module.split(".")[0] != "torch":
            raise
        reason += "; it holds tensors, which only torch's reader rebuilds"
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError) as exc:
        reason += f"; as plain pickle: {_first_line(exc)}"
    raise data_error(path, f"not a readable torch file ({reason})", fmt)


def _load_zip_streamed(path: Path, fmt: FileFormat) -> Any:
    """A ``torch.save`` zip read by our unpickler straight from the archive member: torch's
    reader first copies the whole pickle into memory, which doubles a large file's peak.
    Files that hold tensors (only torch rebuilds those) or that we cannot read go to
    :func:`_load_torch`, which also words the errors."""
    try:
        return _load_zip_pickle(path)
    except UnsafePickleError as exc:
        if exc.module.split(".")[0] != "torch":
            raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError):
        pass
    return _load_torch(path, fmt)


def _load_zip_pickle(path: Path) -> Any:
    """The object pickled inside a ``torch.save`` zip (``<archive>/data.pkl``)."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if not names:
            raise zipfile.BadZipFile("no data.pkl in the archive")
        with archive.open(names[0]) as fh:
            return RestrictedUnpickler(fh, path).load()


def _torch_reason(exc: BaseException) -> str:
    """The informative line of torch's long weights-only error text."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.partition("WeightsUnpickler error:")[2].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else line)
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_file(path: str | Path, fmt: FileFormat) -> Any:
    """Read a plain pickle or a ``torch.save`` file (zip or legacy) safely.

    ``fmt`` describes the layout the caller expects; it goes into the error for an unreadable
    file.  A refused global raises :class:`UnsafePickleError`.
    """
    path = Path(path)
    if not path.is_file():
        raise data_error(path, "file not found", fmt)
    if zipfile.is_zipfile(path):
        return _load_zip_streamed(path, fmt)
    try:
        with path.open("rb") as fh:
            first = RestrictedUnpickler(fh, path).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise data_error(path, f"not a readable pickle ({_first_line(exc)})", fmt) from None
    if isinstance(first, int) and first == _TORCH_LEGACY_MAGIC:
        return _load_torch(path, fmt)
    return first
