"""Fencing tokens on the asyncio API: ``AsyncLocker.lock(name, fencing=True)``.

The statements and the counter table are the blocking lock's (tests/test_fencing.py covers the
pure code), so these tests check the asyncio path itself on aiomysql and asyncmy: tokens shared
with blocking holders, the table made on first use or ahead, refusals that leave the lock free,
and a cancelled acquire that leaves nothing held.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from PyMySQLLock import InvalidArgumentError, Locker, UnsupportedServerError
from PyMySQLLock.aio import AsyncLocker
from PyMySQLLock.aio.fencing import AsyncFencedLock

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MakeAsync = Callable[..., AsyncLocker]


def _blocking_token(server: Any, name: str, table: str) -> int:
    blocking = Locker(fencing_table=table, **server.connect_kwargs())
    try:
        with blocking.lock(name, fencing=True) as fenced:
            assert fenced.token is not None
            return fenced.token
    finally:
        blocking.close()


async def test_tokens_grow_and_are_shared_with_blocking_locks(
    make_async_locker: MakeAsync, server: Any, lock_name: str, table: str
) -> None:
    locker = make_async_locker(fencing_table=table)
    assert locker.fencing_table == table
    seen = []
    for _ in range(3):
        lock = locker.lock(lock_name, fencing=True)
        assert isinstance(lock, AsyncFencedLock)
        async with lock:
            seen.append(lock.token)
    # A blocking holder of the same name takes the next token of the same counter.
    seen.append(await asyncio.to_thread(_blocking_token, server, lock_name, table))
    async with locker.lock(lock_name, fencing=True) as lock:
        seen.append(lock.token)
    assert seen == [1, 2, 3, 4, 5]
    async with locker.lock(lock_name) as plain:
        assert plain.token is None


async def test_create_ahead_and_refusals_leave_the_lock_free(
    make_async_locker: MakeAsync, server: Any, lock_name: str, table: str
) -> None:
    locker = make_async_locker(fencing_table=table)
    await locker.create_fencing_table()
    engine = server.sql(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (server.database, table),
    )
    assert engine == [("InnoDB",)]
    with pytest.raises(InvalidArgumentError, match="fencing_table"):
        make_async_locker(fencing_table="no spaces")
    server.sql("SET GLOBAL read_only = ON")
    try:
        with pytest.raises(UnsupportedServerError, match="read_only=ON"):
            await (
                make_async_locker(fencing_table=f"{table}x")
                .lock(lock_name, fencing=True)
                .acquire(timeout=5)
            )
    finally:
        server.sql("SET GLOBAL read_only = OFF")
    assert not await locker.is_locked(lock_name)  # released before the error was raised
    async with locker.lock(lock_name, fencing=True) as lock:
        assert lock.token == 1


async def test_a_cancelled_fenced_acquire_holds_nothing(
    make_async_locker: MakeAsync, lock_name: str, table: str
) -> None:
    locker, other = make_async_locker(fencing_table=table), make_async_locker()
    blocker = other.lock(lock_name)
    assert await blocker.acquire(timeout=0)
    waiting = asyncio.ensure_future(locker.lock(lock_name, fencing=True).acquire(timeout=30))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await blocker.release()
    async with locker.lock(lock_name, fencing=True, timeout=5) as lock:
        assert lock.token == 1  # the cancelled acquire took no token
