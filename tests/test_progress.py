"""Wait progress and observability: INFO while a wait goes on, DEBUG figures, holder in errors."""

from __future__ import annotations

import logging
import threading

import pytest

from PyMySQLLock import LockTimeoutError, progress


class _Records(logging.Handler):
    """Collects the library's records and signals each one that matches a test's condition."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.arrived = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.arrived:
            self.records.append(record)
            self.arrived.notify_all()

    def wait_for(self, count: int, message: str, timeout: float = 30.0) -> list[logging.LogRecord]:
        def matching() -> list[logging.LogRecord]:
            return [r for r in self.records if r.msg == message]

        with self.arrived:
            assert self.arrived.wait_for(lambda: len(matching()) >= count, timeout), (
                f"{len(matching())} of {count} {message!r} records after {timeout} s"
            )
            return matching()


@pytest.fixture
def records():
    logger = logging.getLogger("PyMySQLLock")
    handler = _Records()
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(saved)


_WAITING = "waiting for lock %r for %.0f s; held by %s"


def test_a_long_wait_logs_the_holder_once_past_a_second(
    make_locker, lock_name, records, spawn, monkeypatch
):
    monkeypatch.setattr(progress, "REPEAT_SECONDS", 1.0)  # a second report without 30 s
    holder_locker, waiter_locker = make_locker(), make_locker()
    held = holder_locker.lock(lock_name)
    assert held.acquire(0)
    holder_id = held.connection_id
    waiter_lock = waiter_locker.lock(lock_name)
    waiter = spawn(waiter_lock.acquire, 30)
    reports = records.wait_for(2, _WAITING)
    held.release()
    assert waiter.result() is True
    first = reports[0]
    assert first.levelno == logging.INFO
    assert first.lock == lock_name
    assert first.holder == holder_id
    assert first.waited_s >= progress.FIRST_REPORT_SECONDS
    assert reports[1].waited_s > first.waited_s
    text = first.getMessage()
    assert f"held by connection {first.holder}" in text
    assert "root@" in text  # the holder's account, visible to this account
    waiter_lock.release()


def test_acquire_and_release_log_waited_and_held_at_debug(locker, lock_name, records):
    lock = locker.lock(lock_name)
    assert lock.acquire(5)
    connection_id = lock.connection_id
    lock.release()
    acquired = [r for r in records.records if r.msg.startswith("lock %r acquired")]
    released = [r for r in records.records if r.msg.startswith("lock %r released")]
    assert acquired
    assert released
    assert acquired[-1].lock == lock_name
    assert acquired[-1].holder == connection_id
    assert 0 <= acquired[-1].waited_s < 5
    assert released[-1].lock == lock_name
    assert released[-1].held_s >= 0


def test_a_quick_acquire_sends_nothing_more_with_info_logging(
    locker, lock_name, records, server_traffic
):
    lock = locker.lock(lock_name)
    assert lock.acquire(5)  # warm the pool: the next cycle reuses this connection
    lock.release()
    with server_traffic() as traffic:
        assert lock.acquire(5)
        lock.release()
    assert traffic.selects == 2
    assert not [r for r in records.records if r.msg == _WAITING]


def test_timeout_error_names_the_holder(make_locker, lock_name):
    holder_locker, waiter_locker = make_locker(), make_locker()
    held = holder_locker.lock(lock_name)
    assert held.acquire(0)
    try:
        with pytest.raises(LockTimeoutError) as raised, waiter_locker.lock(lock_name, timeout=0):
            pass
        assert f"held by connection {held.connection_id}" in str(raised.value)
        busy = waiter_locker.synchronized(lock_name, on_busy="raise")(lambda: None)
        with pytest.raises(LockTimeoutError, match=f"held by connection {held.connection_id}"):
            busy()
    finally:
        held.release()


def test_holder_details_read_every_answer():
    assert str(progress.holder_from_row(None)) == "nobody (free now)"
    assert str(progress.holder_from_row((None, None, None))) == "nobody (free now)"
    assert str(progress.holder_from_row((7, None, None))) == "connection 7"
    assert str(progress.holder_from_row((7, "app", "10.0.0.5:4011"))) == (
        "connection 7 (app@10.0.0.5:4011)"
    )
    assert str(progress.holder_from_row((7, None, "h:1"))) == "connection 7 (?@h:1)"
