"""The asyncio API: AsyncLocker and AsyncLock on aiomysql and asyncmy, against the real server.

Every test runs once per asyncio driver, in an event loop in debug mode that fails the test on
any step slower than 50 ms (``watch_loop`` in conftest.py), and must leave no thread and no
server session behind (the autouse leak check).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import resource
import threading
import time
from typing import Any, Callable

import pytest

from PyMySQLLock import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    Lock,
    LockAlreadyHeldError,
    LockConnectionError,
    LockError,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
)
from PyMySQLLock.aio import AsyncLock, AsyncLocker, keepalive as keepalive_module
from PyMySQLLock.aio.keepalive import AsyncKeepalive
from PyMySQLLock.errors import DriverNotInstalledError
from PyMySQLLock.loss import LossCause

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MakeAsync = Callable[..., AsyncLocker]


async def test_acquire_release_and_views(make_async_locker: MakeAsync, lock_name: str) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    lock = locker.lock(lock_name)
    assert isinstance(lock, AsyncLock)
    assert not lock.locked()
    assert lock.connection_id is None
    with pytest.raises(LockNotHeldError):
        lock.ensure_held()
    assert await lock.acquire(timeout=0)
    assert lock.locked()
    lock.ensure_held()
    assert not lock.lost
    # The server agrees: the lock's own session holds it.
    assert await admin.holder(lock_name) == lock.connection_id
    assert await locker.holder(lock_name) == lock.connection_id
    assert await locker.is_locked(lock_name)
    with pytest.raises(LockAlreadyHeldError):
        await lock.acquire(timeout=0)
    await lock.release()
    assert not lock.locked()
    assert await admin.holder(lock_name) is None
    assert not await locker.is_locked(lock_name)
    with pytest.raises(LockNotHeldError):
        await lock.release()
    assert "idle" in repr(lock)
    assert locker.server.version > (0, 0, 0)


async def test_warm_cycle_reuses_one_session(make_async_locker: MakeAsync, lock_name: str) -> None:
    locker = make_async_locker()
    ids = set()
    for _ in range(5):
        lock = locker.lock(lock_name)
        assert await lock.acquire()
        ids.add(lock.connection_id)
        await lock.release()
    assert len(ids) == 1


async def test_contention_between_lockers(make_async_locker: MakeAsync, lock_name: str) -> None:
    first, second = make_async_locker(), make_async_locker()
    held = first.lock(lock_name)
    assert await held.acquire()
    other = second.lock(lock_name)
    assert not await other.acquire(timeout=0)
    assert not await other.acquire(timeout=0.3)  # fractions honoured on every server
    waiter = asyncio.ensure_future(other.acquire(timeout=30))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await held.release()
    assert await asyncio.wait_for(waiter, 20)
    assert other.locked()
    await other.release()


async def test_many_tasks_take_turns(make_async_locker: MakeAsync, lock_name: str) -> None:
    locker = make_async_locker()
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        async with locker.lock(lock_name, timeout=30):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(8))), 45)
    assert most == 1


async def test_async_with_and_timeout(make_async_locker: MakeAsync, lock_name: str) -> None:
    first, second = make_async_locker(), make_async_locker()
    async with first.lock(lock_name, timeout=5) as lock:
        assert lock.locked()
        with pytest.raises(LockTimeoutError) as caught:
            async with second.lock(lock_name, timeout=0):
                pytest.fail("entered a held lock")
        assert caught.value.name == lock_name
        assert caught.value.timeout == 0
        assert caught.value.holder == lock.connection_id
        assert f"held by connection {lock.connection_id}" in str(caught.value)
    assert not lock.locked()


@pytest.mark.parametrize("driver", ["pymysql"])
async def test_names_namespaces_and_listing_match_the_blocking_locker(
    make_async_locker: MakeAsync, make_locker: Any, lock_name: str
) -> None:
    long_name = lock_name + "-" + "x" * 100
    locker = make_async_locker(namespace="aio")
    # The blocking Locker runs in a worker thread, so that the loop is never blocked.
    blocking = await asyncio.to_thread(make_locker, namespace="aio")
    async with locker.lock(long_name) as lock:
        assert lock.server_name == Lock(blocking, long_name).server_name
        assert len(lock.server_name) <= 64
        # The blocking locker sees the async one's lock under the same name, and back.
        assert await asyncio.to_thread(blocking.holder, long_name) == lock.connection_id
        names = await locker.get_all_locks()
        assert names == await asyncio.to_thread(blocking.get_all_locks)
        assert lock.server_name[len("aio.") :] in names
        infos = await locker.list_locks()
        blocking_infos = await asyncio.to_thread(blocking.list_locks)
        without_age = [dataclasses.replace(info, held_for=None) for info in infos]
        assert without_age == [dataclasses.replace(i, held_for=None) for i in blocking_infos]
        assert any(info.connection_id == lock.connection_id for info in infos)
    blocking_lock = blocking.lock(lock_name)
    assert await asyncio.to_thread(blocking_lock.acquire)
    assert await locker.holder(lock_name) is not None
    assert not await locker.lock(lock_name).acquire(timeout=0)
    await asyncio.to_thread(blocking_lock.release)
    await asyncio.to_thread(blocking.close)


async def test_lost_by_kill_is_detected_by_the_keepalive(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    reported: asyncio.Queue[AsyncLock] = asyncio.Queue()
    seen_async = asyncio.Event()

    async def on_lost_coroutine(lost: AsyncLock) -> None:
        await asyncio.sleep(0)
        seen_async.set()

    plain = locker.lock(lock_name, refresh_interval_secs=0.5, on_lost=reported.put_nowait)
    other_name = lock_name + "-2"
    coro = locker.lock(other_name, refresh_interval_secs=0.5, on_lost=on_lost_coroutine)
    assert await plain.acquire()
    assert await coro.acquire()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    assert await admin.force_release(lock_name)
    assert await admin.force_release(other_name)
    assert await asyncio.wait_for(reported.get(), 10) is plain
    await asyncio.wait_for(seen_async.wait(), 10)
    # Within the interval plus a second (generous for a busy machine: interval + 3 s).
    assert loop.time() - killed_at < 3.5
    assert plain.lost
    assert not plain.locked()
    assert plain.lost_reason is not None
    assert plain.lost_reason.cause is LossCause.CONNECTION_LOST
    with pytest.raises(LockLostError):
        plain.ensure_held()
    await plain.release()  # only cleans up
    with pytest.raises(LockNotHeldError):
        await plain.release()
    await coro.release()


async def test_locks_due_beyond_one_batch_are_all_checked(
    make_async_locker: MakeAsync, lock_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One wake-up of the keepalive starts a bounded batch of checks (so that the checks under
    # way fit the collector's youngest generation); locks due beyond it must be checked at
    # the next wake-up, not an interval later, and every loss among them reported in time.
    monkeypatch.setattr(keepalive_module, "_batch_limit", lambda: 3)
    batches: list[int] = []
    fire = AsyncKeepalive._fire

    def counting_fire(self: AsyncKeepalive, loop: asyncio.AbstractEventLoop) -> None:
        before = len(self._checks)
        fire(self, loop)
        batches.append(len(self._checks) - before)

    monkeypatch.setattr(AsyncKeepalive, "_fire", counting_fire)
    locker, admin = make_async_locker(), make_async_locker()
    reported: asyncio.Queue[AsyncLock] = asyncio.Queue()
    locks = [
        locker.lock(f"{lock_name}-{n}", refresh_interval_secs=0.5, on_lost=reported.put_nowait)
        for n in range(12)
    ]
    assert all(await asyncio.gather(*(lock.acquire() for lock in locks)))
    victims = locks[1::2]
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    for lock in victims:
        assert await admin.force_release(lock.name)
    seen = {await asyncio.wait_for(reported.get(), 10) for _ in victims}
    assert seen == set(victims)
    assert loop.time() - killed_at < 3.5  # interval + 1 s, generous for a busy machine
    assert max(batches) <= 3
    assert sum(batches) >= len(locks)
    survivors = locks[0::2]
    assert all(lock.locked() and not lock.lost for lock in survivors)
    for lock in locks:
        await lock.release()


async def test_async_with_exit_raises_for_a_lost_lock(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    lost = asyncio.Event()

    async def block() -> None:
        async with locker.lock(
            lock_name, refresh_interval_secs=0.3, on_lost=lambda _lock: lost.set()
        ):
            await admin.force_release(lock_name)
            await asyncio.wait_for(lost.wait(), 10)

    with pytest.raises(LockLostError) as caught:
        await block()
    assert caught.value.name == lock_name
    assert caught.value.reason is not None
    assert caught.value.reason.cause is LossCause.CONNECTION_LOST


async def test_release_finds_a_loss_the_keepalive_has_not_seen(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    reasons: list[AsyncLock] = []
    lock = locker.lock(lock_name, refresh_interval_secs=3600, on_lost=reasons.append)
    assert await lock.acquire()
    assert await admin.force_release(lock_name)
    await lock.release()
    assert lock.lost
    assert reasons == [lock]
    assert lock.lost_reason is not None
    assert lock.lost_reason.cause is LossCause.CONNECTION_LOST


async def test_synchronized(make_async_locker: MakeAsync, lock_name: str) -> None:
    locker, other = make_async_locker(), make_async_locker()
    calls: list[int] = []

    @locker.synchronized(lock_name, on_busy="skip")
    async def job(number: int) -> int:
        calls.append(number)
        assert await other.is_locked(lock_name)
        return number * 2

    @locker.synchronized(lock_name, on_busy="raise")
    async def strict() -> None:
        pytest.fail("ran without the lock")

    @locker.synchronized(lock_name, timeout=0.2)
    async def patient() -> None:
        pytest.fail("ran without the lock")

    assert await job(2) == 4
    async with other.lock(lock_name):
        assert await job(3) is None
        with pytest.raises(LockTimeoutError):
            await strict()
        with pytest.raises(LockTimeoutError):
            await patient()
    assert calls == [2]
    assert job.__name__ == "job"

    with pytest.raises(InvalidArgumentTypeError, match="coroutine function"):

        @locker.synchronized(lock_name)
        def plain() -> None:  # pragma: no cover - refused at decoration
            pass

    with pytest.raises(InvalidArgumentError):
        locker.synchronized(lock_name, on_busy="sometimes")


async def test_close_releases_and_refuses(make_async_locker: MakeAsync, lock_name: str) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    lock = locker.lock(lock_name)
    assert await lock.acquire()
    async with locker:  # close() at the end of the block
        pass
    assert locker.closed
    assert not lock.locked()
    assert await admin.holder(lock_name) is None
    with pytest.raises(LockError, match="closed"):
        await locker.lock(lock_name).acquire()
    await locker.close()  # idempotent


async def test_no_thread_is_started(make_async_locker: MakeAsync, lock_name: str) -> None:
    before = set(threading.enumerate())
    locker = make_async_locker()
    locks = [locker.lock(f"{lock_name}-{n}", refresh_interval_secs=0.1) for n in range(5)]
    for lock in locks:
        assert await lock.acquire()
    await asyncio.sleep(0.3)  # a few keepalive rounds
    assert all(lock.locked() for lock in locks)
    assert set(threading.enumerate()) == before
    for lock in locks:
        await lock.release()


async def test_from_url(server: Any, async_driver: str, watch_loop: Any, lock_name: str) -> None:
    kwargs = server.connect_kwargs()
    url = (
        f"mysql+{async_driver}://{kwargs['user']}:{kwargs['password']}@{kwargs['host']}:"
        f"{kwargs['port']}/{kwargs['database']}?namespace=url&ping_timeout=5"
    )
    async with AsyncLocker.from_url(url) as locker:
        assert locker.driver.name == async_driver
        assert locker.namespace == "url"
        async with locker.lock(lock_name) as lock:
            assert lock.server_name == f"url.{lock_name}"
    with pytest.raises(InvalidArgumentError, match="blocking driver"):
        AsyncLocker.from_url("mysql+pymysql://u:p@h/db")


async def test_arguments_are_checked(
    make_async_locker: MakeAsync, async_driver: str, lock_name: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown asyncio driver"):
        AsyncLocker(driver="pymysql")
    with pytest.raises(InvalidArgumentTypeError):
        AsyncLocker(driver=3)
    with pytest.raises(InvalidArgumentError):
        AsyncLocker(driver=async_driver, pool_size=-1)
    with pytest.raises(InvalidArgumentError):
        AsyncLocker(driver=async_driver, ping_timeout=0)
    locker = make_async_locker()
    with pytest.raises(InvalidArgumentTypeError):
        locker.lock(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        await locker.lock(lock_name).acquire(timeout=-2)
    with pytest.raises(InvalidArgumentError, match="write_timeout"):
        make_async_locker(write_timeout=5)
    with pytest.raises(InvalidArgumentError, match="cannot read the ssl_ca file"):
        make_async_locker(ssl_ca="/nonexistent/ca.pem")
    with pytest.raises(InvalidArgumentError):
        make_async_locker(ssl_mode="SOMETIMES")
    bad = make_async_locker(password="wrong-password")
    with pytest.raises(LockError) as caught:
        await bad.connect()
    assert "wrong-password" not in str(caught.value)
    with pytest.raises(LockError, match="not connected"):
        bad.server


async def test_asyncmy_releases_before_0_2_13_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "0.2.12" if name == "asyncmy" else real(name),
    )
    with pytest.raises(DriverNotInstalledError, match=r"asyncmy >= 0\.2\.13"):
        AsyncLocker(driver="asyncmy")


async def test_the_loop_watch_catches_a_blocking_step() -> None:
    """The check every async test runs under (``watch_loop``) fails on blocking calls."""
    from conftest import watching_steps

    async def sleeps() -> None:
        time.sleep(0.08)

    async def computes() -> None:
        start = resource.getrusage(resource.RUSAGE_THREAD).ru_utime
        while resource.getrusage(resource.RUSAGE_THREAD).ru_utime - start < 0.08:
            sum(range(20000))

    loop = asyncio.get_running_loop()
    with watching_steps(loop) as watch:
        await asyncio.sleep(0.01)
        assert not watch.reports
        await asyncio.ensure_future(sleeps())
        await asyncio.ensure_future(computes())
    assert len(watch.reports) == 2, watch.reports
    slept = re.search(r"\(CPU ([\d.]+) s, (\d+) sleeps\)$", watch.reports[0])
    assert slept is not None
    assert int(slept.group(2)) >= 1, watch.reports[0]
    busy = re.search(r"\(CPU ([\d.]+) s, (\d+) sleeps\)$", watch.reports[1])
    assert busy is not None
    assert float(busy.group(1)) >= 0.05, watch.reports[1]


@pytest.mark.lifecycle
@pytest.mark.slow
async def test_read_timeout_on_a_hung_server_after_an_answered_statement(
    fresh_server: Any, async_driver: str, watch_loop: Any, lock_name: str
) -> None:
    """A statement sent just after an answered one gets its own full read timeout: the one
    timer of the pool, armed for the first statement, waits again for the second."""
    # 2 s: room for the steps between the two statements on a busy machine.
    async with AsyncLocker(
        **fresh_server.connect_kwargs(), driver=async_driver, ping_timeout=2
    ) as locker:
        assert await locker.holder(lock_name) is None
        loop = asyncio.get_running_loop()
        fresh_server.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            began = loop.time()
            with pytest.raises(LockConnectionError, match="did not answer within 2 s"):
                await asyncio.wait_for(locker.holder(lock_name), 10)
            waited = loop.time() - began
        finally:
            fresh_server.resume()
        assert waited >= 2.0  # not cut short by the deadline of the first statement
        assert await locker.holder(lock_name) is None  # the pool goes on with a new session


@pytest.mark.lifecycle
@pytest.mark.slow
async def test_hung_and_restarted_server(
    fresh_server: Any, async_driver: str, watch_loop: Any, lock_name: str
) -> None:
    """A hung server is noticed within interval + ping timeout; a restart at the next check."""
    async with AsyncLocker(
        **fresh_server.connect_kwargs(), driver=async_driver, ping_timeout=1
    ) as locker:
        lost: asyncio.Queue[AsyncLock] = asyncio.Queue()
        lock = locker.lock(lock_name, refresh_interval_secs=0.5, on_lost=lost.put_nowait)
        assert await lock.acquire()
        loop = asyncio.get_running_loop()
        paused_at = loop.time()
        fresh_server.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            assert await asyncio.wait_for(lost.get(), 10) is lock
            detected = loop.time() - paused_at
        finally:
            fresh_server.resume()
        assert lock.lost_reason is not None
        assert lock.lost_reason.cause is LossCause.NO_ANSWER
        assert detected < 0.5 + 1 + 2.5  # interval + ping timeout, generous for busy CPUs
        await lock.release()

        assert await lock.acquire(timeout=10)
        await asyncio.to_thread(fresh_server.restart)
        assert await asyncio.wait_for(lost.get(), 15) is lock
        assert lock.lost_reason is not None
        assert lock.lost_reason.cause is LossCause.CONNECTION_LOST
        await lock.release()
        # The locker goes on with new sessions.
        async with locker.lock(lock_name, timeout=10):
            pass
