"""Self-wait on the asyncio API: a task never waits endlessly on a name it holds itself.

The asyncio twin of the self-wait tests in tests/test_boundary_inputs.py. "Itself" is the
task that acquired the name (``asyncio.current_task()``) through another AsyncLock of the same
AsyncLocker: its endless acquire raises DeadlockError before anything is sent. A finite
timeout still expires; any other task, a child of the holder included, waits for the release;
a released or lost lock no longer counts. Every wait is bounded by :func:`within`, so that a
regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Callable

import pytest

from PyMySQLLock import DeadlockError
from PyMySQLLock.aio import AsyncLock, AsyncLocker

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MakeAsync = Callable[..., AsyncLocker]


@contextlib.asynccontextmanager
async def within(seconds: float = 10) -> AsyncIterator[None]:
    """Fail the block if it has not ended after ``seconds``, running it in the test's own task.

    Not ``asyncio.wait_for``: before Python 3.12 it runs its awaitable in a new task, which is
    not the task holding the name, and these tests are about which task holds it.
    """
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if expired:
            raise AssertionError(f"still waiting after {seconds} s") from None
        raise
    finally:
        handle.cancel()


async def test_an_endless_wait_on_a_name_this_task_holds_is_refused_at_once(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    holding = locker.lock(lock_name)
    assert await holding.acquire(timeout=0)
    again = locker.lock(lock_name)
    async with within():
        with pytest.raises(DeadlockError, match="held by this task") as caught:
            await again.acquire()
        with pytest.raises(DeadlockError):
            await again.acquire(timeout=-1)
        with pytest.raises(DeadlockError):
            async with again:
                pass
    assert "AsyncLock" in str(caught.value)
    assert "timeout" in str(caught.value)
    assert not again.locked()
    # A finite timeout simply expires, as in 0.2.0; the holder is untouched.
    async with within():
        assert await again.acquire(timeout=0.2) is False
    assert not again.locked()
    assert holding.locked()
    assert await admin.holder(lock_name) == holding.connection_id
    # Released, the name is free for the same task through the other lock.
    await holding.release()
    async with within():
        assert await again.acquire() is True
        # And the first lock is now the one that would wait on its own task.
        with pytest.raises(DeadlockError):
            await holding.acquire()
    await again.release()
    assert await admin.holder(lock_name) is None


async def test_a_child_task_of_the_holder_waits_for_its_release(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker = make_async_locker()
    holding = locker.lock(lock_name)
    assert await holding.acquire()
    started = asyncio.Event()

    async def child() -> bool:
        waiting = locker.lock(lock_name)
        started.set()
        # The self-wait check runs before acquire's first await, so it has run once the
        # parent sees ``started``, while the parent still holds the name.
        granted = await waiting.acquire()
        await waiting.release()
        return granted

    task = asyncio.create_task(child())
    await asyncio.wait_for(started.wait(), 10)
    assert not task.done()  # waiting on the server, not refused
    await holding.release()
    assert await asyncio.wait_for(task, 10) is True

    # The same through gather(): each awaitable runs in a task of its own.
    assert await holding.acquire()
    started.clear()

    async def release_when_started() -> None:
        await started.wait()
        await holding.release()

    granted, _ = await asyncio.wait_for(asyncio.gather(child(), release_when_started()), 10)
    assert granted is True


async def test_a_recursive_synchronized_call_in_the_same_task_is_refused(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    depth: list[int] = []

    @locker.synchronized(lock_name)
    async def job() -> None:
        depth.append(1)
        if len(depth) == 1:
            await job()

    async with within():
        with pytest.raises(DeadlockError):
            await job()
    assert depth == [1]
    assert await admin.holder(lock_name) is None
    # Sequential calls of the same task are not nested: each takes the lock anew.
    async with within():
        await job()
        await job()
    assert depth == [1, 1, 1]


async def test_a_minimum_hold_is_waited_for_by_its_task(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    # After the function returned, a task of the AsyncLocker releases the lock when the hold
    # is over: a wait of the task that ran the function ends then, and is not refused.
    locker = make_async_locker()
    runs: list[int] = []

    @locker.synchronized(lock_name, hold_at_least=0.3)
    async def job() -> int:
        runs.append(1)
        return len(runs)

    async with within():
        assert await job() == 1
        assert await job() == 2


async def test_a_lost_lock_no_longer_counts_as_held_by_its_task(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()
    lost: asyncio.Queue[AsyncLock] = asyncio.Queue()
    holding = locker.lock(lock_name, refresh_interval_secs=0.3, on_lost=lost.put_nowait)
    assert await holding.acquire()
    assert await admin.force_release(lock_name)  # kills the holding session
    assert await asyncio.wait_for(lost.get(), 10) is holding
    again = locker.lock(lock_name)
    async with within():
        assert await again.acquire() is True
    assert await admin.holder(lock_name) == again.connection_id
    await holding.release()  # only cleans up the lost one
    assert again.locked()
    await again.release()


async def test_a_semaphore_slot_held_by_this_task_does_not_refuse_another_slot(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    # Each slot is a name of its own: holding one never makes the wait for another a self-wait.
    locker = make_async_locker()
    first, second = locker.semaphore(lock_name, 2), locker.semaphore(lock_name, 2)
    async with within():
        assert await first.acquire() is True
        assert await second.acquire() is True
        assert {first.slot, second.slot} == {1, 2}
        # Full: a finite wait of a third object of this task expires as for anybody.
        assert await locker.semaphore(lock_name, 2).acquire(timeout=0.2) is False
    await first.release()
    await second.release()
