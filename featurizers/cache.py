"""Where carat keeps what it builds once (joined model files, vector tables, features)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$CARAT_CACHE``, else ``~/.cache/carat``."""
    root = os.environ.get("CARAT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "carat"
