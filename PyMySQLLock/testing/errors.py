"""The one exception of the throwaway-server tooling."""

from __future__ import annotations

__all__ = ["ServerStartError"]


class ServerStartError(RuntimeError):
    """A throwaway server could not be found, initialised, started or set up."""
