"""Cancellation safety of the asyncio API: a cancelled acquire or release never leaves a lock held.

A task may be cancelled at any ``await`` of ``acquire()``: before the statement is sent, while
the server makes ``GET_LOCK`` wait, while the answer is on its way, right after the grant. Each
test below provokes one of these moments, and the random test provokes all of them many times
(``PYMYSQLLOCK_AIO_CANCELLATIONS`` per driver, 200 by default; ``make stress-aio`` runs 1,000).
After each cancellation the server must show the lock free, and at the end no session of the
test may be left (the autouse leak check).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections import Counter
from typing import Any, Callable

import aiomysql
import asyncmy
import pytest

from PyMySQLLock.aio import AsyncLock, AsyncLocker

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

MakeAsync = Callable[..., AsyncLocker]
CANCELLATIONS = int(os.environ.get("PYMYSQLLOCK_AIO_CANCELLATIONS", "200"))
#: Seconds a closed session may take to let go of its lock on the server.
FREE_GRACE = 5.0


async def _free(admin: AsyncLocker, name: str) -> None:
    """Wait until nobody holds ``name``; fail after :data:`FREE_GRACE`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FREE_GRACE
    while (holder := await admin.holder(name)) is not None:
        if loop.time() > deadline:
            pytest.fail(f"lock {name!r} still held by session {holder} after a cancellation")
        await asyncio.sleep(0.005)


async def _sessions_waiting(server: Any, name: str) -> int:
    """How many sessions wait for ``name`` in GET_LOCK (asked on a connection of its own)."""
    connection = await aiomysql.connect(**{**_aiomysql_kwargs(server), "autocommit": True})
    try:
        cursor = await connection.cursor()
        await cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
            (name,),
        )
        (count,) = await cursor.fetchone()
        return int(count)
    finally:
        await connection.ensure_closed()


def _aiomysql_kwargs(server: Any) -> dict[str, Any]:
    kwargs = dict(server.connect_kwargs())
    kwargs["db"] = kwargs.pop("database")
    return kwargs


async def _until_waiting(server: Any, name: str, count: int = 1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await _sessions_waiting(server, name) < count:
        if loop.time() > deadline:
            pytest.fail(f"no session waits for {name!r}")
        await asyncio.sleep(0.01)


async def test_cancelled_before_anything_is_sent(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker = make_async_locker()
    await locker.connect()
    lock = locker.lock(lock_name)
    task = asyncio.ensure_future(lock.acquire())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not lock.locked()
    assert locker._pool.sessions == 1  # the probe's session, idle: nothing was taken
    assert await lock.acquire(timeout=0)  # the lock object is usable again
    await lock.release()


async def test_cancelled_while_the_server_waits(
    make_async_locker: MakeAsync, lock_name: str, server: Any
) -> None:
    locker, holder, admin = make_async_locker(), make_async_locker(), make_async_locker()
    held = holder.lock(lock_name)
    assert await held.acquire()
    lock = locker.lock(lock_name)
    task = asyncio.ensure_future(lock.acquire(timeout=60))
    await _until_waiting(server, lock_name)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not lock.locked()
    assert locker._pool.sessions == 0  # the waiting session was closed, not pooled
    await held.release()
    await _free(admin, lock_name)  # not granted to the abandoned session


async def test_cancelled_with_the_grant_in_flight(
    make_async_locker: MakeAsync, lock_name: str, server: Any
) -> None:
    locker, holder, admin = make_async_locker(), make_async_locker(), make_async_locker()
    outcomes = Counter()
    for _ in range(10):
        held = holder.lock(lock_name)
        assert await held.acquire()
        lock = locker.lock(lock_name)
        task = asyncio.ensure_future(lock.acquire(timeout=60))
        await _until_waiting(server, lock_name)
        # The release makes the server grant the waiter; the cancel races its answer.
        await held.release()
        task.cancel()
        try:
            got = await task
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
            assert not lock.locked()
        else:
            outcomes["acquired"] += 1
            assert got
            assert lock.locked()
            await lock.release()
        await _free(admin, lock_name)
    assert outcomes["cancelled"] > 0


@pytest.mark.parametrize("how", ["timeout", "wait_for"])
async def test_timeouts_around_acquire(
    make_async_locker: MakeAsync, lock_name: str, how: str
) -> None:
    if how == "timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout() is new in Python 3.11")
    locker, holder, admin = make_async_locker(), make_async_locker(), make_async_locker()
    held = holder.lock(lock_name)
    assert await held.acquire()
    lock = locker.lock(lock_name)

    async def cut_short() -> None:
        if how == "timeout":
            async with asyncio.timeout(0.3):
                await lock.acquire()
        else:
            await asyncio.wait_for(lock.acquire(), 0.3)

    with pytest.raises(asyncio.TimeoutError):
        await cut_short()
    assert not lock.locked()
    await held.release()
    await _free(admin, lock_name)
    # A timeout that does not fire leaves the lock held as usual.
    if how == "timeout":
        async with asyncio.timeout(10):
            assert await lock.acquire()
    else:
        assert await asyncio.wait_for(lock.acquire(), 10)
    assert lock.locked()
    await lock.release()


async def test_cancelled_release_still_frees_the_lock(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    # From the first step of release() on (a task cancelled before it ever ran never called
    # release at all).
    for yields in range(1, 5):
        lock = locker.lock(lock_name)
        assert await lock.acquire()
        task = asyncio.ensure_future(lock.release())
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not lock.locked()
        await _free(admin, lock_name)


async def test_a_cancelled_async_with_body_releases(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    entered = asyncio.Event()

    async def body() -> None:
        async with locker.lock(lock_name, timeout=10):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.ensure_future(body())
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _free(admin, lock_name)
    assert locker._pool.sessions == 1  # released cleanly: the session went back to the pool


async def test_the_session_of_a_cancelled_acquire_is_never_reused(
    make_async_locker: MakeAsync, lock_name: str, server: Any
) -> None:
    # asyncmy before 0.2.13 could hand a cancelled query's rows to the next query on the same
    # connection: a cancelled GET_LOCK's answer must never be read as the next one's.
    locker, holder = make_async_locker(), make_async_locker()
    held = holder.lock(lock_name)
    assert await held.acquire()
    lock = locker.lock(lock_name)
    task = asyncio.ensure_future(lock.acquire(timeout=60))
    await _until_waiting(server, lock_name)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = locker.lock(lock_name + "-other")
    assert await other.acquire(timeout=0)
    assert locker._pool.sessions == 1
    assert await holder.holder(lock_name) == held.connection_id
    assert await holder.holder(lock_name + "-other") == other.connection_id
    await other.release()
    await held.release()


async def test_asyncmy_cancelled_query_rows_never_reach_the_next_query(
    server: Any, watch_loop: Any
) -> None:
    """The asyncmy hazard itself (issue 103, fixed in 0.2.13), on the installed release."""
    connection = await asyncmy.connect(**server.connect_kwargs(), autocommit=True)
    try:
        cursor = connection.cursor()
        first = asyncio.ensure_future(cursor.execute("SELECT 'first', SLEEP(0.3)"))
        await asyncio.sleep(0.05)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        try:
            await cursor.execute("SELECT 'second'")
            rows = await cursor.fetchall()
        except (asyncmy.errors.Error, OSError):
            rows = None  # the connection was closed on cancel: the safe outcome
        assert rows is None or [tuple(row) for row in rows] == [("second",)], rows
    finally:
        connection.close()


async def test_random_cancellations_leave_nothing_held(
    make_async_locker: MakeAsync, lock_name: str, async_driver: str
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    locker, holder, admin = make_async_locker(), make_async_locker(), make_async_locker()
    await locker.connect()
    names = [f"{lock_name}-{n}" for n in range(4)]
    outcomes: Counter[str] = Counter()
    # The cancellation windows are drawn relative to how long an uncontended acquire takes
    # in this run: fixed milliseconds would cancel every attempt on a loaded machine (and
    # prove nothing about completed acquires) or none on a fast one.
    spent = []
    for _ in range(6):
        probe = locker.lock(names[0])
        started = time.monotonic()
        assert await probe.acquire(timeout=30)
        spent.append(time.monotonic() - started)
        await probe.release()
    short = max(0.02, 2 * max(spent[1:]))  # the first one may have opened the session

    def window(contended: bool) -> float:
        """Seconds before the cancel: mostly within an acquire's duration, sometimes (never
        while another session holds the lock) long enough for the acquire to finish."""
        if not contended and rng.random() < 0.15:
            return rng.uniform(short, short + 5.0)
        return rng.uniform(0, short)

    async def attempt(lock: AsyncLock, mode: str, contended: bool) -> bool | None:
        """One acquire, cut short at a random moment; None when cancelled."""
        if mode == "timeout" and sys.version_info >= (3, 11):
            try:
                async with asyncio.timeout(window(contended)):
                    return await lock.acquire(timeout=30)
            except TimeoutError:
                return None
        if mode in ("timeout", "wait_for"):
            try:
                return await asyncio.wait_for(lock.acquire(timeout=30), window(contended))
            except asyncio.TimeoutError:
                return None
        task = asyncio.ensure_future(lock.acquire(timeout=30))
        if rng.random() < 0.5:
            for _ in range(rng.randrange(12)):  # step by step through the acquire
                await asyncio.sleep(0)
        else:
            await asyncio.wait({task}, timeout=window(contended))
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return None

    for number in range(CANCELLATIONS):
        name = names[number % len(names)]
        contended = rng.random() < 0.3
        held = holder.lock(name)
        if contended:
            assert await held.acquire()
        mode = rng.choice(("cancel", "cancel", "timeout", "wait_for"))
        lock = locker.lock(name)
        got = await attempt(lock, mode, contended)
        if contended:
            assert got is None, f"seed {seed}: acquired a lock another session held"
            await held.release()
        if got:
            outcomes["acquired"] += 1
            assert lock.locked()
            await lock.release()
        else:
            outcomes["cancelled"] += 1
            assert not lock.locked(), f"seed {seed}"
        await _free(admin, name)
    await locker.close()
    assert locker._pool.sessions == 0
    # Both kinds must have happened, or the test proved nothing.
    assert outcomes["cancelled"] > CANCELLATIONS // 10, (seed, outcomes)
    assert outcomes["acquired"] > 0, (seed, outcomes)
    for name in names:
        await _free(admin, name)
