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
from tcpproxy import ProxyProcess

from PyMySQLLock.aio import AsyncLock, AsyncLocker

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

MakeAsync = Callable[..., AsyncLocker]
CANCELLATIONS = int(os.environ.get("PYMYSQLLOCK_AIO_CANCELLATIONS", "200"))
#: Seconds a closed session may take to let go of its lock on the server.
FREE_GRACE = 5.0
#: Seconds the server may take to end the wait of a cancelled acquire. Generous: without the
#: kill, such a wait behind a proxy that keeps its upstream lasts for the whole wait chunk
#: (minutes with the read timeout of these tests).
GONE_GRACE = 20.0
#: A read timeout (``ping_timeout``) that makes each server-side wait last minutes.
LONG_READS = 600.0


async def _free(admin: AsyncLocker, name: str) -> None:
    """Wait until nobody holds ``name``; fail after :data:`FREE_GRACE`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FREE_GRACE
    while (holder := await admin.holder(name)) is not None:
        if loop.time() > deadline:
            pytest.fail(f"lock {name!r} still held by session {holder} after a cancellation")
        await asyncio.sleep(0.005)


async def _ask(server: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The rows of one statement, asked on a connection of its own."""
    connection = await aiomysql.connect(**{**_aiomysql_kwargs(server), "autocommit": True})
    try:
        cursor = await connection.cursor()
        await cursor.execute(sql, params)
        return [tuple(row) for row in await cursor.fetchall()]
    finally:
        await connection.ensure_closed()


async def _sessions_waiting(server: Any, name: str) -> list[int]:
    """The ids of the sessions that wait for ``name`` in GET_LOCK."""
    rows = await _ask(
        server,
        "SELECT ID FROM information_schema.PROCESSLIST "
        "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
        (name,),
    )
    return [int(row[0]) for row in rows]


def _aiomysql_kwargs(server: Any) -> dict[str, Any]:
    kwargs = dict(server.connect_kwargs())
    kwargs["db"] = kwargs.pop("database")
    return kwargs


async def _until_waiting(server: Any, name: str, count: int = 1) -> list[int]:
    """Wait until ``count`` sessions wait for ``name``; :returns: their ids."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(waiting := await _sessions_waiting(server, name)) < count:
        if loop.time() > deadline:
            pytest.fail(f"no session waits for {name!r}")
        await asyncio.sleep(0.01)
    return waiting


async def _until_gone(server: Any, ids: list[int]) -> None:
    """Wait until none of the sessions ``ids`` is on the server; fail after :data:`GONE_GRACE`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GONE_GRACE
    marks = ", ".join(["%s"] * len(ids))
    sql = f"SELECT ID, STATE FROM information_schema.PROCESSLIST WHERE ID IN ({marks})"
    while rows := await _ask(server, sql, tuple(ids)):
        if loop.time() > deadline:
            pytest.fail(f"sessions still on the server {GONE_GRACE} s after the cancel: {rows}")
        await asyncio.sleep(0.02)


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
    (waiter,) = await _until_waiting(server, lock_name)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not lock.locked()
    await _until_gone(server, [waiter])  # the waiting session was closed, not pooled
    await held.release()
    await _free(admin, lock_name)  # not granted to the abandoned session


@pytest.fixture(params=["direct", "keeping_proxy"])
def route(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Connect arguments to the server: directly, or through a :func:`keeping_proxy`.

    A fixture, not a look-up in the test: the proxy's process starts outside the event loop.
    """
    if request.param == "direct":
        return {}
    proxy = request.getfixturevalue("keeping_proxy")
    return {"host": proxy.host, "port": proxy.port, "ping_timeout": LONG_READS}


async def test_cancelled_with_the_grant_in_flight(
    make_async_locker: MakeAsync, lock_name: str, server: Any, route: dict[str, Any]
) -> None:
    # Behind the keeping proxy, the server never learns that a session granted the lock was
    # closed: only the kill of the closed session frees the lock.
    locker = make_async_locker(**route)
    holder, admin = make_async_locker(), make_async_locker()
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
    (waiter,) = await _until_waiting(server, lock_name)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = locker.lock(lock_name + "-other")
    assert await other.acquire(timeout=0)
    assert other.connection_id != waiter
    assert await holder.holder(lock_name) == held.connection_id
    assert await holder.holder(lock_name + "-other") == other.connection_id
    await other.release()
    await held.release()


@pytest.fixture
def keeping_proxy(server: Any) -> Any:
    """A proxy to the server that keeps a session open when its client closes (see tcpproxy).

    Behind it the server never learns by itself that a cancelled acquire closed its session,
    as with a TLS session or a pooling proxy: only a kill ends such a wait before its time.
    """
    # In a process of its own: its pumps must not compete with the loop for the interpreter.
    with ProxyProcess(server.host, server.port) as proxy:
        proxy.keep_upstream()
        yield proxy


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_the_server_wait_of_a_cancelled_acquire_is_ended(
    make_async_locker: MakeAsync,
    lock_name: str,
    server: Any,
    keeping_proxy: ProxyProcess,
    how: str,
) -> None:
    if how == "timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout() is new in Python 3.11")
    holder, other = make_async_locker(), make_async_locker()
    locker = make_async_locker(
        host=keeping_proxy.host, port=keeping_proxy.port, ping_timeout=LONG_READS
    )
    held = holder.lock(lock_name)
    assert await held.acquire()
    lock = locker.lock(lock_name)
    scope: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def waiting() -> bool:
        async with asyncio.timeout(None) as cut:
            scope.set_result(cut)
            return await lock.acquire()

    task = asyncio.ensure_future(lock.acquire() if how == "cancel" else waiting())
    (waiter,) = await _until_waiting(server, lock_name)
    if how == "cancel":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # the deadline of an asyncio.timeout() around the acquire passes now
        (await scope).reschedule(asyncio.get_running_loop().time())
        with pytest.raises(TimeoutError):
            await task
    assert not lock.locked()
    # Behind this proxy the wait would last for minutes; the kill ends it.
    await _until_gone(server, [waiter])
    await held.release()
    # Nobody else waits for the lock: the next taker gets it at once.
    taker = other.lock(lock_name)
    assert await taker.acquire(timeout=0)
    await taker.release()


async def _waiting_behind(
    proxy: ProxyProcess, make_async_locker: MakeAsync, server: Any, name: str, count: int
) -> tuple[AsyncLock, AsyncLocker, list[asyncio.Future[bool]], list[int]]:
    """``count`` acquires through ``proxy`` waiting for ``name``, which another locker holds.

    :returns: the held lock, the waiting locker, the waiting tasks and their sessions' ids.
    """
    held = make_async_locker().lock(name)
    assert await held.acquire()
    locker = make_async_locker(host=proxy.host, port=proxy.port, ping_timeout=LONG_READS)
    await locker.connect()
    tasks = [asyncio.ensure_future(locker.lock(name).acquire()) for _ in range(count)]
    return held, locker, tasks, await _until_waiting(server, name, count)


async def test_a_storm_of_cancellations_reuses_one_session_for_the_kills(
    make_async_locker: MakeAsync, lock_name: str, server: Any, keeping_proxy: ProxyProcess
) -> None:
    held, _, tasks, waiters = await _waiting_behind(
        keeping_proxy, make_async_locker, server, lock_name, 20
    )
    # Asked of the proxy's process in a thread: the answer must not block the loop.
    opened = await asyncio.to_thread(lambda: keeping_proxy.accepted)
    for task in tasks:  # all in one step of the loop
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    await _until_gone(server, waiters)
    # The kills ran on one session (there was no idle one): not one connection per cancel.
    assert await asyncio.to_thread(lambda: keeping_proxy.accepted) - opened <= 1
    await held.release()
    assert await held.locker.is_locked(lock_name) is False


async def test_close_with_kills_under_way_leaves_nothing(
    make_async_locker: MakeAsync, lock_name: str, server: Any, keeping_proxy: ProxyProcess
) -> None:
    held, locker, tasks, waiters = await _waiting_behind(
        keeping_proxy, make_async_locker, server, lock_name, 5
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert locker._tracked  # the kills are under way
    await locker.close()
    assert not locker._tracked
    assert locker._pool.sessions == 0
    # close() waited for the kills: the waits are ended though the proxy kept their sessions.
    await _until_gone(server, waiters)
    await held.release()
    assert await held.locker.is_locked(lock_name) is False


async def test_a_session_not_in_get_lock_is_never_killed(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    # After a server restart the id of a closed session may name another session: only one
    # still running a GET_LOCK, or holding the lock it asked for, is killed. Here a live
    # session's id is noted as abandoned by an acquire of another lock.
    locker, other = make_async_locker(), make_async_locker()
    await locker.connect()
    lock = other.lock(lock_name)
    assert await lock.acquire(timeout=0)
    held_by = lock.connection_id
    assert held_by is not None
    locker._abandoned.add(held_by, lock.server_name + "-other")
    (reaper,) = locker._tracked
    await asyncio.wait_for(reaper, 30)  # looked, and looked again, then gave up
    assert await locker.holder(lock_name) == held_by
    assert lock.locked()
    await lock.release()


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
