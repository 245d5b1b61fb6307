"""Ending waits for locks that the server is running: ``KILL QUERY``, not a closed connection.

A task waiting in :meth:`~PyMySQLLock.aio.AsyncLock.acquire` can always be cancelled safely:
its session is closed, and the server frees anything a closed session held. But the server
does not watch a waiting session's socket: the ``GET_LOCK`` of a closed connection waits on
until its time runs out (up to the read timeout), and may even be granted the lock meanwhile,
which the server frees only once it finds the connection gone. Where the library itself ends
waits (a semaphore's head waiter once one slot is granted, an election that stops), it ends a
wait on the server with ``KILL QUERY`` instead, as the blocking ``Lock.cancel()`` does: the
server stops it at once and the session stays usable. A task with nothing on the server (still
connecting, or between two chunks of its wait) is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..connection import StatementFailed
from ..errors import LockError
from ..statements import KILL_QUERY

if TYPE_CHECKING:
    from .lock import AsyncLock
    from .pool import AsyncPool
    from .session import AsyncSession

__all__ = ["end_waits"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds between two rounds: a ``KILL QUERY`` that lands between two chunks of a wait is
#: ignored by the server.
_ROUND = 0.05


async def _kill_queries(session: AsyncSession, connection_ids: list[int]) -> None:
    for connection_id in connection_ids:
        with contextlib.suppress(StatementFailed):  # that session ended meanwhile
            await session.run(KILL_QUERY, (connection_id,))


async def end_waits(pool: AsyncPool, waits: Mapping[asyncio.Future[Any], AsyncLock]) -> None:
    """End the tasks in ``waits``; return once every one has ended.

    :param pool: an idle session of it sends the ``KILL QUERY`` statements.
    :param waits: each task, with the lock whose ``acquire()`` it runs (or will run).
    """
    pending = {task for task in waits if not task.done()}
    while pending:
        waiting = []
        for task in pending:
            session = waits[task]._waiting
            if session is None:
                task.cancel()
            else:
                waiting.append(session.connection_id)
        if waiting:
            try:
                await pool.on_idle(functools.partial(_kill_queries, connection_ids=waiting))
            except LockError as exc:
                logger.debug("ending waits with KILL QUERY failed: %s", exc)
                for task in pending:
                    task.cancel()  # closes their sessions: the server ends them in time
        _, pending = await asyncio.wait(pending, timeout=_ROUND)
