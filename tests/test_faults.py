"""Fault injection: what held and waiting locks do when a session, the server or the network fails.

Every fault is injected into a real server of the test's own (``fresh_server``,
``server_factory``: own datadir, port and socket), into a real TCP path (``tcpproxy.TcpProxy``)
or into real processes (``lockworker.py``). Every test checks the same things:

* never two holders: once a loss is reported the lost lock says so, and the server names exactly
  one holder, the one that says it holds (the server is asked directly, not through the library);
* the loss is reported, not hidden: ``on_lost`` once, ``lost``, ``locked()``, ``ensure_held()``,
  within the documented bound: the refresh interval + 1 s when the server answers that the lock
  is gone, the interval + ``ping_timeout`` when nothing answers;
* nothing is left behind: after the test's Lockers are closed the throwaway server has no client
  session left and the proxy no connection (checked by the ``faults`` fixture; the suite's
  ``_no_leaks`` checks threads, and the session server for the process tests);
* nothing escapes a background thread: an exception in any thread already fails the test
  (pytest's thread-exception warning under ``filterwarnings = error``), and the keepalive's
  last-resort handler, which logs a bug instead of raising it, must log no ERROR.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from pathlib import Path

import pytest
from tcpproxy import TcpProxy
from workerprocess import WorkerProcess

from PyMySQLLock import (
    AcquireInterruptedError,
    LockConnectionError,
    Locker,
    LockLostError,
)
from PyMySQLLock.drivers import DRIVER_NAMES

#: Refresh interval where the server itself tells the check that the lock is gone.
INTERVAL = 0.5
#: Refresh interval and ping timeout where nothing answers (hung server, black-holed path).
HANG_INTERVAL = 1.0
PING_TIMEOUT = 2
#: Scheduling slack on top of a bound where the bound is a timeout that runs out to the
#: millisecond (interval + ping_timeout, timeout + read timeout).
SLACK = 0.5
#: The timeout of the acquires sent to a server that does not answer.
ACQUIRE_TIMEOUT = 1.0
#: Seconds a client session may take to leave the throwaway server after its Locker closed.
DISCONNECT_GRACE = 5.0
#: The server's idle timeout in the wait_timeout tests.
WAIT_TIMEOUT = 2
DRIVERS = DRIVER_NAMES  # every registered driver


# --------------------------------------------------------------------------- helpers


class LostReport:
    """An ``on_lost`` callback recording when, how often and in which thread it was called."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0
        self.at: float | None = None
        self.thread: threading.Thread | None = None

    def __call__(self, lock: object) -> None:
        self.count += 1
        self.at = time.monotonic()
        self.thread = threading.current_thread()
        self.event.set()


def hold(locker: Locker, name: str, interval: float) -> tuple[object, LostReport]:
    """Acquire ``name`` at once with a keepalive every ``interval`` s; :returns: (lock, report)."""
    report = LostReport()
    lock = locker.lock(name, refresh_interval_secs=interval, on_lost=report)
    assert lock.acquire(0) is True
    return lock, report


def at_once(spawn, calls: list) -> list:
    """Run each call in a thread of its own, all the threads alive until every call returned.

    The locks a thread acquires share one session (nested locks), and a thread that has ended
    may pass its identity on to the next; so this is how one Locker gets a session per lock:
    for several independent holders, or, releasing them after, for idle connections in its
    pool. :returns: what the calls returned, in order.
    """
    barrier = threading.Barrier(len(calls))

    def run(call):
        try:
            result = call()
        except BaseException:
            barrier.abort()
            raise
        barrier.wait(30)
        return result

    workers = [spawn(run, call) for call in calls]
    return [worker.result() for worker in workers]


def hold_apart(spawn, locker: Locker, names: list[str], interval: float) -> list[tuple]:
    """:func:`hold` each name on a session of its own; :returns: [(lock, report)]."""
    held = at_once(spawn, [functools.partial(hold, locker, name, interval) for name in names])
    assert len({lock.connection_id for lock, _ in held}) == len(names)
    return held


def acquire_apart(spawn, locks: list) -> None:
    """Acquire each lock at once, each on a session of its own."""
    assert at_once(spawn, [functools.partial(lock.acquire, 0) for lock in locks]) == [True] * len(
        locks
    )
    assert len({lock.connection_id for lock in locks}) == len(locks)


def assert_reported_lost(lock, report: LostReport, *, since: float, bound: float) -> None:
    """The loss of ``lock`` was reported within ``bound`` s of ``since``, in every way, once."""
    reported = report.event.wait(max(0.0, since + bound - time.monotonic()))
    assert reported, f"lock {lock.name!r} not reported lost within {bound:.1f} s"
    assert report.at is not None
    assert report.at - since <= bound, (
        f"lock {lock.name!r} reported lost after {report.at - since:.2f} s, bound {bound:.1f} s"
    )
    assert report.count == 1
    assert report.thread is not threading.current_thread()  # the keepalive found it
    assert lock.lost is True
    assert lock.locked() is False
    assert lock.connection_id is None
    with pytest.raises(LockLostError):
        lock.ensure_held()


def assert_holds(faults: Faults, lock) -> None:
    """``lock`` says it holds, and the server names its session, and only it, as the holder."""
    assert lock.locked() is True
    assert not lock.lost
    assert faults.holder(lock.name) == lock.connection_id


class Faults:
    """Lockers and proxies on one throwaway server, checked for leftovers after the test.

    :param server: the throwaway server.
    :param driver: the default driver of :meth:`locker`.
    :param grace: seconds a closed connection may take to leave the server's process list.
    """

    def __init__(self, server, driver: str | None, grace: float = DISCONNECT_GRACE) -> None:
        self.server = server
        self.driver = driver
        self.grace = grace
        self._lockers: list[Locker] = []
        self._proxies: list[TcpProxy] = []

    def locker(self, *, via: TcpProxy | None = None, **kwargs) -> Locker:
        """A Locker on the server (through ``via`` when given), closed after the test."""
        options = self.server.connect_kwargs()
        if via is not None:
            options["host"], options["port"] = via.host, via.port
        options.update(kwargs)
        options.setdefault("driver", self.driver)
        locker = Locker(**options)
        self._lockers.append(locker)
        return locker

    def proxy(self) -> TcpProxy:
        """A TCP proxy to the server, closed after the test."""
        proxy = TcpProxy(self.server.host, self.server.port)
        self._proxies.append(proxy)
        return proxy

    def holder(self, name: str) -> int | None:
        """The server's answer to ``IS_USED_LOCK(name)``, asked on a connection of its own."""
        value = self.server.sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
        return None if value is None else int(value)

    def sessions(self) -> list[tuple]:
        """The server's client sessions, but the asking one."""
        return self.server.sql(
            "SELECT ID, USER, HOST, COMMAND, TIME, STATE, LEFT(INFO, 100) "
            "FROM information_schema.PROCESSLIST "
            "WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon' AND USER <> 'system user'"
        )

    def waiting(self, name: str, count: int = 1, timeout: float = 10.0) -> list[int]:
        """Wait until ``count`` sessions wait in ``GET_LOCK(name)``; :returns: their ids."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.server.sql(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
                (name,),
            )
            if len(rows) >= count:
                return [int(row[0]) for row in rows]
            if time.monotonic() > deadline:
                pytest.fail(f"{len(rows)} of {count} sessions wait for {name!r} after {timeout} s")
            time.sleep(0.01)

    def finish(self, caplog: pytest.LogCaptureFixture) -> None:
        """Heal every fault, close everything, and fail on anything left behind."""
        problems = []
        try:
            if self.server.running:
                self.server.resume()
            for proxy in self._proxies:
                proxy.restore()
            for locker in self._lockers:
                locker.close()
            if self.server.running:
                deadline = time.monotonic() + self.grace
                while (left := self.sessions()) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if left:
                    shown = "\n  ".join(repr(row) for row in left)
                    problems.append(f"sessions left on the server after close():\n  {shown}")
            for proxy in self._proxies:
                deadline = time.monotonic() + self.grace
                while proxy.open_connections and time.monotonic() < deadline:
                    time.sleep(0.02)
                if proxy.open_connections:
                    problems.append(f"{proxy.open_connections} connection(s) left on {proxy!r}")
        finally:
            for proxy in self._proxies:
                proxy.close()
        records = [
            *caplog.get_records("setup"),
            *caplog.get_records("call"),
            *caplog.records,
        ]
        errors = [
            f"{r.levelname} {r.getMessage()}"
            for r in records
            if r.name.startswith("PyMySQLLock") and r.levelno >= logging.ERROR
        ]
        if errors:
            problems.append("the library logged errors:\n  " + "\n  ".join(errors))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def faults(fresh_server, driver, caplog):
    """A :class:`Faults` on a throwaway server of the test's own, with the test's driver."""
    harness = Faults(fresh_server, driver)
    yield harness
    harness.finish(caplog)


@pytest.fixture
def idle_kill_server(server_factory):
    """A throwaway server that closes sessions idle for :data:`WAIT_TIMEOUT` seconds."""
    return server_factory(
        extra_args=[f"--wait-timeout={WAIT_TIMEOUT}", f"--interactive-timeout={WAIT_TIMEOUT}"]
    )


@pytest.fixture
def idle_kill_faults(idle_kill_server, driver, caplog):
    """A :class:`Faults` on :func:`idle_kill_server`, with the test's driver."""
    # A leaked connection must be seen before wait_timeout closes it.
    harness = Faults(idle_kill_server, driver, grace=WAIT_TIMEOUT / 2)
    yield harness
    harness.finish(caplog)


# --------------------------------------------------------------------------- 1. sessions killed


@pytest.mark.lifecycle
def test_killed_holder_session_is_reported_lost(faults, unique_name):
    locker = faults.locker()
    lock, report = hold(locker, unique_name(), INTERVAL)
    assert_holds(faults, lock)

    killed = time.monotonic()
    faults.server.sql("KILL CONNECTION %s", (lock.connection_id,))
    # The server freed the lock with the session: another Locker takes it.
    rival = faults.locker().lock(lock.name)
    assert rival.acquire(5) is True
    assert_reported_lost(lock, report, since=killed, bound=INTERVAL + 1)
    assert_holds(faults, rival)

    lock.release()  # a lost lock's release only cleans up
    assert report.count == 1
    rival.release()
    # The same Lock and Locker take it again, on a working connection.
    assert lock.acquire(0) is True
    assert_holds(faults, lock)
    lock.release()
    assert faults.holder(lock.name) is None


@pytest.mark.lifecycle
def test_killed_wait_raises_interrupted_and_keeps_the_connection(faults, unique_name, spawn):
    name = unique_name()
    holder, _ = hold(faults.locker(), name, INTERVAL)
    locker = faults.locker()
    waiter = locker.lock(name)
    worker = spawn(waiter.acquire)  # waits forever
    (waiting_id,) = faults.waiting(name)

    faults.server.sql("KILL QUERY %s", (waiting_id,))
    with pytest.raises(AcquireInterruptedError):
        worker.result(10)
    assert not waiter.locked()
    assert not waiter.lost
    assert_holds(faults, holder)  # the interrupted wait took nothing
    # KILL QUERY ends the statement, not the session: the next acquire uses that same session.
    holder.release()
    assert waiter.acquire(5) is True
    assert waiter.connection_id == waiting_id
    assert_holds(faults, waiter)
    waiter.release()


# --------------------------------------------------------------------------- 2. server restart


@pytest.mark.lifecycle
@pytest.mark.parametrize("how", ["stop", "kill"], ids=["restart", "crash"])
def test_server_restart_reports_every_held_lock_lost(faults, unique_name, spawn, how):
    server = faults.server
    locker = faults.locker()
    both = hold_apart(spawn, locker, [unique_name() for _ in range(6)], INTERVAL)
    held, spares = both[:3], both[3:]
    for spare, _ in spares:
        spare.release()  # three idle connections in the pool, which die with the server too
    with_report = LostReport()
    with_lock = locker.lock(unique_name(), refresh_interval_secs=INTERVAL, on_lost=with_report)

    def work_while_the_server_goes_down() -> None:
        with with_lock:
            getattr(server, how)()  # server.stop() or server.kill()
            down = time.monotonic()
            for lock, report in [*held, (with_lock, with_report)]:
                assert_reported_lost(lock, report, since=down, bound=INTERVAL + 1)

    # The with block whose lock was lost says so as it ends.
    with pytest.raises(LockLostError):
        work_while_the_server_goes_down()
    server.start()

    # Without any user action the same Lock objects and the same Locker work again, for more
    # sessions at once than it had idle (dead) connections.
    again = [lock for lock, _ in held] + [with_lock]
    again += [locker.lock(unique_name()) for _ in range(2)]
    acquire_apart(spawn, again)
    for lock in again:
        assert_holds(faults, lock)
    for lock in again:
        lock.release()
    for _, report in [*held, (with_lock, with_report)]:
        assert report.count == 1


@pytest.mark.lifecycle
def test_new_locker_acquires_after_restart(faults, unique_name):
    # The connection the constructor opened waits in the pool, never used, and dies with the
    # server: the first acquire after the restart must not be handed it.
    locker = faults.locker()
    faults.server.restart()
    lock = locker.lock(unique_name())
    assert lock.acquire(0) is True
    assert_holds(faults, lock)
    lock.release()
    assert lock.acquire(0) is True
    lock.release()


@pytest.mark.lifecycle
def test_lock_queries_after_restart_skip_dead_pooled_connections(faults, unique_name, spawn):
    # Like an acquire, a query on the Locker must not hand the caller a pooled connection that
    # died with the server, however many of them the pool holds.
    locker = faults.locker()
    name = unique_name()
    spares = [lock for lock, _ in hold_apart(spawn, locker, [unique_name() for _ in range(3)], 30)]
    for spare in spares:
        spare.release()
    faults.server.restart()
    rival, _ = hold(faults.locker(), name, INTERVAL)
    for _ in spares:
        assert locker.holder(name) == rival.connection_id
    assert locker.is_locked(name) is True
    rival.release()


# --------------------------------------------------------------------------- 3. hung server


@pytest.mark.lifecycle
def test_hung_server_reports_a_held_lock_lost(faults, unique_name):
    locker = faults.locker(ping_timeout=PING_TIMEOUT)
    lock, report = hold(locker, unique_name(), HANG_INTERVAL)

    faults.server.pause()
    paused = time.monotonic()
    assert_reported_lost(lock, report, since=paused, bound=HANG_INTERVAL + PING_TIMEOUT + SLACK)
    faults.server.resume()
    # The library closed the silent connection; running again, the server ends that session
    # and frees the lock. Another Locker takes it; the lost lock stays lost.
    rival = faults.locker().lock(lock.name)
    assert rival.acquire(5) is True
    assert_holds(faults, rival)
    assert lock.lost
    assert not lock.locked()
    rival.release()
    assert lock.acquire(5) is True
    assert_holds(faults, lock)
    lock.release()


@pytest.mark.lifecycle
def test_hung_server_reports_every_held_lock_lost_in_time(faults, unique_name, spawn):
    # The bound holds for each lock, not only the first: the checks of locks on different
    # sessions, each waiting ping_timeout for the hung server, must not delay one another.
    locker = faults.locker(ping_timeout=PING_TIMEOUT)
    held = hold_apart(spawn, locker, [unique_name() for _ in range(3)], HANG_INTERVAL)

    faults.server.pause()
    paused = time.monotonic()
    bound = HANG_INTERVAL + PING_TIMEOUT + SLACK
    for _, report in held:
        report.event.wait(max(0.0, paused + bound - time.monotonic()))
    late = [
        f"{lock.name}: {'not yet' if report.at is None else f'{report.at - paused:.2f} s'}"
        for lock, report in held
        if report.at is None or report.at - paused > bound
    ]
    faults.server.resume()
    assert not late, f"locks reported lost later than {bound:.1f} s after the hang: {late}"
    for lock, report in held:
        assert_reported_lost(lock, report, since=paused, bound=bound)


@pytest.mark.lifecycle
def test_acquire_against_a_hung_server_fails_in_bounded_time(faults, unique_name):
    locker = faults.locker(ping_timeout=PING_TIMEOUT)  # its first connection waits in the pool
    lock = locker.lock(unique_name())

    faults.server.pause()
    # First on the pooled connection (its read times out), then on a new one (the handshake
    # never comes): neither may hang.
    for attempt in ("pooled connection", "new connection"):
        started = time.monotonic()
        with pytest.raises(LockConnectionError):
            lock.acquire(ACQUIRE_TIMEOUT)
        elapsed = time.monotonic() - started
        assert elapsed <= ACQUIRE_TIMEOUT + PING_TIMEOUT + SLACK, f"{attempt}: {elapsed:.2f} s"
        assert not lock.locked()
        assert not lock.lost
    faults.server.resume()

    assert lock.acquire(5) is True
    assert_holds(faults, lock)
    lock.release()


@pytest.mark.lifecycle
def test_waiting_acquire_on_a_hung_server_fails_in_bounded_time(faults, unique_name, spawn):
    name = unique_name()
    holder, _ = hold(faults.locker(), name, 30)
    waiter = faults.locker(ping_timeout=PING_TIMEOUT).lock(name)
    worker = spawn(waiter.acquire)  # waits forever, in server waits shorter than ping_timeout
    faults.waiting(name)

    faults.server.pause()
    paused = time.monotonic()
    error = worker.exception(PING_TIMEOUT + 10)
    elapsed = time.monotonic() - paused
    assert isinstance(error, LockConnectionError), repr(error)
    assert elapsed <= PING_TIMEOUT + SLACK
    assert not waiter.locked()
    faults.server.resume()

    assert_holds(faults, holder)
    holder.release()
    assert waiter.acquire(5) is True
    assert_holds(faults, waiter)
    waiter.release()


# --------------------------------------------------------------------------- 4. network path


@pytest.mark.lifecycle
def test_severed_network_path_reports_locks_lost_and_recovers(faults, unique_name, spawn):
    proxy = faults.proxy()
    locker = faults.locker(via=proxy)
    both = hold_apart(spawn, locker, [unique_name() for _ in range(4)], INTERVAL)
    held, spares = both[:2], both[2:]
    for spare, _ in spares:
        spare.release()  # two idle connections in the pool, cut with the rest

    proxy.sever()
    cut = time.monotonic()
    for lock, report in held:
        assert_reported_lost(lock, report, since=cut, bound=INTERVAL + 1)
    # The server saw the connections end and freed the locks: a direct Locker takes them.
    direct = faults.locker()
    for lock, _ in held:
        rival = direct.lock(lock.name)
        assert rival.acquire(5) is True
        assert_holds(faults, rival)
        assert not lock.locked()
        rival.release()

    # Through the proxy again, without user action, for more sessions than were pooled.
    again = [lock for lock, _ in held] + [locker.lock(unique_name()) for _ in range(2)]
    acquire_apart(spawn, again)
    for lock in again:
        assert_holds(faults, lock)
    for lock in again:
        lock.release()


@pytest.mark.lifecycle
def test_blackholed_network_path_reports_lock_lost_and_bounds_acquire(faults, unique_name, spawn):
    proxy = faults.proxy()
    locker = faults.locker(via=proxy, ping_timeout=PING_TIMEOUT)
    names = [unique_name(), unique_name()]
    (lock, report), (spare, _) = hold_apart(spawn, locker, names, HANG_INTERVAL)
    spare.release()  # an idle connection in the pool

    proxy.blackhole()
    cut = time.monotonic()
    assert_reported_lost(lock, report, since=cut, bound=HANG_INTERVAL + PING_TIMEOUT + SLACK)
    # The server cannot see the cut: the old session still holds the lock there, so nobody else
    # gets it (never two holders), although the library counts it lost.
    rival = faults.locker().lock(lock.name)
    assert rival.acquire(0) is False

    probe = locker.lock(unique_name())
    for attempt in ("pooled connection", "new connection"):
        started = time.monotonic()
        with pytest.raises(LockConnectionError):
            probe.acquire(ACQUIRE_TIMEOUT)
        elapsed = time.monotonic() - started
        assert elapsed <= ACQUIRE_TIMEOUT + PING_TIMEOUT + SLACK, f"{attempt}: {elapsed:.2f} s"
        assert not probe.locked()

    proxy.restore()
    # Once the path heals the server sees the library's close and frees the lock.
    assert rival.acquire(10) is True
    assert_holds(faults, rival)
    assert lock.lost
    assert not lock.locked()
    rival.release()
    assert lock.acquire(5) is True
    assert_holds(faults, lock)
    lock.release()


# --------------------------------------------------------------------------- 5. idle kill


@pytest.mark.slow
@pytest.mark.lifecycle
def test_keepalive_keeps_a_lock_past_wait_timeout(idle_kill_server, unique_name, caplog):
    # One 10 s wait serves the three drivers at once (the driver fixture would make it 30 s).
    faults = Faults(idle_kill_server, None, grace=WAIT_TIMEOUT / 2)
    try:
        lost = threading.Event()
        locks = []
        for driver in DRIVERS:
            lock = faults.locker(driver=driver).lock(
                unique_name(), refresh_interval_secs=1, on_lost=lambda _: lost.set()
            )
            assert lock.acquire(0) is True
            locks.append(lock)
        # The control: a lock whose keepalive is too rare is closed by the server, proving
        # that the server does kill idle sessions during the wait.
        control = faults.locker().lock(unique_name(), refresh_interval_secs=60)
        assert control.acquire(0) is True

        assert not lost.wait(10), "a lock was lost although its keepalive ran every second"
        for lock in locks:
            assert_holds(faults, lock)
        assert faults.holder(control.name) is None
        for lock in locks:
            lock.release()
            assert not lock.lost
    finally:
        faults.finish(caplog)


@pytest.mark.lifecycle
def test_idle_kill_is_reported_when_the_interval_exceeds_wait_timeout(
    idle_kill_faults, unique_name, spawn
):
    faults = idle_kill_faults
    interval = WAIT_TIMEOUT * 1.5
    idle_locker = faults.locker()  # only its constructor's connection, idle in the pool
    locker = faults.locker()
    acquired = time.monotonic()
    (lock, report), (spare, _) = hold_apart(spawn, locker, [unique_name(), unique_name()], interval)
    spare.release()  # its idle connection in the pool is killed the same way

    assert_reported_lost(lock, report, since=acquired, bound=interval + 1)
    assert faults.holder(lock.name) is None
    assert lock.acquire(0) is True
    assert_holds(faults, lock)
    lock.release()
    # A Locker idle for longer than wait_timeout since it was made works too.
    other = idle_locker.lock(unique_name())
    assert other.acquire(0) is True
    assert_holds(faults, other)
    other.release()


# --------------------------------------------------------------------------- thread hand-over


def test_lock_left_by_an_ended_thread_lends_its_session_to_no_other_thread(
    faults, unique_name, spawn
):
    # A lock acquired in a worker thread and released later by another thread is common (a job
    # handed over). Thread idents are reused as soon as a thread ends, so a later thread may
    # carry the same ident: its acquire must still not run on the held lock's session, where a
    # wait would hold off that lock's release and keepalive, and the server would charge it
    # with a lock it never took (spurious deadlocks).
    busy = unique_name()
    hold(faults.locker(), busy, 30)
    locker = faults.locker(ping_timeout=PING_TIMEOUT)
    waiter = locker.lock(busy)

    def first() -> tuple:
        return hold(locker, unique_name(), 30)[0], threading.get_ident()

    left, ended_ident = spawn(first).result()
    left_id = left.connection_id
    reused = queue.Queue()

    def second(last_try: bool):
        same = threading.get_ident() == ended_ident
        reused.put(same)
        return waiter.acquire(1.5) if same or last_try else None

    # The next thread usually gets the ended one's ident; look for it a few times (a thread
    # started elsewhere may take it first), then wait from whichever thread comes.
    for attempt in range(20):
        worker = spawn(second, attempt == 19)
        if reused.get(timeout=10) or attempt == 19:
            break
        worker.result()
    waiting = faults.waiting(busy)
    assert left_id not in waiting, "another thread waits on the session of a held lock"
    started = time.monotonic()
    left.release()
    assert time.monotonic() - started < 1.0
    assert worker.result() is False


# --------------------------------------------------------------------------- 6. processes

WORKER_SCRIPT = Path(__file__).with_name("lockworker.py")
#: The spec's bound on the hand-over to a waiting process after the holder process died.
HANDOVER_BOUND = 2.0
#: Seconds within which the server must drop the wait of a killed waiter process.
ORPHAN_BOUND = 3.0


@pytest.fixture
def lock_process(server, driver, tmp_path):
    """``lock_process(name)``: a started ``lockworker.py`` that acquires ``name`` and waits."""
    made: list[WorkerProcess] = []

    def start(name: str, timeout: float = -1) -> WorkerProcess:
        spec = {
            "driver": driver,
            "connect": server.connect_kwargs(),
            "name": name,
            "timeout": timeout,
        }
        worker = WorkerProcess(WORKER_SCRIPT, spec, tmp_path / f"worker-{len(made)}.stderr")
        made.append(worker)
        return worker

    yield start
    for worker in made:
        worker.close()


def _server_holder(sql, name: str) -> int | None:
    value = sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
    return None if value is None else int(value)


def test_killed_holder_process_hands_the_lock_to_a_waiting_process(
    lock_process, lock_name, lock_waiters, sql
):
    holder = lock_process(lock_name)
    holder.expect("ready")
    holder_id = int(holder.expect("acquired").split()[1])
    assert _server_holder(sql, lock_name) == holder_id
    waiter = lock_process(lock_name)
    waiter.expect("ready")
    lock_waiters(lock_name)  # the waiter's GET_LOCK waits on the server

    killed = time.monotonic()
    holder.kill()
    waiter_id = int(waiter.expect("acquired", timeout=HANDOVER_BOUND + 10).split()[1])
    elapsed = time.monotonic() - killed
    assert elapsed <= HANDOVER_BOUND, f"hand-over took {elapsed:.2f} s"
    assert _server_holder(sql, lock_name) == waiter_id
    waiter.tell("release")
    waiter.expect("released")
    assert waiter.proc.wait(10) == 0
    assert _server_holder(sql, lock_name) is None


def test_killed_waiter_process_leaves_no_wait_on_the_server(
    lock_process, make_locker, lock_name, lock_waiters, sql
):
    holder = make_locker().lock(lock_name)
    assert holder.acquire(0) is True
    waiter = lock_process(lock_name)
    waiter.expect("ready")
    (waiting_id,) = lock_waiters(lock_name)

    killed = time.monotonic()
    waiter.kill()
    while True:
        rows = sql(
            "SELECT ID, STATE FROM information_schema.PROCESSLIST "
            "WHERE ID = %s OR (STATE = 'User lock' AND INSTR(INFO, %s) > 0)",
            (waiting_id, lock_name),
        )
        if not rows:
            break
        assert time.monotonic() - killed <= ORPHAN_BOUND, f"still on the server: {rows}"
        time.sleep(0.05)
    assert holder.locked()
    assert _server_holder(sql, lock_name) == holder.connection_id
    # Nobody inherits the lock from the dead waiter when it is released.
    holder.release()
    assert _server_holder(sql, lock_name) is None
