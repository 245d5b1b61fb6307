"""Counting semaphores (``Locker.semaphore``) against the real server, under every driver.

The promises checked: never more than ``limit`` holders (counted outside the library, by the
server and by worker processes in a shared file; the processes run every driver, asyncio
ones too), every waiter gets its turn, a waiter is
handed a freed slot by the server (no polling), a SIGKILLed holder frees its slot, and a held
slot is an ordinary lock for loss detection and listings.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from workerprocess import CoordWorkers

from PyMySQLLock import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockAlreadyHeldError,
    Locker,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
)
from PyMySQLLock.semaphore import MAX_LIMIT, QUEUE_SUFFIX, slot_name

WORKER_SCRIPT = Path(__file__).with_name("coordworker.py")


def _held_slots(sql, name: str, limit: int) -> dict[int, int]:
    """Held slots by number, read by the test's own root connection."""
    marks = ", ".join(["IS_USED_LOCK(%s)"] * limit)
    row = sql(f"SELECT {marks}", tuple(slot_name(name, n) for n in range(1, limit + 1)))[0]
    return {n: int(holder) for n, holder in enumerate(row, 1) if holder is not None}


def test_up_to_limit_holders_then_timeout(make_locker, lock_name, sql):
    lockers = [make_locker() for _ in range(3)]
    first, second, third = (each.semaphore(lock_name, 2) for each in lockers)
    assert first.acquire(0) is True
    assert second.acquire(0) is True
    assert {first.slot, second.slot} == {1, 2}
    assert third.acquire(0) is False
    assert third.acquire(0.2) is False  # waits on the server, then gives up
    held = _held_slots(sql, lock_name, 2)
    assert held == {
        first.slot: first.slot_lock.connection_id,
        second.slot: second.slot_lock.connection_id,
    }
    assert first.holders() == held
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name + QUEUE_SUFFIX,))[0][0] is None
    first.release()
    assert third.acquire(0) is True
    second.release()
    third.release()
    assert _held_slots(sql, lock_name, 2) == {}


def test_waiter_gets_a_released_slot_from_the_server(make_locker, lock_name, spawn, lock_waiters):
    holders = [make_locker().semaphore(lock_name, 3) for _ in range(3)]
    for each in holders:
        assert each.acquire(0)
    waiter = make_locker().semaphore(lock_name, 3)
    worker = spawn(waiter.acquire, 30)
    # The head waiter waits on every slot at once.
    lock_waiters(lock_name + "#", count=3)
    freed = holders[1].slot
    holders[1].release()
    assert worker.result() is True
    assert waiter.slot == freed
    waiter.release()
    for each in (holders[0], holders[2]):
        each.release()


def test_with_block_and_state_errors(locker, lock_name):
    gate = locker.semaphore(lock_name, 2, timeout=0)
    with pytest.raises(LockNotHeldError):
        gate.release()
    with pytest.raises(LockNotHeldError):
        gate.ensure_held()
    with gate:
        assert gate.locked()
        gate.ensure_held()
        with pytest.raises(LockAlreadyHeldError):
            gate.acquire(0)
    assert not gate.locked()
    assert gate.slot is None
    other = locker.semaphore(lock_name, 1, timeout=0)
    blocker = locker.semaphore(lock_name, 1)
    with blocker, pytest.raises(LockTimeoutError):
        other.__enter__()


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        (0, InvalidArgumentError),
        (MAX_LIMIT + 1, InvalidArgumentError),
        (True, InvalidArgumentTypeError),
        (2.0, InvalidArgumentTypeError),
    ],
)
def test_bad_limits_are_refused(locker, lock_name, limit, error):
    with pytest.raises(error, match="limit"):
        locker.semaphore(lock_name, limit)


def test_lost_slot_is_reported(make_locker, lock_name, sql):
    told = threading.Event()
    gate = make_locker().semaphore(
        lock_name, 2, refresh_interval_secs=0.2, on_lost=lambda sem: told.set()
    )
    gate.acquire(0)
    sql("KILL CONNECTION %s", (gate.slot_lock.connection_id,))
    assert told.wait(10), "the keepalive did not report the lost slot"
    assert gate.lost
    with pytest.raises(LockLostError):
        gate.ensure_held()
    with pytest.raises(LockLostError):
        gate.__exit__(None, None, None)


def test_slots_are_listed_as_locks(locker, lock_name):
    gate = locker.semaphore(lock_name, 2)
    with gate:
        listed = {info.name: info.connection_id for info in locker.list_locks()}
        assert listed[slot_name(lock_name, gate.slot)] == gate.slot_lock.connection_id


@pytest.fixture
def coord_process(server, worker_driver, tmp_path):
    """``coord_process(**spec)``: a started ``coordworker.py``, under every driver (asyncio too)."""
    workers = CoordWorkers(WORKER_SCRIPT, server, worker_driver, tmp_path)
    yield workers.start
    workers.close()


def test_processes_never_exceed_the_limit_and_all_get_turns(coord_process, lock_name, tmp_path):
    limit, processes, rounds = 2, 4, 5
    counter = tmp_path / "holders"
    counter.write_text("0 0")
    workers = [
        coord_process(
            mode="semaphore",
            name=lock_name,
            limit=limit,
            count=rounds,
            hold=0.02,
            counter=str(counter),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.expect("ready")
    for worker in workers:  # every process got all its turns
        worker.expect("done", timeout=60)
        assert worker.proc.wait(10) == 0
    now, most = (int(part) for part in counter.read_text().split())
    assert now == 0
    assert 1 <= most <= limit


def test_sigkilled_holder_frees_its_slot(coord_process, server, lock_name, spawn):
    holder = coord_process(mode="hold", name=lock_name, limit=1)
    holder.expect("acquired 1")
    observer = Locker(**server.connect_kwargs())  # the holder process has the test's driver
    waiter = observer.semaphore(lock_name, 1)
    assert waiter.acquire(0) is False
    worker = spawn(waiter.acquire, 30)
    holder.kill()
    assert worker.result() is True
    waiter.release()
    observer.close()
