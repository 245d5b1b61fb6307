"""Fenced asyncio locks: the token taken on the holding session, as :mod:`PyMySQLLock.fencing`.

``locker.lock(name, fencing=True)`` on an :class:`~PyMySQLLock.aio.AsyncLocker` makes an
:class:`AsyncFencedLock`. The statements, the server checks and the meaning of the answers are
the blocking lock's (:mod:`PyMySQLLock.fencing_sql`), and so is the counter table: blocking
and asyncio holders of one name share its tokens.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..connection import SessionLost, StatementFailed
from ..errors import LockConnectionError
from ..fencing import FenceTable
from ..fencing_sql import (
    ENGINE_QUERY,
    SERVER_CHECK,
    check_engine,
    check_server,
    is_missing_table,
    statement_error,
    token_from,
)
from ..statements import RELEASE_LOCK, Release, release_answer
from .lock import AsyncLock

if TYPE_CHECKING:
    from ..server import ServerInfo
    from .session import AsyncSession

__all__ = ["AsyncFencedLock", "prepare_table"]

logger = logging.getLogger("PyMySQLLock")


async def prepare_table(fence: FenceTable, server: ServerInfo, session: AsyncSession) -> None:
    """Check the server and create the counter table if missing (see the blocking twin).

    :raises UnsupportedServerError: on a server where tokens could be wrong.
    :raises InvalidArgumentError: for a table of another engine, or no database for it.
    :raises PermissionDeniedError: when the account may not create it.
    :raises StatementFailed: for another server error (the caller translates it).
    """
    statements = fence.statements(server)
    try:
        rows = await session.run_all(SERVER_CHECK)
    except StatementFailed:
        rows = []  # a proxy may refuse SHOW; a write to a read-only server still fails below
    fence.warn_once(check_server(server, {str(name): str(value) for name, value in rows}))
    found = await session.run(ENGINE_QUERY, (statements.database, statements.table))
    if not check_engine(None if found is None else found[0], statements):
        try:
            await session.run_all(statements.create)
        except StatementFailed as failure:
            raise statement_error(failure.code, failure.message, statements) from failure
        logger.info("fencing: created the counter table %s", statements.shown)
    fence.ready = True


async def _take_token(
    fence: FenceTable, server: ServerInfo, session: AsyncSession, server_name: str
) -> int:
    """Increment the counter of ``server_name`` on the session that holds it.

    :raises SessionLost: when the connection fails (the caller discards it).
    """
    statements = fence.statements(server)
    async with session.mutex:
        for attempt in (1, 2):
            try:
                if not fence.ready:
                    await prepare_table(fence, server, session)
                affected, insert_id = await session.run_write(statements.increment, (server_name,))
            except StatementFailed as failure:
                if attempt == 1 and is_missing_table(failure.code):
                    fence.ready = False  # dropped since we last looked
                    continue
                raise statement_error(failure.code, failure.message, statements) from (
                    failure.__cause__
                )
            return token_from(affected, insert_id, statements)
    raise AssertionError("unreachable")  # pragma: no cover


class AsyncFencedLock(AsyncLock):
    """An :class:`~PyMySQLLock.aio.AsyncLock` that takes a fencing token at each acquire.

    Made by ``locker.lock(name, fencing=True)``; see
    :class:`PyMySQLLock.fencing.FencedLock`. Cancelling the acquire while the token is taken
    closes the session, which frees the lock.
    """

    _token: int | None = None

    @property
    def token(self) -> int | None:
        """The fencing token of the latest acquire: larger than every earlier holder's.

        ``None`` before the first successful acquire.
        """
        return self._token

    async def _wait(self, seconds: float) -> AsyncSession | None:
        locker = self._locker
        pool = locker._pool
        self._token = None
        await pool.ensure_server()
        check_server(locker.server, {})  # a Galera node is refused before anything is sent
        session = await super()._wait(seconds)
        if session is None:
            return None
        try:
            self._token = await _take_token(
                locker._fence, locker.server, session, self._server_name
            )
        except SessionLost as lost:
            pool.discard(session)
            raise LockConnectionError(
                f"lost the connection while taking the fencing token of lock {self._name!r}: {lost}"
            ) from lost.__cause__
        except BaseException:
            await self._give_back(session)
            raise
        return session

    async def _give_back(self, session: AsyncSession) -> None:
        """Release a lock whose token could not be taken; close the session if that fails."""
        pool = self._locker._pool
        if session.broken:  # cancelled mid-statement: run() already closed it
            pool.discard(session)
            return
        try:
            row = await session.run(RELEASE_LOCK, (self._server_name,))
        except (SessionLost, StatementFailed):
            pool.discard(session)  # the acquire's own error is the one to report
            return
        except BaseException:
            pool.discard(session)
            raise
        if release_answer(row) is Release.RELEASED:
            pool.checkin(session)
        else:
            pool.discard(session)
