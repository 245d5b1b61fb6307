"""Named locks for asyncio: :class:`AsyncLocker` and :class:`AsyncLock`, without threads.

The same locks as :class:`PyMySQLLock.Locker` (the same names, namespaces, hashing of long
names, listing and exceptions), taken and watched through an asyncio driver: aiomysql (the
default) or asyncmy 0.2.13 or later. Install one with ``pip install PyMySQLLock[aiomysql]``
or ``pip install PyMySQLLock[asyncmy]``.

>>> from PyMySQLLock.aio import AsyncLocker
>>> async def main():  # doctest: +SKIP
...     async with AsyncLocker(host="db", user="app", password="...") as locker:
...         async with locker.lock("nightly-report", timeout=10):
...             await run_report()
"""

from __future__ import annotations

from ..statements import LockInfo
from .drivers import ASYNC_DRIVER_NAMES, AiomysqlAdapter, AsyncDriverAdapter, AsyncmyAdapter
from .election import AsyncElection, AsyncTerm
from .lock import AsyncLock, AsyncOnLost
from .locker import AsyncLocker
from .semaphore import AsyncSemaphore

__all__ = [
    "ASYNC_DRIVER_NAMES",
    "AiomysqlAdapter",
    "AsyncDriverAdapter",
    "AsyncElection",
    "AsyncLock",
    "AsyncLocker",
    "AsyncOnLost",
    "AsyncSemaphore",
    "AsyncTerm",
    "AsyncmyAdapter",
    "LockInfo",
]
