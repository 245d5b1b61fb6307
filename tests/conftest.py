"""Shared fixtures of the PyMySQLLock test suite.

``tests/`` is not a package: pytest puts it on ``sys.path``, so helpers are imported as
``from server import ...``.

Sections, each under its own banner; add new ones at the end:

1. Database server: the session-scoped ``server``, ``server_factory`` and ``fresh_server`` for
   destructive tests, and the report header line. Where the session server comes from
   (``PYMYSQLLOCK_TEST_URL``, ``PYMYSQLLOCK_TEST_CONTAINER`` or installed binaries) is
   explained in ``tests/server.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from server import (
    Server,
    ServerStartError,
    ThrowawayServer,
    describe,
    external_mode,
    server_from_environment,
    server_source,
    throwaway_possible,
)

# =============================================================================================
# 1. Database server
# =============================================================================================


class _SessionServer:
    """The one session server, made on first use.

    The report header is produced before any fixture runs, so both the header hook and the
    ``server`` fixture go through this cache; whichever comes first starts the server, and
    ``pytest_unconfigure`` closes it. A failure is remembered, so that every test reports the
    same clear message instead of retrying a slow start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._error: str | None = None

    def get(self) -> Server:
        """The session server, started if needed.

        :raises ServerStartError: when it could not be had (now or on an earlier attempt).
        """
        with self._lock:
            if self._server is None and self._error is None:
                try:
                    self._server = server_from_environment()
                except Exception as exc:  # noqa: BLE001 - reported to every test that needs it
                    self._error = f"{type(exc).__name__}: {exc}"
            if self._server is None:
                raise ServerStartError(f"no test server from {server_source()}: {self._error}")
            return self._server

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()


_SESSION_SERVER = _SessionServer()


def pytest_report_header(config: pytest.Config) -> str:
    """``server: MariaDB 10.11.19 (throwaway, /tmp/pymysqllock-abc, port 41234)``."""
    try:
        return f"server: {describe(_SESSION_SERVER.get())}"
    except ServerStartError as exc:
        # A failing header would abort the whole run, even tests that need no server.
        first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
        return f"server: unavailable ({first_line})"


def pytest_unconfigure(config: pytest.Config) -> None:
    _SESSION_SERVER.close()


@pytest.fixture(scope="session")
def server() -> Server:
    """The session's server (throwaway, external or container; see ``tests/server.py``).

    Shared by all tests: do not stop, pause or kill it (use ``fresh_server``). On an external
    or container server the lifecycle methods skip the test.
    """
    try:
        return _SESSION_SERVER.get()
    except ServerStartError as exc:
        message = str(exc)
    # Outside the except block: no "during handling of the above exception" noise.
    pytest.fail(message, pytrace=False)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ThrowawayServer]]:
    """Make throwaway servers for one test; all are closed after it.

    ``server_factory(start=True, **kwargs)``: the keyword arguments go to
    :class:`~PyMySQLLock.testing.ThrowawayServer` (``performance_schema=True``,
    ``extra_args=[...]``...). With ``start=False`` the server is returned unstarted.
    Skipped when the session uses an external server and no server binary is installed.
    """
    if not throwaway_possible():
        message = "needs mariadbd or mysqld installed to start a throwaway server"
        if external_mode():
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    made: list[ThrowawayServer] = []

    def make(*, start: bool = True, **kwargs: Any) -> ThrowawayServer:
        server = ThrowawayServer(**kwargs)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def fresh_server(server_factory: Callable[..., ThrowawayServer]) -> ThrowawayServer:
    """A started throwaway server of its own, for tests that stop, pause, kill or restart it."""
    return server_factory()


# =============================================================================================
# 2. Drivers, lockers, lock names, worker threads and the leak check
# =============================================================================================
# Every behaviour test of the core suite runs once per driver (the ``driver`` fixture), gets a
# connected ``locker`` (more from ``make_locker``), a ``lock_name`` no other test uses, ``sql``
# to run statements as root on a short-lived connection, and ``spawn`` for worker threads whose
# exceptions reach the test. The autouse ``_no_leaks`` fails any test that leaves a server
# connection or a thread behind.

import contextlib  # noqa: E402 - section 2 keeps its imports with its code
import itertools  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from PyMySQLLock import InvalidArgumentError, InvalidArgumentTypeError, Locker  # noqa: E402
from PyMySQLLock.drivers import DRIVERS as _REGISTRY  # noqa: E402

#: The ``driver=`` names, and the test ids they get (from the one registry of drivers).
DRIVERS = tuple(entry.name for entry in _REGISTRY)
DRIVER_IDS = tuple(entry.short for entry in _REGISTRY)
#: Seconds a connection closed by a test may take to leave the server's process list.
DISCONNECT_GRACE = 5.0
#: Seconds a thread started by a test may take to end after it. The keepalive thread ends about
#: a second after the last lock was released (at once on ``Locker.close()``).
THREAD_GRACE = 3.0
#: Columns of ``information_schema.PROCESSLIST`` shown when a connection leaks.
_SESSION_COLUMNS = "ID, USER, HOST, DB, COMMAND, TIME, STATE, LEFT(INFO, 120)"

_RUN_TOKEN = secrets.token_hex(2)
_NAME_NUMBERS = itertools.count(1)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _make_lock_name(node_name: str) -> str:
    """``t<run>-<n>-<test name>``: unique in the session, at most 54 characters."""
    short = _NAME_UNSAFE.sub("_", node_name)[:40]
    return f"t{_RUN_TOKEN}-{next(_NAME_NUMBERS)}-{short}"


@pytest.fixture(params=DRIVERS, ids=DRIVER_IDS)
def driver(request: pytest.FixtureRequest) -> str:
    """The driver name given to ``Locker(driver=...)``; every driver is installed in the venv."""
    return str(request.param)


@pytest.fixture
def sql(server: Server) -> Callable[..., list[tuple[Any, ...]]]:
    """``sql(statement, params=None)``: run one statement as root on a short-lived connection."""
    return server.sql


@pytest.fixture
def make_locker(server: Server, driver: str) -> Iterator[Callable[..., Locker]]:
    """``make_locker(on=None, **kwargs)``: a connected Locker, closed after the test.

    It uses the test's ``driver`` and the connection arguments of ``on`` (default the session
    server); ``kwargs`` add to or override them (``namespace=``, ``password=``...). With
    ``mysql_lib_connector=`` the connect function picks the driver instead.
    """
    made: list[Locker] = []

    def make(*, on: Any = None, **kwargs: Any) -> Locker:
        target = server if on is None else on
        options = {**target.connect_kwargs(), **kwargs}
        if "mysql_lib_connector" not in options:
            options.setdefault("driver", driver)
        new = Locker(**options)
        made.append(new)
        return new

    yield make
    for each in made:
        each.close()


@pytest.fixture
def locker(make_locker: Callable[..., Locker]) -> Locker:
    """A Locker on the session server with the test's driver, closed after the test."""
    return make_locker()


@pytest.fixture
def lock_name(request: pytest.FixtureRequest) -> str:
    """A lock name no other test uses (at most 54 ASCII characters)."""
    return _make_lock_name(request.node.name)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[], str]:
    """``unique_name()``: one more lock name no other test (or call) uses."""
    return lambda: _make_lock_name(request.node.name)


@pytest.fixture
def table(server: Server) -> Iterator[str]:
    """A fencing counter table name of this test's own, dropped afterwards."""
    name = f"fence_{_RUN_TOKEN}_{secrets.token_hex(3)}"
    yield name
    server.sql(f"DROP TABLE IF EXISTS `{server.database}`.`{name}`")


@pytest.fixture
def guarded(server: Server) -> Iterator[str]:
    """A table guarded by fencing tokens: one row ``(1, '', 0)`` whose ``fence`` only grows."""
    name = f"guarded_{_RUN_TOKEN}_{secrets.token_hex(3)}"
    server.sql(
        f"CREATE TABLE `{server.database}`.`{name}` "
        "(id INT PRIMARY KEY, body TEXT, fence BIGINT NOT NULL)"
    )
    server.sql(f"INSERT INTO `{server.database}`.`{name}` VALUES (1, '', 0)")
    yield name
    server.sql(f"DROP TABLE IF EXISTS `{server.database}`.`{name}`")


@pytest.fixture(
    params=[
        (-1, InvalidArgumentError),
        (86401, InvalidArgumentError),
        ("5", InvalidArgumentTypeError),
        (True, InvalidArgumentTypeError),
        (float("nan"), InvalidArgumentError),
    ],
    ids=["negative", "over-a-day", "str", "bool", "nan"],
)
def bad_hold(request: pytest.FixtureRequest) -> tuple[Any, type[Exception]]:
    """A ``hold_at_least`` every API must refuse, and the error it must raise."""
    return request.param  # type: ignore[no-any-return]


@dataclass
class Traffic:
    """What reached the server during a ``server_traffic()`` block.

    ``connections``: connections opened (status ``Connections``); ``selects``: ``SELECT``
    statements run (``Com_select``), over all sessions. The measuring itself is not counted.
    """

    connections: int = 0
    selects: int = 0


@pytest.fixture
def server_status(server: Server) -> Callable[..., dict[str, int]]:
    """``server_status("Connections", ...)``: the server's global status counters by name."""

    def read(*names: str) -> dict[str, int]:
        marks = ", ".join(["%s"] * len(names))
        rows = server.sql(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", names)
        return {str(name): int(value) for name, value in rows}

    return read


@pytest.fixture
def server_traffic(
    server_status: Callable[..., dict[str, int]],
) -> Callable[[], contextlib.AbstractContextManager[Traffic]]:
    """``with server_traffic() as traffic:``: count connections and SELECTs during the block.

    ``SHOW GLOBAL STATUS`` is not a SELECT, and the one connection opened to read the counters
    after the block is subtracted. Only meaningful while no keepalive check can run.
    """

    @contextlib.contextmanager
    def measure() -> Iterator[Traffic]:
        before = server_status("Connections", "Com_select")
        traffic = Traffic()
        yield traffic
        after = server_status("Connections", "Com_select")
        traffic.connections = after["Connections"] - before["Connections"] - 1
        traffic.selects = after["Com_select"] - before["Com_select"]

    return measure


def _sessions(server: Server) -> dict[int, tuple[Any, ...]]:
    """The server's client sessions of the test account except the asking one, by id."""
    rows = server.sql(
        f"SELECT {_SESSION_COLUMNS} FROM information_schema.PROCESSLIST "
        "WHERE ID <> CONNECTION_ID() AND USER = %s AND COMMAND <> 'Daemon'",
        (server.user,),
    )
    return {int(row[0]): row for row in rows}


@pytest.fixture
def server_sessions(server: Server) -> Callable[[], dict[int, tuple[Any, ...]]]:
    """``server_sessions()``: the session server's client sessions (but the asking one) by id.

    Each row: ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO (first 120 characters).
    """
    return lambda: _sessions(server)


@pytest.fixture
def lock_waiters(server: Server) -> Callable[..., list[int]]:
    """``lock_waiters(name, count=1, timeout=10)``: wait until ``count`` sessions wait for a lock.

    A waiting ``GET_LOCK`` shows as state ``User lock`` in the process list, with the name in
    its statement. Polls the server (there is no event to wait for across processes).

    :returns: the connection ids of the waiting sessions.
    """

    def wait(name: str, count: int = 1, timeout: float = 10.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            rows = server.sql(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
                (name,),
            )
            if len(rows) >= count:
                return [int(row[0]) for row in rows]
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{len(rows)} of {count} sessions waiting for {name!r} after {timeout} s"
                )
            time.sleep(0.01)

    return wait


class Worker:
    """One call run in its own thread; :meth:`result` returns its value or re-raises its error.

    :param target: the callable.
    :param args: its positional arguments.
    :param kwargs: its keyword arguments.
    :param name: the thread's name.
    """

    def __init__(
        self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
    ) -> None:
        self.name = name
        self.done = threading.Event()
        self.collected = False
        self._call = (target, args, kwargs)
        self._value: Any = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        target, args, kwargs = self._call
        try:
            self._value = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by result()
            self._error = exc
        finally:
            self.done.set()

    def result(self, timeout: float = 30.0) -> Any:
        """Wait for the call to end.

        :param timeout: seconds to wait before the test fails.
        :returns: what the call returned.
        :raises BaseException: what the call raised.
        """
        if not self.done.wait(timeout):
            pytest.fail(f"worker {self.name} still running after {timeout} s")
        self.thread.join()
        self.collected = True
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float = 30.0) -> BaseException | None:
        """Wait for the call to end; :returns: what it raised, or ``None``."""
        try:
            self.result(timeout)
        except Exception as exc:  # noqa: BLE001 - the point is to return it
            return exc
        return None


@pytest.fixture
def spawn(request: pytest.FixtureRequest) -> Iterator[Callable[..., Worker]]:
    """``spawn(target, *args, **kwargs)``: run a call in a started worker thread.

    After the test every worker must have ended (within 30 s), and an error that the test
    never collected with ``result()`` fails the test.
    """
    workers: list[Worker] = []

    def start(target: Callable[..., Any], *args: Any, **kwargs: Any) -> Worker:
        worker = Worker(target, args, kwargs, f"worker-{len(workers) + 1}-{request.node.name}")
        workers.append(worker)
        worker.thread.start()
        return worker

    yield start
    problems = []
    for worker in workers:
        if not worker.done.wait(30.0):
            problems.append(f"{worker.name} still running")
        elif not worker.collected and worker._error is not None:
            problems.append(f"{worker.name} raised {worker._error!r}")
    if problems:
        pytest.fail("worker threads: " + "; ".join(problems), pytrace=False)


def _leaked_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` that are still running, after waiting for them."""
    deadline = time.monotonic() + THREAD_GRACE
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        remaining = deadline - time.monotonic()
        if not leaked or remaining <= 0:
            return leaked
        leaked[0].join(remaining)


def _leaked_sessions(server: Server, before: dict[int, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Sessions opened since ``before`` that are still on the server, after waiting for them."""
    deadline = time.monotonic() + DISCONNECT_GRACE
    while True:
        leaked = [row for key, row in _sessions(server).items() if key not in before]
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves a thread running or a connection open on the session server.

    Compares ``threading.enumerate()`` and the server's process list before and after the test
    (after every other fixture's teardown), allowing :data:`THREAD_GRACE` for threads to end
    and :data:`DISCONNECT_GRACE` for closed connections to leave the server.
    """
    session_server = request.getfixturevalue("server") if "server" in request.fixturenames else None
    threads_before = set(threading.enumerate())
    sessions_before = {} if session_server is None else _sessions(session_server)
    yield
    problems = []
    threads = _leaked_threads(threads_before)
    if threads:
        shown = ", ".join(f"{t.name} (daemon={t.daemon})" for t in threads)
        problems.append(f"{len(threads)} thread(s) still running after {THREAD_GRACE} s: {shown}")
    if session_server is not None:
        sessions = _leaked_sessions(session_server, sessions_before)
        if sessions:
            shown = "\n  ".join(repr(row) for row in sessions)
            problems.append(
                f"{len(sessions)} server connection(s) still open after {DISCONNECT_GRACE} s "
                f"(ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO):\n  {shown}"
            )
    if problems:
        pytest.fail("the test leaked:\n" + "\n".join(problems), pytrace=False)


# =============================================================================================
# 3. asyncio: async drivers, AsyncLockers, and an event loop that must never be blocked
# =============================================================================================
# Async tests are coroutine functions marked ``@pytest.mark.asyncio`` (pytest-asyncio, strict
# mode). ``async_driver`` parametrizes them over the asyncio drivers, ``make_async_locker``
# gives AsyncLockers closed after the test, and ``watch_loop`` runs the test's loop in debug
# mode and fails the test if any callback or task step held the loop longer than
# :data:`SLOW_CALLBACK`.

import asyncio  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402

import aiomysql  # noqa: E402, F401 - imported once here, see below
import asyncmy  # noqa: E402, F401
import pytest_asyncio  # noqa: E402

from PyMySQLLock.aio import AsyncLocker  # noqa: E402

# The drivers are imported above, before any loop runs: AsyncLocker(driver=...) imports its
# driver module on first use, which takes longer than SLOW_CALLBACK once per process and is
# no I/O of the library's.

#: The asyncio ``driver=`` names, and the test ids they get.
ASYNC_DRIVERS = ("aiomysql", "asyncmy")
#: Seconds one step of the event loop may take before the test fails (asyncio debug mode).
SLOW_CALLBACK = 0.05


@pytest.fixture(params=ASYNC_DRIVERS)
def async_driver(request: pytest.FixtureRequest) -> str:
    """The asyncio driver name given to ``AsyncLocker(driver=...)``."""
    return str(request.param)


@pytest.fixture(params=[*DRIVERS, *ASYNC_DRIVERS], ids=[*DRIVER_IDS, *ASYNC_DRIVERS])
def worker_driver(request: pytest.FixtureRequest) -> str:
    """The driver of a worker process (``coordworker.py``): every blocking and asyncio one."""
    return str(request.param)


class _SlowSteps(logging.Handler):
    """Collects asyncio debug mode's reports of steps slower than ``slow_callback_duration``.

    On a machine whose CPUs are shared, a step can also be slow because the kernel ran another
    process meanwhile. Each step's user CPU time and voluntary context switches (a blocking
    system call sleeps, a preempted thread does not) are measured as well, and a slow step is
    excused only when it neither computed for that long nor slept. (User time only: the kernel
    charges network interrupt work to whichever thread happens to run; and without the
    interpreter's garbage collections, which may fall into any step.)
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []
        self.excused = 0
        self._step = (0.0, 0)
        #: CPU seconds spent in garbage collections so far.
        self.collecting = 0.0
        self._gc_started = 0.0

    def measure(self, run: Callable[[Any], None]) -> Callable[[Any], None]:
        """Wrap ``asyncio.Handle._run`` to record the CPU time and sleeps of each step."""
        handler = self

        def measured(handle: Any) -> None:
            before = resource.getrusage(resource.RUSAGE_THREAD)
            collecting = handler.collecting
            try:
                run(handle)
            finally:
                after = resource.getrusage(resource.RUSAGE_THREAD)
                cpu = after.ru_utime - before.ru_utime - (handler.collecting - collecting)
                handler._step = (cpu, after.ru_nvcsw - before.ru_nvcsw)

        return measured

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: the interpreter's own collections are not the step's work."""
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self.collecting += time.thread_time() - self._gc_started

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Executing "):
            return
        cpu, sleeps = self._step
        if cpu < SLOW_CALLBACK and sleeps == 0:
            self.excused += 1  # preempted, not blocked
        else:
            self.reports.append(f"{message} (CPU {cpu:.3f} s, {sleeps} sleeps)")


@contextlib.contextmanager
def watching_steps(loop: asyncio.AbstractEventLoop) -> Iterator[_SlowSteps]:
    """Within the block, ``loop`` runs in debug mode and its slow steps are collected."""
    debug, slow = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK
    handler = _SlowSteps()
    original = asyncio.Handle._run
    asyncio.Handle._run = handler.measure(original)  # type: ignore[method-assign]
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(handler)
    gc.callbacks.append(handler.on_gc)
    try:
        yield handler
    finally:
        gc.callbacks.remove(handler.on_gc)
        asyncio_logger.removeHandler(handler)
        asyncio.Handle._run = original  # type: ignore[method-assign]
        loop.set_debug(debug)
        loop.slow_callback_duration = slow


@pytest_asyncio.fixture
async def watch_loop() -> Any:
    """Debug mode on the test's loop; fails the test on any step over :data:`SLOW_CALLBACK`."""
    loop = asyncio.get_running_loop()
    with watching_steps(loop) as handler:
        yield loop
    if handler.reports:
        pytest.fail("the event loop was blocked:\n  " + "\n  ".join(handler.reports), pytrace=False)


@pytest_asyncio.fixture
async def make_async_locker(server: Server, async_driver: str, watch_loop: Any) -> Any:
    """``make_async_locker(**kwargs)``: an AsyncLocker on the session server, closed after.

    It uses the test's ``async_driver``; ``kwargs`` add to or override the connect arguments.
    """
    made: list[AsyncLocker] = []

    def make(**kwargs: Any) -> AsyncLocker:
        options = {**server.connect_kwargs(), "driver": async_driver, **kwargs}
        new = AsyncLocker(**options)
        made.append(new)
        return new

    yield make
    for each in made:
        await each.close()


# =============================================================================================
# 4. The command line: ``pymysqllock`` in a process of its own
# =============================================================================================
# ``CLI`` runs it as users' Python would, with warnings as errors; ``launch`` starts it in the
# background and kills what is still running after the test.

import subprocess  # noqa: E402
import sys  # noqa: E402

#: The command line, warnings as errors.
CLI = (sys.executable, "-W", "error", "-m", "PyMySQLLock")
#: Seconds a launched command line gets to end after being killed.
_CLI_WAIT = 30.0


def fresh_interpreter(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a new interpreter, to see what a process of its own imports
    or prints; ``PYTHONWARNINGS`` is left out, the rest of the environment kept.

    :returns: the finished process, whose exit status was 0.
    """
    import os
    import textwrap

    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def launch() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``launch(env, *args, **popen_kwargs)``: start the command line in the background."""
    started: list[subprocess.Popen[str]] = []

    def start(environment: dict[str, str], *args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*CLI, *map(str, args)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=_CLI_WAIT)
