"""Version of the PyMySQLLock distribution (the single source of truth)."""

from __future__ import annotations

__version__ = "1.0.0"
