"""Ending waits for locks that the server is running, from another session.

A task waiting in :meth:`~PyMySQLLock.aio.AsyncLock.acquire` can always be cancelled safely:
its session is closed, and the server frees anything a closed session held. But a server does
not always notice at once that a waiting session's client is gone: over TLS the ``GET_LOCK`` of
a closed connection waits on until its time runs out (up to the read timeout; plain TCP is
noticed within about a second), and may meanwhile be granted the lock, holding it until the
server finds the connection gone. So a cancelled acquire also hands its session's id to
``AbandonedWaits``, which ends that wait with ``KILL CONNECTION`` from another session of
the pool, in a task of the AsyncLocker: the cancelled task never waits for it.

``KILL CONNECTION`` rather than ``KILL QUERY``: the session is closed on our side anyway, and
if the server granted the lock just before the kill, only the end of the session frees it
(``KILL QUERY`` leaves an idle holder alone). Only a session of this account that is still
running a ``GET_LOCK``, or that holds the lock it asked for, is killed: after a server
restart, an id can name somebody else's session.

Where the library itself ends waits it keeps the sessions (a semaphore's head waiter once one
slot is granted, an election that stops): ``end_waits`` ends a wait on the server with
``KILL QUERY``, as the blocking ``Lock.cancel()`` does: the server stops it at once and the
session stays usable. A task with nothing on the server (still connecting, or between two
chunks of its wait) is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Callable

from ..connection import StatementFailed
from ..errors import LockConnectionError, LockError
from ..statements import (
    HOLDER,
    KILL_CONNECTION,
    KILL_QUERY,
    abandoned_answer,
    abandoned_query,
    holder_answer,
    kill_failure,
)

if TYPE_CHECKING:
    from ..server import ServerInfo
    from .lock import AsyncLock
    from .pool import AsyncPool
    from .session import AsyncSession

__all__ = ["AbandonedWaits", "end_waits"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds between two rounds: a ``KILL QUERY`` that lands between two chunks of a wait is
#: ignored by the server.
_ROUND = 0.05
#: Seconds one round of ``AbandonedWaits`` (a look at the process list and its kills)
#: may take: a server that does not answer must not hold up ``AsyncLocker.close()``.
_KILL_PATIENCE = 5.0
#: Seconds a closed session that is still open but not in a ``GET_LOCK`` is looked at again:
#: the statement may still be on its way to the server when we first look.
_RECHECK_SECONDS = 2.0
#: Sessions looked up by one statement.
_BATCH = 200


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


async def _kill_abandoned(
    session: AsyncSession, names: dict[int, str], server: ServerInfo | None
) -> set[int]:
    """Kill those of the sessions ``names`` (id: the lock it asked for) that still need it.

    :param server: the server's facts (which process list to read).
    :returns: the ids of those still open that were not killed (to look at again).
    """
    sql, params = abandoned_query(list(names), server)
    found = abandoned_answer(await session.run_all(sql, params))
    doomed = list(found.kill)
    for connection_id in found.open:
        # Granted just before its close, the session holds the lock until the server finds
        # its client gone, which a proxy that keeps its server connections may hide for ever.
        if holder_answer(await session.run(HOLDER, (names[connection_id],))) == connection_id:
            doomed.append(connection_id)
    for connection_id in doomed:
        try:
            await session.run(KILL_CONNECTION, (connection_id,))
        except StatementFailed as failure:
            error = kill_failure(failure.code, failure.message)
            if error is not None:  # None: it ended meanwhile
                logger.warning(
                    "ending the wait of closed session %s failed: %s", connection_id, error
                )
        else:
            logger.debug("ended the wait of closed session %s", connection_id)
    return set(found.open).difference(doomed)


class AbandonedWaits:
    """Ends the server-side waits of acquires cancelled with their ``GET_LOCK`` under way.

    :meth:`add` only notes the closed session's id. One task at a time, started with
    ``start`` (so that ``AsyncLocker.close()`` waits for it), looks the noted sessions up in
    the process list and kills those still in a ``GET_LOCK`` or holding the lock they asked
    for (granted just before the close). It runs on an idle session of the pool, or one it
    opens and then pools: a storm of cancellations costs one session, not one each. Its
    failures are logged, never raised.

    :param pool: the pool whose sessions look and kill.
    :param start: runs a coroutine as a task that ``AsyncLocker.close()`` waits for.
    """

    def __init__(
        self,
        pool: AsyncPool,
        start: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self._pool = pool
        self._start = start
        #: The noted ids, each with the server name of the lock it asked for and the time
        #: (monotonic) until which an open session of that id is looked at again.
        self._noted: dict[int, tuple[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, connection_id: int, name: str) -> None:
        """Note a session closed while its ``GET_LOCK`` may be on the server.

        :param connection_id: the session's id.
        :param name: the server name of the lock it asked for.
        """
        self._noted[connection_id] = (name, time.monotonic() + _RECHECK_SECONDS)
        if self._task is None:
            self._task = self._start(self._run())

    async def _run(self) -> None:
        try:
            while self._noted:
                ids = list(itertools.islice(self._noted, _BATCH))
                names = {connection_id: self._noted[connection_id][0] for connection_id in ids}
                work = functools.partial(_kill_abandoned, names=names, server=self._pool.server)
                try:
                    still_open = await asyncio.wait_for(self._pool.on_idle(work), _KILL_PATIENCE)
                except Exception as exc:  # noqa: BLE001 - a failed kill is only ever logged
                    # Connection failures: the server ends sessions it lost anyway.
                    log = logger.debug if isinstance(exc, LockConnectionError) else logger.warning
                    log("could not end the waits of closed sessions %s: %r", ids, exc)
                    still_open = set()
                now = time.monotonic()
                for connection_id in ids:
                    if connection_id not in still_open or self._noted[connection_id][1] <= now:
                        del self._noted[connection_id]
                if still_open & self._noted.keys():
                    await asyncio.sleep(_ROUND)
        finally:
            # No await since the loop found nothing noted: add() starts a new task from here.
            self._task = None
