"""Minimum holds (``hold_at_least``) of ``AsyncLocker.synchronized`` under aiomysql and asyncmy.

As in tests/test_holds.py, two AsyncLockers stand for two hosts whose schedulers fire the same
job at slightly different times: the first runs it and keeps its lock for ``hold_at_least``
seconds after it was taken, so that the late trigger skips. And the asyncio points: a job whose
task is cancelled is held too, a hold whose lock is lost meanwhile releases nothing, and closing
the AsyncLocker ends every hold at once with no session left behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import pytest

from PyMySQLLock.aio import AsyncLocker

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MakeAsync = Callable[..., AsyncLocker]
HOLD = 1.0


async def test_fast_job_keeps_the_lock_so_a_late_trigger_skips(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    early, late = make_async_locker(), make_async_locker()
    runs: list[str] = []

    @early.synchronized(lock_name, on_busy="skip", hold_at_least=HOLD)
    async def job_on_early_host() -> str:
        runs.append("early")
        return "done"

    @late.synchronized(lock_name, on_busy="skip")
    async def job_on_late_host() -> str:
        runs.append("late")
        return "done"

    started = time.monotonic()
    assert await job_on_early_host() == "done"  # returns at once, the hold goes on
    assert time.monotonic() - started < HOLD
    assert await late.is_locked(lock_name)
    assert await job_on_late_host() is None  # skipped
    assert runs == ["early"]
    # The hold ends by itself: a waiter gets the lock after about HOLD seconds.
    waiter = late.lock(lock_name)
    assert await waiter.acquire(30) is True
    assert time.monotonic() - started >= HOLD - 0.05
    await waiter.release()
    assert runs == ["early"]
    assert not early._pool._in_use, "the held session was not given back"


async def test_failing_and_cancelled_jobs_are_held_too_and_close_ends_the_hold(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()

    @locker.synchronized(lock_name, on_busy="skip", hold_at_least=60)
    async def failing() -> None:
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError, match="job failed"):
        await failing()
    assert await admin.is_locked(lock_name)

    started = asyncio.Event()

    @locker.synchronized(lock_name + "-2", hold_at_least=60)
    async def cancelled() -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    task = asyncio.ensure_future(cancelled())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await admin.is_locked(lock_name + "-2")  # a cancelled run is held on too
    await locker.close()
    assert not await admin.is_locked(lock_name)
    assert not await admin.is_locked(lock_name + "-2")
    assert not locker._kept
    assert not locker._pool._in_use


async def test_a_hold_whose_lock_is_lost_releases_nothing(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker, admin = make_async_locker(), make_async_locker()

    @locker.synchronized(lock_name, hold_at_least=HOLD, refresh_interval_secs=0.2)
    async def job() -> None:
        pass

    await job()
    assert await admin.force_release(lock_name)  # the held session is killed during the hold
    thief = admin.lock(lock_name)
    assert await thief.acquire(5)  # someone else takes the lock
    # The end of the hold comes and goes; it must not release the thief's lock.
    kept = list(locker._kept)
    await asyncio.wait_for(asyncio.gather(*kept), 10)
    assert await locker.holder(lock_name) == thief.connection_id
    await thief.release()


async def test_a_slow_job_is_released_at_its_end(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker = make_async_locker()

    @locker.synchronized(lock_name, hold_at_least=0.01)
    async def slow() -> None:
        await asyncio.sleep(0.05)

    await slow()
    assert not await locker.is_locked(lock_name)
    assert not locker._kept


async def test_bad_holds_are_refused(
    make_async_locker: MakeAsync, lock_name: str, bad_hold: tuple[Any, type[Exception]]
) -> None:
    value, error = bad_hold
    with pytest.raises(error, match="hold_at_least"):
        make_async_locker().synchronized(lock_name, hold_at_least=value)
