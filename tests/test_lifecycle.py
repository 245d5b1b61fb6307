"""Lifecycle under hostile events: the keepalive cannot die, interrupts never split the library's
view from the server's, and close() and cancel() are safe from any thread and never hang.

Faults inside a keepalive round are injected with a driver adapter of the test's driver that
misbehaves once, on the keepalive thread, at one step of the check of one chosen connection
(the statements still go to the real server). Interrupts are injected with a trace hook that
raises at the Nth line executed by the calling thread, library and driver code included. Each
test then compares what the library reports with what the server says (``IS_USED_LOCK``, asked
on a connection of its own).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from stress import Interrupt

from PyMySQLLock import AcquireCancelledError, Locker, LockError
from PyMySQLLock.drivers import DriverAdapter, resolve_adapter

#: Refresh interval of the locks whose checks are faulted or watched.
INTERVAL = 0.2
#: ping_timeout of the Lockers here: a check with no answer gives up after this.
PING_TIMEOUT = 2.0
#: Bound on reporting a loss: an interval, a ping timeout, and scheduling slack under load.
DETECTION = INTERVAL + PING_TIMEOUT + 3.0
#: Seconds a closed connection may take to leave the server (its lock freed).
GRACE = 5.0
#: The seconds an injected hang lasts.
HANG = 1.0
KEEPALIVE_THREAD = "PyMySQLLock-keepalive-"


def holder(sql: Callable[..., Any], lock: Any) -> int | None:
    """The server's holder of ``lock`` (asked on a connection of its own)."""
    value = sql("SELECT IS_USED_LOCK(%s)", (lock.server_name,))[0][0]
    return None if value is None else int(value)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def assert_consistent(sql: Callable[..., Any], lock: Any) -> None:
    """The library and the server agree: held by its session, or not held by anyone.

    A lock the library let go of by closing its connection is freed by the server as soon as
    it sees the connection end, so that side is waited for (briefly).
    """
    if lock.locked():
        assert holder(sql, lock) == lock.connection_id
    else:
        wait_until(lambda: holder(sql, lock) is None, GRACE, f"server frees {lock.name!r}")


class Recorder:
    """An ``on_lost`` callback that records its calls."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.calls = 0

    def __call__(self, lock: Any) -> None:
        self.calls += 1
        self.called.set()


def faulty_adapter(driver: str) -> Any:
    """An adapter of ``driver`` that can be told to misbehave once during a keepalive check.

    ``adapter.arm(step, action, connection_id)``: at ``step`` (``"send"``, ``"fileno"`` or
    ``"read"``) of the next check of that connection, ``action`` happens: an exception class is
    raised, ``"garbage"`` answers nonsense, ``"hang"`` stalls for :data:`HANG` seconds first.
    """
    base: type[DriverAdapter] = type(resolve_adapter(driver))

    class Faulty(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.plan: tuple[str, Any, int] | None = None
            self.fired = threading.Event()

        def arm(self, step: str, action: Any, connection_id: int) -> None:
            self.fired.clear()
            self.plan = (step, action, connection_id)

        def _fault(self, step: str, raw: Any) -> Any:
            plan = self.plan
            if plan is None or plan[0] != step:
                return None
            if not threading.current_thread().name.startswith(KEEPALIVE_THREAD):
                return None
            if self.connection_id(raw) != plan[2]:
                return None
            self.plan = None
            self.fired.set()
            action = plan[1]
            if isinstance(action, tuple):  # ("answered", error): read the answer, then raise
                return action
            if isinstance(action, type) and issubclass(action, BaseException):
                raise action(f"injected at {step}")
            if action == "hang":
                time.sleep(HANG)
                return None
            return action

        def send_query(self, raw: Any, cursor: Any, sql: str, params: Any) -> bool:
            if self._fault("send", raw) == "garbage":
                return True  # claims to have sent, sent nothing: no answer ever comes
            return bool(super().send_query(raw, cursor, sql, params))

        def fileno(self, raw: Any) -> int | None:
            if self._fault("fileno", raw) == "garbage":
                return -1
            return super().fileno(raw)  # type: ignore[no-any-return]

        def read_first_row(self, raw: Any) -> Any:
            fault = self._fault("read", raw)
            if isinstance(fault, tuple):
                super().read_first_row(raw)  # the server's answer is consumed, as with an error
                raise fault[1]("injected after the answer")
            if fault == "garbage":
                super().read_first_row(raw)  # the real answer, replaced by nonsense
                return ("garbage", object())
            return super().read_first_row(raw)

    return Faulty()


@pytest.fixture
def quiet_errors(caplog):
    """The keepalive logs injected failures as errors (a bug in a driver is one): expected."""
    caplog.set_level(logging.CRITICAL + 1, "PyMySQLLock")


# --------------------------------------------------------------------------- 1. keepalive


FAULTS = [
    ("send", RuntimeError, "lost"),
    ("send", SystemExit, "lost"),
    ("send", "garbage", "lost"),
    ("fileno", KeyboardInterrupt, "held"),
    ("fileno", "garbage", "held"),
    ("read", KeyboardInterrupt, "lost"),
    ("read", "garbage", "lost"),
    ("read", "hang", "held"),
]


@pytest.mark.parametrize(
    ("step", "action", "outcome"),
    FAULTS,
    ids=[f"{step}-{getattr(action, '__name__', action)}" for step, action, _ in FAULTS],
)
def test_a_fault_in_a_check_ends_no_other_check(
    make_locker, driver, unique_name, spawn, sql, quiet_errors, step, action, outcome
):
    adapter = faulty_adapter(driver)
    locker = make_locker(driver=adapter, ping_timeout=PING_TIMEOUT)
    reports = [Recorder(), Recorder()]
    victim, bystander = (
        locker.lock(unique_name(), refresh_interval_secs=INTERVAL, on_lost=report)
        for report in reports
    )
    # Each on a session of its own (a thread's locks share its session).
    spawn(victim.acquire, 0).result()
    spawn(bystander.acquire, 0).result()
    adapter.arm(step, action, victim.connection_id)
    assert adapter.fired.wait(10), "the fault was never reached"

    if outcome == "lost":
        assert reports[0].called.wait(DETECTION), "a check that proved nothing was not a loss"
        assert victim.lost
    else:
        # The check still proved the lock held (a bad descriptor only changes how the
        # answer is read; a hang only delays it): a loss here would be a false one.
        time.sleep(3 * INTERVAL + (HANG if action == "hang" else 0))
        assert victim.locked(), "a lock the server still held was reported lost"
    assert_consistent(sql, victim)

    # The thread lives on: the other lock is still checked, and its loss seen in time.
    assert locker._keepalive.dead is None
    sql("KILL CONNECTION %s", (bystander.connection_id,))
    assert reports[1].called.wait(DETECTION), "the keepalive stopped checking other locks"
    assert_consistent(sql, bystander)
    # No connection is left busy: release() returns at once.
    started = time.monotonic()
    for lock in (victim, bystander):
        lock.release()
    assert time.monotonic() - started < PING_TIMEOUT
    assert_consistent(sql, victim)


def test_a_huge_refresh_interval_does_not_end_the_keepalive(make_locker, unique_name, spawn, sql):
    locker = make_locker()
    rare = locker.lock(unique_name(), refresh_interval_secs=86400)  # the longest allowed
    spawn(rare.acquire, 0).result()
    report = Recorder()
    often = locker.lock(unique_name(), refresh_interval_secs=INTERVAL, on_lost=report)
    spawn(often.acquire, 0).result()
    sql("KILL CONNECTION %s", (often.connection_id,))
    assert report.called.wait(DETECTION), "the keepalive no longer checks"
    assert locker._keepalive.dead is None
    assert rare.locked()
    assert_consistent(sql, rare)
    rare.release()


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt, RuntimeError])
def test_an_on_lost_callback_can_neither_end_nor_delay_the_checks(
    make_locker, unique_name, spawn, sql, quiet_errors, raised
):
    locker = make_locker()
    unblock = threading.Event()
    entered = threading.Event()

    def hostile(lock: Any) -> None:
        entered.set()
        if raised is RuntimeError:
            unblock.wait(30)  # a callback that blocks
        raise raised("from on_lost")

    first = locker.lock(unique_name(), refresh_interval_secs=INTERVAL, on_lost=hostile)
    spawn(first.acquire, 0).result()
    sql("KILL CONNECTION %s", (first.connection_id,))
    assert entered.wait(DETECTION)
    # Locks held before and acquired after are still checked, and their loss seen.
    second = locker.lock(unique_name(), refresh_interval_secs=INTERVAL)
    spawn(second.acquire, 0).result()
    sql("KILL CONNECTION %s", (second.connection_id,))
    wait_until(lambda: second.lost, DETECTION, "the loss after the callback was seen")
    assert locker._keepalive.dead is None
    assert not second.locked()
    unblock.set()
    assert_consistent(sql, second)


def test_a_dying_keepalive_reports_every_lock_lost_and_the_locker_refuses(
    make_locker, unique_name, spawn, sql, quiet_errors
):
    locker = make_locker()
    reports = [Recorder() for _ in range(3)]
    locks = [
        locker.lock(unique_name(), refresh_interval_secs=60, on_lost=report) for report in reports
    ]
    for lock in locks:
        spawn(lock.acquire, 0).result()
    keepalive = locker._keepalive

    def broken_scheduler() -> None:
        raise RuntimeError("a bug in the scheduler")

    # A bug where no per-lock guard can catch it; woken by a lock due at once.
    keepalive._next_due = broken_scheduler
    extra = locker.lock(unique_name(), refresh_interval_secs=0.01)
    assert extra.acquire(0) is True
    for report in reports:
        assert report.called.wait(10), "a lock of the dead keepalive was not reported lost"
    assert keepalive.dead is not None
    for lock in [*locks, extra]:
        assert lock.lost
        assert not lock.locked()
        assert_consistent(sql, lock)
    with pytest.raises(LockError, match="keepalive"):
        locker.lock(unique_name()).acquire(0)


def test_kill_query_on_a_check_is_checked_again_not_a_loss(make_locker, driver, lock_name, sql):
    adapter = faulty_adapter(driver)
    locker = make_locker(driver=adapter)
    report = Recorder()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=report)
    assert lock.acquire(0)
    # What the driver raises when a KILL QUERY lands on the check (error 1317).
    adapter.arm("read", ("answered", _interrupted_error(driver)), lock.connection_id)
    assert adapter.fired.wait(10)
    time.sleep(3 * INTERVAL)
    assert lock.locked(), "a KILL QUERY on a check freed a lock the server still held"
    assert report.calls == 0
    assert_consistent(sql, lock)
    lock.release()


def _interrupted_error(driver: str) -> type[BaseException]:
    """An exception class of ``driver`` whose instances carry error 1317."""
    adapter = resolve_adapter(driver)
    module = adapter.module
    if driver == "mysql.connector":
        errors = sys.modules["mysql.connector.errors"]

        class Interrupted(errors.DatabaseError):  # type: ignore[misc, name-defined]
            def __init__(self, message: str) -> None:
                super().__init__(msg="Query execution was interrupted", errno=1317)

    else:

        class Interrupted(module.OperationalError):  # type: ignore[no-redef]
            def __init__(self, message: str) -> None:
                super().__init__(1317, "Query execution was interrupted")

    return Interrupted


# --------------------------------------------------------------------------- 2. interrupts


def _lines(call: Callable[[], Any]) -> int:
    counter = Interrupt(at=-1)
    counter.run(call)
    return counter.lines


# Interrupted inside the driver's own code, a driver may leave an object half made: PyMySQL's
# MySQLResult then fails in its __del__, and a connection interrupted inside its own close()
# leaves its socket to the garbage collector. Neither involves a lock; what the server sees
# (locks, and sessions: the suite's leak check) is checked.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MySQLResult.__del__"
    ":pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize("operation", ["acquire", "release", "close"])
def test_an_interrupt_anywhere_leaves_the_library_and_the_server_in_agreement(
    make_locker, lock_name, sql, operation
):
    current: dict[str, Any] = {}

    def prepare() -> None:
        if operation == "close" or "locker" not in current:
            current["locker"] = make_locker()
        current["lock"] = current["locker"].lock(lock_name)
        # The acquire below runs on a pooled connection: an interrupt inside the driver's own
        # connect() leaves a half-made socket to the garbage collector (the driver's doing,
        # and no lock is involved), which pytest would report as an unclosed resource.
        current["lock"].acquire(0)
        if operation == "acquire":
            current["lock"].release()

    def act() -> None:
        if operation == "acquire":
            current["lock"].acquire(0)
        elif operation == "release":
            current["lock"].release()
        else:
            current["locker"].close()

    def settle() -> None:
        lock = current["lock"]
        assert_consistent(sql, lock)
        if operation == "close":
            current["locker"].close()  # an interrupted close() finishes when called again
        elif lock.locked():
            lock.release()  # a release interrupted before it changed anything: retry
        assert not lock.locked()
        assert_consistent(sql, lock)
        gc.collect()  # a half-made driver object is finalised here, under the filters above

    prepare()
    total = _lines(act)
    settle()
    step = max(1, total // 50)
    fired = 0
    for at in [*range(1, total + 1, step), total]:
        prepare()
        exception = SystemExit if at % 2 else KeyboardInterrupt
        fired += Interrupt(at, exception).run(act)
        settle()
    assert fired > total // step // 2, "the interrupts did not land"


# --------------------------------------------------------------------------- 4-5. close, cancel


@pytest.mark.parametrize("fencing", [False, True], ids=["plain", "fenced"])
def test_a_cancel_racing_the_grant_leaves_the_lock_free_when_it_returns(
    make_locker, driver, unique_name, spawn, sql, lock_waiters, fencing
):
    # The server grants the waiting GET_LOCK, and cancel() asks before the acquire has read
    # the grant. When cancel() returns, the lock must be free on the server, not once the
    # server gets round to the close of the waiting connection (an election's stop() did
    # return with its lock still held, under load). The adapter pins the race: the waiter
    # reads the grant only after cancel() has asked (its KILL QUERY is sent after it set its
    # flag), and that connection's close waits until the server has been asked, as a busy
    # server may process a close late.
    asked, checked = threading.Event(), threading.Event()
    base: type[DriverAdapter] = type(resolve_adapter(driver))

    class Racing(base):  # type: ignore[misc, valid-type]
        waiter: threading.Thread | None = None

        def query(self, cursor: Any, sql_text: str, params: Any) -> Any:
            row = super().query(cursor, sql_text, params)
            if threading.current_thread() is self.waiter and "GET_LOCK" in sql_text and row == (1,):
                assert asked.wait(10), "cancel() never sent its KILL QUERY"
            return row

        def query_all(self, cursor: Any, sql_text: str, params: Any = ()) -> Any:
            rows = super().query_all(cursor, sql_text, params)
            if sql_text.startswith("KILL QUERY"):
                asked.set()
            return rows

        def close(self, raw: Any) -> None:
            if threading.current_thread() is self.waiter:
                checked.wait(10)
            super().close(raw)

    adapter = Racing()
    name = unique_name()
    holder_lock = make_locker().lock(name)
    assert holder_lock.acquire(0)
    waiter = make_locker(driver=adapter).lock(name, fencing=fencing)

    def wait() -> None:
        adapter.waiter = threading.current_thread()
        waiter.acquire()

    worker = spawn(wait)
    (waiting_id,) = lock_waiters(waiter.server_name)
    holder_lock.release()  # the server grants the waiter; its acquire is held before reading it
    cancel = spawn(waiter.cancel)
    try:
        assert cancel.result(10) is True
        assert holder(sql, waiter) is None, "cancel() returned with the lock held on the server"
    finally:
        checked.set()
    assert isinstance(worker.exception(10), AcquireCancelledError)
    assert not waiter.locked()
    assert_consistent(sql, waiter)
    # The waiting session may carry cancel()'s KILL QUERY: closed, never pooled for the next.
    assert waiting_id not in {each.connection_id for each in waiter.locker._pool._idle}


def test_close_from_another_thread_ends_a_waiting_acquire(
    make_locker, lock_name, spawn, lock_waiters, sql
):
    rival = make_locker().lock(lock_name)
    assert rival.acquire(0)
    locker = make_locker()
    waiter = locker.lock(lock_name)
    worker = spawn(waiter.acquire)
    lock_waiters(lock_name)
    started = time.monotonic()
    locker.close()
    assert time.monotonic() - started < PING_TIMEOUT
    error = worker.exception(10)
    assert isinstance(error, LockError), repr(error)
    assert not waiter.locked()
    rival.release()
    wait_until(lambda: holder(sql, waiter) is None, GRACE, "no session of the closed Locker")
    with pytest.raises(LockError, match="closed"):
        waiter.acquire(0)


def test_close_races_acquires_and_never_returns_true_on_a_closed_locker(
    make_locker, unique_name, spawn, sql
):
    for _ in range(5):
        locker = make_locker()
        locks = [locker.lock(unique_name()) for _ in range(4)]
        go = threading.Event()

        def take(lock: Any, go: threading.Event = go) -> Any:
            go.wait(10)
            try:
                return lock.acquire(0)
            except LockError as exc:
                return exc

        workers = [spawn(take, lock) for lock in locks]
        go.set()
        locker.close()
        for lock, worker in zip(locks, workers):
            worker.result(10)
            # Taken before close() (and released by it), or refused: never held after it.
            assert not lock.locked()
            assert_consistent(sql, lock)


def test_cancel_and_close_return_at_once_on_a_hung_server(fresh_server, driver, unique_name, spawn):
    options = {**fresh_server.connect_kwargs(), "driver": driver, "ping_timeout": 5.0}
    name = unique_name()
    rival = Locker(**options)
    locker = Locker(**options)
    try:
        assert rival.lock(name).acquire(0)
        held = locker.lock(unique_name())
        spawn(held.acquire, 0).result()
        waiter = locker.lock(name)
        worker = spawn(waiter.acquire)
        wait_until(
            lambda: (
                fresh_server.sql(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'"
                )[0][0]
                == 1
            ),
            10,
            "the acquire waits on the server",
        )
        fresh_server.pause()
        started = time.monotonic()
        assert waiter.cancel() is True
        assert time.monotonic() - started < 2.5, "cancel() waited for the hung server"
        assert isinstance(worker.exception(5), AcquireCancelledError)
        started = time.monotonic()
        locker.close()
        assert time.monotonic() - started < 5.0 + 2.0, "close() took longer than ping_timeout"
        assert not held.locked()
    finally:
        fresh_server.resume()
        locker.close()
        rival.close()
