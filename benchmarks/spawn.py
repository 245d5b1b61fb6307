"""Running measurements in fresh interpreters (``multiprocessing`` spawn, never fork)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["CONTEXT", "run_spawned"]

#: Spawned, not forked: a worker must not inherit the parent's connections, threads or locks.
CONTEXT = multiprocessing.get_context("spawn")

T = TypeVar("T")


def run_spawned(function: Callable[..., T], *args: Any) -> T:
    """Call ``function(*args)`` in a new interpreter and return its result (or raise its error).

    :param function: a module-level function (it is pickled by name).
    :param args: picklable arguments.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=CONTEXT) as pool:
        return pool.submit(function, *args).result()
