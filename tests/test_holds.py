"""Minimum holds (``hold_at_least``) of ``Locker.synchronized`` against the real server.

Two Lockers stand for two hosts whose schedulers fire the same job at slightly different
times: the first runs it, and its lock stays held for ``hold_at_least`` seconds after it was
taken, so that the late trigger skips. ``pymysqllock run --hold-at-least`` is tested with real
processes in ``test_runner_holds.py``.
"""

from __future__ import annotations

import time

import pytest

HOLD = 1.0


def _holder(sql, name: str) -> int | None:
    value = sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
    return None if value is None else int(value)


def test_fast_job_keeps_the_lock_so_a_late_trigger_skips(make_locker, lock_name, sql):
    early, late = make_locker(), make_locker()
    runs: list[str] = []

    @early.synchronized(lock_name, on_busy="skip", hold_at_least=HOLD)
    def job_on_early_host() -> str:
        runs.append("early")
        return "done"

    @late.synchronized(lock_name, on_busy="skip")
    def job_on_late_host() -> str:
        runs.append("late")
        return "done"

    started = time.monotonic()
    assert job_on_early_host() == "done"  # returns at once, the hold goes on
    assert time.monotonic() - started < HOLD
    assert _holder(sql, lock_name) is not None
    assert job_on_late_host() is None  # skipped
    assert runs == ["early"]
    # The hold ends by itself: a waiter gets the lock after about HOLD seconds.
    waiter = late.lock(lock_name)
    assert waiter.acquire(30) is True
    assert time.monotonic() - started >= HOLD - 0.05
    waiter.release()
    assert runs == ["early"]


def test_a_failing_job_is_held_too_and_close_ends_the_hold(make_locker, lock_name, sql):
    locker = make_locker()

    @locker.synchronized(lock_name, on_busy="skip", hold_at_least=60)
    def failing() -> None:
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError, match="job failed"):
        failing()
    assert _holder(sql, lock_name) is not None
    locker.close()
    assert _holder(sql, lock_name) is None


def test_a_slow_job_is_released_at_its_end(make_locker, lock_name, sql):
    locker = make_locker()

    @locker.synchronized(lock_name, hold_at_least=0.01)
    def slow() -> None:
        time.sleep(0.05)

    slow()
    assert _holder(sql, lock_name) is None


def test_bad_holds_are_refused(locker, lock_name, bad_hold):
    value, error = bad_hold
    with pytest.raises(error, match="hold_at_least"):
        locker.synchronized(lock_name, hold_at_least=value)
