"""The caller's own statements on the session that holds an asyncio lock.

The asyncio twin of :mod:`PyMySQLLock.holding`, with its guarantee and its decisions: a
statement that succeeds on the holding session ran while the lock was held, a transaction is
committed only while it is held, the keepalive waits while the block runs, and the session is
closed at release instead of pooled.

A task cancelled inside the block (while a statement of its own is in flight, or anywhere else)
closes the session, as an interrupt does in the blocking block: the protocol may be half-way
through an answer, and only a closed session is sure to end on the server. The lock is then
reported lost, with its open transaction rolled back by the server, and the cancellation goes
on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import LockLostError
from ..holding import (
    already_open,
    check_clean,
    check_failure,
    end_statement,
    failures,
    start_statement,
)

if TYPE_CHECKING:
    from .lock import AsyncLock
    from .session import AsyncSession

__all__ = ["caller_cursor"]


async def _end(lock: AsyncLock, session: AsyncSession, cursor: Any, statement: str | None) -> None:
    """Run ``COMMIT`` or ``ROLLBACK`` (or nothing), then read what the caller left unread.

    :raises LockLostError: when the connection fails meanwhile.
    """
    with failures(lock, session):
        if statement is not None:
            await cursor.execute(statement)
        clean = await session.adapter.finish_caller_cursor(session.raw, cursor)
    check_clean(lock, session, clean)


@contextlib.asynccontextmanager
async def caller_cursor(lock: AsyncLock, *, transaction: bool) -> AsyncIterator[Any]:
    """A driver cursor on the session holding ``lock``, for an ``async with`` block.

    :param lock: the held lock.
    :param transaction: ``START TRANSACTION`` first, ``COMMIT`` when the block ends normally,
        ``ROLLBACK`` when it raises.
    :raises LockNotHeldError: if the lock is not held.
    :raises LockLostError: if the lock was lost, or its session failed in the block.
    :raises LockError: if a block of the same lock is already open in this task.
    """
    session = lock._holding_session()
    task = asyncio.current_task()
    if session.caller_task is not None and session.caller_task is task:
        raise already_open(lock, "task")
    async with session.mutex:
        if lock._holding_session() is not session:  # lost while we waited for the mutex
            raise LockLostError(f"lock {lock.name!r} was lost")
        session.caller_used = True
        session.caller_task = task
        try:
            start = start_statement(transaction)
            with failures(lock, session):
                cursor = await session.adapter.caller_cursor(session.raw)
                if start is not None:
                    await cursor.execute(start)
            try:
                yield cursor
            except BaseException as exc:
                check_failure(lock, session, exc)
                await _end(lock, session, cursor, end_statement(transaction, failed=True))
                raise
            try:
                await _end(lock, session, cursor, end_statement(transaction, failed=False))
            except BaseException:
                if transaction and not session.broken:
                    # COMMIT refused (a deadlock, a constraint): undo the rest.
                    await _end(lock, session, cursor, end_statement(transaction, failed=True))
                raise
        finally:
            session.caller_task = None
