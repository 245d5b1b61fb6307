"""The caller's statements on the holding session, asyncio API: ``lock.cursor()`` and
``lock.transaction()`` under aiomysql and asyncmy.

The same promises as the blocking blocks (tests/test_fencing.py): statements run on the session
that holds the lock, serialized with a fast keepalive; a transaction commits only while held
and rolls back on an error or when the session is killed; what a caller leaves in the session
never reaches the next lock; a guarded write with the fencing token rejects a stale holder. And
the asyncio point: a task cancelled inside a block, with its statement in flight, leaves the
lock free, the transaction rolled back and no session behind.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from typing import Any, Callable

import pytest

from PyMySQLLock import LockError, LockLostError, LockNotHeldError
from PyMySQLLock.aio import AsyncLock, AsyncLocker
from PyMySQLLock.loss import LossCause

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MakeAsync = Callable[..., AsyncLocker]
_TAG = secrets.token_hex(3)


async def guarded_write(cursor: Any, table: str, body: str, token: int) -> bool:
    """The write the docs recommend: accepted only if no newer holder has written."""
    await cursor.execute(
        f"UPDATE `{table}` SET body = %s, fence = %s WHERE id = 1 AND fence < %s",
        (body, token, token),
    )
    return bool(cursor.rowcount == 1)


def _body(server: Any, guarded: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in server.sql(f"SELECT body FROM `{server.database}`.`{guarded}`")]


async def test_cursor_runs_on_the_holding_session(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    async with make_async_locker().lock(lock_name) as lock, lock.cursor() as cursor:
        await cursor.execute("SELECT CONNECTION_ID(), IS_USED_LOCK(%s)", (lock.server_name,))
        assert tuple(await cursor.fetchone()) == (lock.connection_id, lock.connection_id)


async def test_cursor_needs_a_held_lock_and_does_not_nest(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    lock = make_async_locker().lock(lock_name)
    with pytest.raises(LockNotHeldError):
        await lock.cursor().__aenter__()
    async with lock, lock.cursor():
        with pytest.raises(LockError, match="already open in this task"):
            await lock.cursor().__aenter__()
        with pytest.raises(LockError, match="inside a cursor"):
            await lock.release()  # would wait for the block's own mutex forever
        assert lock.locked()
    with pytest.raises(LockNotHeldError):
        await lock.transaction().__aenter__()


async def test_keepalive_and_caller_statements_never_interleave(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    lock = make_async_locker().lock(lock_name, refresh_interval_secs=0.01)
    stop = asyncio.Event()

    async def caller(number: int) -> int:
        done = 0
        while not stop.is_set():
            async with lock.cursor() as cursor:
                await cursor.execute("SELECT %s, REPEAT('x', 5000)", (number * 100000 + done,))
                row = await cursor.fetchone()
                assert row[0] == number * 100000 + done
                assert len(row[1]) == 5000
            done += 1
            await asyncio.sleep(0)  # let the keepalive's check in between two blocks
        return done

    async with lock:
        callers = [asyncio.ensure_future(caller(number)) for number in (1, 2)]
        # The keepalive checks about every 10 ms meanwhile; a few rounds of both callers.
        await asyncio.sleep(1.0)
        stop.set()
        counts = await asyncio.wait_for(asyncio.gather(*callers), 30)
        assert lock.locked()
    assert not lock.lost
    assert all(count > 0 for count in counts)


async def test_transaction_commits_while_held_and_rolls_back_on_error(
    make_async_locker: MakeAsync, lock_name: str, guarded: str, server: Any
) -> None:
    async with make_async_locker().lock(lock_name) as lock:
        async with lock.transaction() as cursor:
            await cursor.execute(f"UPDATE `{guarded}` SET body = 'committed'")
        with pytest.raises(ZeroDivisionError):
            await _update_then(lock, guarded, lambda _cursor: 1 / 0)
        # A statement the server refuses ends the transaction too; the lock stays held.
        with pytest.raises(Exception, match="no_such_column"):
            await _update_then(lock, guarded, lambda cur: cur.execute("SELECT no_such_column"))
        assert lock.locked()
    assert _body(server, guarded) == [("committed",)]


async def _update_then(lock: AsyncLock, guarded: str, then: Callable[[Any], Any]) -> None:
    """Update the row in a transaction, then run ``then(cursor)`` (awaited if it must be)."""
    async with lock.transaction() as cursor:
        await cursor.execute(f"UPDATE `{guarded}` SET body = 'not committed'")
        result = then(cursor)
        if inspect.isawaitable(result):
            await result


async def test_a_killed_session_rolls_back_the_open_transaction(
    make_async_locker: MakeAsync, lock_name: str, guarded: str, server: Any
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    reported: list[AsyncLock] = []
    lock = locker.lock(lock_name, refresh_interval_secs=3600, on_lost=reported.append)
    assert await lock.acquire(timeout=5)

    async def kill_then_select(cursor: Any) -> None:
        assert await admin.force_release(lock_name)
        await cursor.execute("SELECT 1")  # the first statement after the kill fails

    with pytest.raises(LockLostError, match="rolled back") as caught:
        await _update_then(lock, guarded, kill_then_select)
    assert reported == [lock]
    assert lock.lost
    assert not lock.locked()
    assert caught.value.reason is not None
    assert caught.value.reason.cause is LossCause.CONNECTION_LOST
    await lock.release()  # only cleans up
    assert _body(server, guarded) == [("",)]


async def test_a_task_cancelled_in_a_block_frees_the_lock_and_rolls_back(
    make_async_locker: MakeAsync,
    lock_name: str,
    guarded: str,
    server: Any,
    lock_waiters: Callable[..., list[int]],
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    blocker = admin.lock(lock_name + "-blocker")
    assert await blocker.acquire(timeout=0)
    reported: list[AsyncLock] = []
    lock = locker.lock(lock_name, on_lost=reported.append)
    entered = asyncio.Event()

    async def work() -> None:
        async with lock, lock.transaction() as cursor:
            await cursor.execute(f"UPDATE `{guarded}` SET body = 'uncommitted'")
            entered.set()
            # A statement of the caller's own that waits on the server when cancelled.
            await cursor.execute("SELECT GET_LOCK(%s, 30)", (blocker.server_name,))

    task = asyncio.ensure_future(work())
    await asyncio.wait_for(entered.wait(), 10)
    await asyncio.to_thread(lock_waiters, blocker.server_name)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reported == [lock]
    assert lock.lost_reason is not None
    assert "interrupted (CancelledError)" in lock.lost_reason.message
    # The session was closed, so the server frees the lock and undoes the transaction.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await admin.holder(lock_name) is not None:
        assert loop.time() < deadline, "the lock of a cancelled block is still held"
        await asyncio.sleep(0.01)
    assert _body(server, guarded) == [("",)]
    await blocker.release()


async def test_caller_state_never_reaches_the_next_lock(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker = make_async_locker()
    async with locker.lock(lock_name) as lock:
        first = lock.connection_id
        async with lock.cursor() as cursor:
            await cursor.execute("SET @leftover = 42, SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
            await cursor.execute("SELECT 1 UNION SELECT 2")  # rows left unread
    async with locker.lock(lock_name) as lock:
        assert lock.connection_id != first
        async with lock.cursor() as cursor:
            await cursor.execute("SELECT @leftover, @@session.sql_mode LIKE '%%NO_BACKSLASH%%'")
            assert tuple(await cursor.fetchone()) == (None, 0)
        second = lock.connection_id
    async with locker.lock(lock_name) as lock:  # without caller statements the session is pooled
        third = lock.connection_id
        assert third != second
    async with locker.lock(lock_name) as lock:
        assert lock.connection_id == third


async def test_unread_result_sets_are_read_before_the_keepalive_runs(
    make_async_locker: MakeAsync, lock_name: str, server: Any
) -> None:
    procedure = f"atwo_results_{_TAG}_{secrets.token_hex(3)}"
    server.sql(
        f"CREATE PROCEDURE `{server.database}`.`{procedure}`() BEGIN SELECT 1; SELECT 2, 3; END"
    )
    checked = asyncio.Event()
    try:
        lock = make_async_locker().lock(lock_name, refresh_interval_secs=0.05)
        async with lock:
            async with lock.cursor() as cursor:
                await cursor.execute(f"CALL `{procedure}`()")
            # Let a few keepalive checks run on the same connection.
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, checked.set)
            await checked.wait()
            assert lock.locked()
            async with lock.cursor() as cursor:
                await cursor.execute("SELECT 7")
                assert tuple(await cursor.fetchone()) == (7,)
        assert not lock.lost
    finally:
        server.sql(f"DROP PROCEDURE IF EXISTS `{server.database}`.`{procedure}`")


async def test_a_killed_holder_cannot_write_and_its_token_loses(
    make_async_locker: MakeAsync, lock_name: str, table: str, guarded: str, server: Any
) -> None:
    old_locker = make_async_locker(fencing_table=table)
    new_locker = make_async_locker(fencing_table=table)
    old = old_locker.lock(lock_name, fencing=True, refresh_interval_secs=3600)
    assert await old.acquire(timeout=5)
    assert old.token is not None
    assert await new_locker.force_release(lock_name)  # as if old had been paused past its loss
    async with new_locker.lock(lock_name, fencing=True, timeout=5) as new:
        assert new.token is not None
        assert new.token > old.token
        async with new.cursor() as cursor:
            assert await guarded_write(cursor, guarded, "new", new.token)
        # The old holder wakes up: its own session is gone, so it cannot write through it.
        with pytest.raises(LockLostError):
            async with old.cursor() as cursor:
                await guarded_write(cursor, guarded, "stale", old.token)
        assert old.lost
    await old.release()
    assert server.sql(f"SELECT body, fence FROM `{server.database}`.`{guarded}`") == [
        ("new", new.token)
    ]
