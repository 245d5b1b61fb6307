"""Loss of a held lock: detection by the keepalive, how it is reported, what the API does after."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from PyMySQLLock import LockError, LockLostError, LockNotHeldError

#: The refresh interval of the locks under test.
INTERVAL = 0.5
#: The spec's bound: a loss is detected within the refresh interval plus one second.
DETECTION_BOUND = INTERVAL + 1.0


class OnLost:
    """An ``on_lost`` callback that records its calls; ``called`` is set by the first one.

    :param error: raised by every call when given.
    """

    def __init__(self, error: BaseException | None = None) -> None:
        self.locks: list[object] = []
        self.threads: list[threading.Thread] = []
        self.called = threading.Event()
        self._error = error

    def __call__(self, lock: object) -> None:
        self.locks.append(lock)
        self.threads.append(threading.current_thread())
        self.called.set()
        if self._error is not None:
            raise self._error


class LogRecords(logging.Handler):
    """Collects the records of the ``PyMySQLLock`` logger; ``wait_for`` waits for a level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def at(self, level: int) -> list[logging.LogRecord]:
        """:returns: the records of exactly ``level``."""
        with self._changed:
            return [r for r in self.records if r.levelno == level]

    def wait_for(self, level: int, timeout: float) -> list[logging.LogRecord]:
        """Wait until a record of ``level`` arrived; :returns: those records."""
        with self._changed:
            self._changed.wait_for(lambda: any(r.levelno == level for r in self.records), timeout)
        return self.at(level)


@pytest.fixture
def log_records():
    logger = logging.getLogger("PyMySQLLock")
    handler = LogRecords()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _kill_session(sql, lock) -> float:
    """End the session holding ``lock`` from another session; :returns: when (monotonic)."""
    connection_id = lock.connection_id
    assert connection_id is not None
    sql("KILL CONNECTION %s", (connection_id,))
    return time.monotonic()


def _wait_until_gone(server_sessions, connection_id, timeout=5.0):
    deadline = time.monotonic() + timeout
    while connection_id in server_sessions():
        assert time.monotonic() < deadline, f"session {connection_id} still on the server"
        time.sleep(0.01)


#: The spec's bound: the keepalive thread ends about a second after the last lock it watched.
LINGER_BOUND = 1.0


# --------------------------------------------------------------------------- detection


def test_killed_session_is_detected_and_reported_once(
    locker, lock_name, sql, server_sessions, log_records
):
    threads_before = set(threading.enumerate())
    on_lost = OnLost()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    assert lock.acquire(0) is True
    held_on = lock.connection_id
    (keepalive,) = set(threading.enumerate()) - threads_before
    sessions_before = server_sessions()
    assert held_on in sessions_before

    killed_at = _kill_session(sql, lock)
    assert on_lost.called.wait(DETECTION_BOUND), "loss not reported"
    assert time.monotonic() - killed_at <= DETECTION_BOUND

    assert not lock.locked()
    assert lock.lost
    assert lock.connection_id is None
    with pytest.raises(LockLostError) as info:
        lock.ensure_held()
    assert isinstance(info.value, LockError)
    assert on_lost.locks == [lock]
    # on_lost runs on the Locker's callback thread, where it cannot delay or end the checks.
    assert on_lost.threads[0] is not keepalive
    assert on_lost.threads[0] is not threading.current_thread()
    assert on_lost.threads[0].name.startswith("PyMySQLLock-callbacks-")
    assert on_lost.threads[0].daemon
    assert keepalive.daemon
    warnings = log_records.at(logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].name == "PyMySQLLock"
    assert lock_name in warnings[0].getMessage()
    # The library did not reconnect: no session was added, and the killed one is gone (one
    # that an earlier test closed may also have left the list meanwhile).
    assert set(server_sessions()) <= set(sessions_before) - {held_on}

    # Nothing more is reported: not by later checks (the keepalive ends, having nothing left
    # to watch), and not by release(), which does not raise for a lost lock.
    keepalive.join(LINGER_BOUND)
    assert not keepalive.is_alive()
    lock.release()
    assert on_lost.locks == [lock]
    assert len(log_records.at(logging.WARNING)) == 1


def test_lock_can_be_acquired_again_after_a_loss(locker, lock_name, sql):
    on_lost = OnLost()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    assert lock.acquire(0) is True
    _kill_session(sql, lock)
    assert on_lost.called.wait(DETECTION_BOUND)
    lock.release()
    assert lock.acquire(0) is True
    assert not lock.lost
    assert lock.locked()
    lock.ensure_held()
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,)) == [(lock.connection_id,)]
    lock.release()


def test_loss_of_one_lock_leaves_the_others_held(locker, lock_name, unique_name, sql):
    lost_callback, kept_callback = OnLost(), OnLost()
    doomed = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=lost_callback)
    kept = locker.lock(unique_name(), refresh_interval_secs=INTERVAL, on_lost=kept_callback)
    assert doomed.acquire(0) is True
    assert kept.acquire(0) is True
    _kill_session(sql, doomed)
    assert lost_callback.called.wait(DETECTION_BOUND)
    # Two more checks of the kept lock find it still held.
    assert not kept_callback.called.wait(2 * INTERVAL)
    assert kept.locked()
    kept.ensure_held()
    assert sql("SELECT IS_USED_LOCK(%s)", (kept.name,)) == [(kept.connection_id,)]
    kept.release()
    doomed.release()


def test_ensure_held_on_a_never_held_lock_raises_not_held(locker, lock_name):
    lock = locker.lock(lock_name)
    with pytest.raises(LockNotHeldError) as info:
        lock.ensure_held()
    assert not isinstance(info.value, LockLostError)
    assert not lock.lost


def test_ensure_held_passes_while_held_and_raises_after_release(locker, lock_name):
    lock = locker.lock(lock_name)
    assert lock.acquire(0) is True
    lock.ensure_held()
    lock.release()
    with pytest.raises(LockNotHeldError):
        lock.ensure_held()


# --------------------------------------------------------------------------- with


def test_with_block_whose_lock_was_lost_raises_at_exit(locker, lock_name, sql):
    on_lost = OnLost()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    finished = []

    def work():
        with lock:
            _kill_session(sql, lock)
            finished.append(on_lost.called.wait(DETECTION_BOUND))

    with pytest.raises(LockLostError):
        work()
    assert finished == [True]
    assert not lock.locked()
    assert len(on_lost.locks) == 1


def test_with_block_raises_lost_when_release_finds_the_session_gone(
    locker, lock_name, sql, server_sessions
):
    # The session dies and the block ends before any keepalive check: release() finds out.
    on_lost = OnLost()
    lock = locker.lock(lock_name, refresh_interval_secs=60, on_lost=on_lost)

    def work():
        with lock:
            held_on = lock.connection_id
            _kill_session(sql, lock)
            _wait_until_gone(server_sessions, held_on)

    with pytest.raises(LockLostError):
        work()
    assert not lock.locked()
    assert lock.lost
    assert len(on_lost.locks) == 1


def test_with_block_exception_wins_over_the_loss(locker, lock_name, sql):
    on_lost = OnLost()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    detected = []

    def work():
        with lock:
            _kill_session(sql, lock)
            detected.append(on_lost.called.wait(DETECTION_BOUND))
            raise KeyError("work failed")

    with pytest.raises(KeyError, match="work failed"):
        work()
    assert detected == [True]
    assert not lock.locked()


# --------------------------------------------------------------------------- on_lost


def test_on_lost_that_raises_is_logged_not_raised(locker, lock_name, unique_name, sql, log_records):
    failing = OnLost(RuntimeError("callback failed"))
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=failing)
    survivor_lost = OnLost()
    survivor = locker.lock(unique_name(), refresh_interval_secs=INTERVAL, on_lost=survivor_lost)
    assert lock.acquire(0) is True
    assert survivor.acquire(0) is True

    _kill_session(sql, lock)
    assert failing.called.wait(DETECTION_BOUND)
    errors = log_records.wait_for(logging.ERROR, timeout=5.0)
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert lock_name in errors[0].getMessage()
    assert lock.lost

    # The keepalive survived the callback's exception: it still detects the next loss.
    killed_at = _kill_session(sql, survivor)
    assert survivor_lost.called.wait(DETECTION_BOUND)
    assert time.monotonic() - killed_at <= DETECTION_BOUND
    assert len(failing.locks) == 1
    lock.release()
    survivor.release()


# --------------------------------------------------------------------------- scheduling


def test_short_interval_lock_is_checked_while_the_keepalive_sleeps_for_a_long_one(
    locker, lock_name, unique_name, sql
):
    # The keepalive sleeps until the long lock's check is due (a minute away); a lock taken
    # after that with a short interval must wake it, or its loss would go unseen for a minute.
    long_lock = locker.lock(unique_name(), refresh_interval_secs=60)
    assert long_lock.acquire(0)
    on_lost = OnLost()
    short_lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    assert short_lock.acquire(0)

    killed_at = _kill_session(sql, short_lock)
    assert on_lost.called.wait(DETECTION_BOUND), "loss not reported"
    assert time.monotonic() - killed_at <= DETECTION_BOUND
    assert long_lock.locked()
    long_lock.release()


def test_locks_held_during_fast_cycles_of_other_threads_are_still_checked(
    locker, lock_name, unique_name, sql, spawn
):
    # Other threads' acquire/release cycles hand entries to the keepalive and take their own
    # back; none of that may drop the entry of a lock that stays held.
    stop = threading.Event()

    def cycle(name: str) -> int:
        cycles = 0
        while not stop.is_set():
            lock = locker.lock(name)
            assert lock.acquire(timeout=5)
            lock.release()
            cycles += 1
        return cycles

    workers = [spawn(cycle, unique_name()) for _ in range(4)]
    # A lock checked more often than the one under test keeps the keepalive waking before
    # that one is due, so its entry waits among the cyclers' entries until the next wake-up.
    anchor = locker.lock(unique_name(), refresh_interval_secs=INTERVAL / 2)
    assert anchor.acquire(timeout=5)
    on_lost = OnLost()
    held = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    assert held.acquire(timeout=5)
    try:
        # Two intervals of checks amid the cycling: still held, nothing reported.
        assert not on_lost.called.wait(2 * INTERVAL)
        assert held.locked()
        killed_at = _kill_session(sql, held)
        assert on_lost.called.wait(DETECTION_BOUND), "loss not reported"
        assert time.monotonic() - killed_at <= DETECTION_BOUND
    finally:
        stop.set()
    assert all(worker.result() > 0 for worker in workers)
    assert anchor.locked()
    anchor.release()


@pytest.mark.parametrize("driver", ["mysql.connector"], ids=["connector-compressed"])
def test_compressed_connector_connection_is_checked_and_loss_reported(
    make_locker, lock_name, unique_name, sql
):
    # A compressed connection takes the connector's own code for every statement (the
    # library's direct path reads only plain packets): the same promises must hold there.
    locker = make_locker(compress=True)
    other = locker.lock(unique_name())
    assert other.acquire(timeout=5)
    other.release()
    on_lost = OnLost()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=on_lost)
    assert lock.acquire(timeout=5)
    assert not on_lost.called.wait(2 * INTERVAL)
    assert sql("SELECT IS_USED_LOCK(%s)", (lock.server_name,)) == [(lock.connection_id,)]
    killed_at = _kill_session(sql, lock)
    assert on_lost.called.wait(DETECTION_BOUND), "loss not reported"
    assert time.monotonic() - killed_at <= DETECTION_BOUND
    lock.release()
