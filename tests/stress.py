"""Crash-chaos stress: processes take one lock while a supervisor kills them and their sessions.

Run it as ``python tests/stress.py [--duration SECS] [--workers N] [--server-url URL]`` (or
``python -m tests.stress`` from the repository root). Without ``--server-url`` a throwaway
MariaDB/MySQL server is started from the installed binaries and removed afterwards.

What happens
------------
``--workers`` worker processes (default 8), spread round-robin over PyMySQL, mysql-connector and
mysqlclient, loop: acquire the one lock ``NAME``, append a ``start`` record to the shared log,
"work" for a random while (mostly milliseconds, sometimes half a second, calling
``ensure_held()`` between steps), call ``ensure_held()`` once more and append ``end``, release,
and append ``lost`` when ``Lock.lost`` says the library detected a loss (at release, or earlier
through the keepalive, in which case ``ensure_held()`` raised and no ``end`` is written).

Meanwhile the supervisor, every 0.3 to 1.2 s, does one of: SIGKILL the current holder's process,
``KILL CONNECTION`` the current holder's server session (the process lives on and must notice),
break the current holder's lock as an administrator would, with the library's own
``Locker.force_release()`` (from a Locker of a random driver), SIGKILL a random worker (usually
one waiting in ``GET_LOCK``), or ``KILL CONNECTION`` a random session waiting for the lock. It
writes a ``sigkill`` / ``kill_session`` / ``force_release`` record to the log *before* sending
each kill, and restarts every killed worker as a new incarnation. The ``force_release`` record
names the session the library is about to end: it is written between the library's own read of
the holder and its ``KILL`` (see :class:`_Breaker`), so it is the session really ended even when
the holder changed since the supervisor last looked.

The log is one file opened with ``O_APPEND``; every record is a single ``os.write()`` of one
JSON line, so records never interleave and a SIGKILL cannot tear one. Times are
``time.monotonic()``, which is ``CLOCK_MONOTONIC``, one clock for every process on the machine.

The invariant the checker proves
--------------------------------
A *section* is a ``start`` record of a worker incarnation and what follows it for the same
sequence number. It *closes* at the first of: its ``end`` record; its ``lost`` record when there
is no ``end`` (the worker stopped working when ``ensure_held()`` raised); the time the supervisor
recorded just before SIGKILLing the incarnation. The recorded interval ``[start, close)`` lies
inside the time the worker really held the lock (``start`` is written after ``acquire()``
returned, ``end`` before ``release()``), so if the library is correct recorded intervals of
correctly held locks never intersect.

Two sections *overlap* when their intervals intersect. An overlap is **excused** (a *reported
loss*) only if one of the two sections has a ``lost`` record *and* the supervisor sent a
``KILL CONNECTION`` (its own, or ``force_release``'s) for that section's connection before the
overlap began (before the later of the two starts): that worker's protection ended with its
session, and the library told it so.
The one other excuse is a ``release_cut`` record in place of ``lost``: the worker's injected
interrupt cut its ``release()`` short after the release had begun (the connection is then
closed, see ``Lock.release``). A loss that happened before such a release can no longer be
learned: the keepalive had stopped for the release, and the ``RELEASE_LOCK`` answer that would
have told was never read. The killed session still has to be on record before the overlap.
Every other overlap is a **violation**: two live holders at once, with nobody told. A SIGKILLed
holder needs no excuse: its section closes at the kill, and the server frees its lock only when
its connection closes, after the kill, so a later holder starting after its death is no overlap.

The run also fails on: a ``lost`` record whose connection the supervisor never killed (a false
loss report), a section that never closes (a worker that stopped without ``end``, ``lost`` or a
kill), an unexpected exception in a worker, an unreadable record, no acquisition for
``STALL_SECONDS`` (a stuck lock), or, with ``--require-chaos``, a run without at least one
acquisition, process kill, session kill and forced release.

``--broken`` is the harness's self-test: every worker takes a lock of its own, so nothing
excludes anything, and the run must fail with silent overlaps (``tests/test_stress_short.py``
checks that it does).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import linecache
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

#: The drivers the workers use, round-robin.
DRIVERS = ("pymysql", "mysql.connector", "MySQLdb")
#: The one lock every worker takes.
NAME = "pymysqllock-stress"
#: Environment variable that hands the server URL to workers (not on their command line).
URL_ENV = "PYMYSQLLOCK_STRESS_URL"
#: Environment variable set for a deliberately broken run (see ``--broken``).
BROKEN_ENV = "PYMYSQLLOCK_STRESS_BROKEN"
#: Seconds without any acquisition after which the run counts as stalled.
STALL_SECONDS = 30.0
#: Seconds workers get to finish their last section and exit after the deadline.
SHUTDOWN_GRACE = 30.0
#: Keepalive interval of the workers' locks: short, so a killed session is noticed mid-section.
REFRESH_INTERVAL = 0.25


# --------------------------------------------------------------------------- the log


class Log:
    """The shared record file: one JSON object per line, one ``os.write`` per record."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, kind: str, **fields: Any) -> float:
        """Append one record stamped with ``time.monotonic()``; :returns: the stamp."""
        now = time.monotonic()
        line = json.dumps({"kind": kind, "t": now, **fields}, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())
        return now

    def close(self) -> None:
        os.close(self._fd)


def read_records(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """:returns: the records of the log, and the lines that could not be parsed."""
    records: list[dict[str, Any]] = []
    bad: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "kind" not in record or "t" not in record:
                    raise ValueError(line)
            except ValueError:
                bad.append(line.rstrip("\n"))
            else:
                records.append(record)
    return records, bad


# --------------------------------------------------------------------------- the checker


@dataclass
class Section:
    """One critical section of one worker incarnation."""

    worker: str
    seq: int
    start: float
    conn: int | None
    end: float | None = None
    lost: float | None = None
    killed: float | None = None
    release_cut: float | None = None
    #: Why the library said the lock was lost (its cause and message), for the report.
    lost_reason: str | None = None

    @property
    def close(self) -> float | None:
        """When the worker stopped relying on the lock (see the module docstring)."""
        if self.end is not None:
            return self.end
        if self.lost is not None:
            return self.lost
        return self.killed


@dataclass
class Report:
    """What a run did and what the checker found."""

    acquisitions: int = 0
    process_kills: int = 0
    session_kills: int = 0
    forced_releases: int = 0
    reported_losses: int = 0
    cut_releases: int = 0
    excused_overlaps: int = 0
    overlaps: int = 0
    max_gap: float = 0.0
    acquire_errors: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        lines = [
            f"acquisitions:         {self.acquisitions}",
            f"process kills:        {self.process_kills}",
            f"session kills:        {self.session_kills}",
            f"forced releases:      {self.forced_releases}",
            f"reported losses:      {self.reported_losses}",
            f"releases cut short:   {self.cut_releases} (by an injected interrupt)",
            f"overlaps (reported):  {self.excused_overlaps}",
            f"overlaps (silent):    {self.overlaps} (must be 0)",
            f"acquire errors:       {self.acquire_errors} (waits ended by a killed session)",
            f"longest gap:          {self.max_gap:.2f} s between two acquisitions",
            f"violations:           {len(self.violations)}",
        ]
        lines += [f"  - {violation}" for violation in self.violations[:50]]
        if len(self.violations) > 50:
            lines.append(f"  ... and {len(self.violations) - 50} more")
        return "\n".join(lines)


def check(
    records: Iterable[dict[str, Any]],
    bad_lines: Iterable[str] = (),
    *,
    stall_seconds: float = STALL_SECONDS,
    run_end: float | None = None,
) -> Report:
    """Prove the invariant of the module docstring on a run's records.

    :param records: the log's records, in file order.
    :param bad_lines: lines that could not be parsed (each is a violation).
    :param stall_seconds: the longest allowed time without an acquisition.
    :param run_end: when the run ended (for the stall check of its last stretch).
    :returns: the counts and the violations.
    """
    report = Report()
    report.violations += [f"unreadable record: {line!r}" for line in bad_lines]
    sections: dict[tuple[str, int], Section] = {}
    sigkills: dict[str, float] = {}
    session_kills: dict[int, float] = {}  # connection id -> first kill (or forced release) sent
    run_start: float | None = None
    for record in records:
        kind, now = record["kind"], float(record["t"])
        worker = str(record.get("worker", ""))
        key = (worker, int(record.get("seq", 0)))
        if kind == "begin":
            run_start = now
        elif kind == "start":
            if key in sections:
                report.violations.append(f"{worker} started section {key[1]} twice")
            conn = record.get("conn")
            sections[key] = Section(worker, key[1], now, None if conn is None else int(conn))
        elif kind in ("end", "lost", "release_cut"):
            section = sections.get(key)
            if section is None:
                report.violations.append(f"{kind} of {worker} #{key[1]} without a start")
            elif kind == "end":
                section.end = now
            elif kind == "lost":
                section.lost = now
                section.lost_reason = record.get("reason")
            else:
                report.cut_releases += 1
                section.release_cut = now
        elif kind == "sigkill":
            report.process_kills += 1
            sigkills.setdefault(worker, now)
        elif kind == "kill_session":
            report.session_kills += 1
            session_kills.setdefault(int(record["conn"]), now)
        elif kind == "force_release":
            # force_release ends the holder's session with a KILL CONNECTION of its own: the
            # same event for the worker as a kill_session, recorded just before the KILL.
            report.forced_releases += 1
            session_kills.setdefault(int(record["conn"]), now)
        elif kind == "acquire_error":
            report.acquire_errors += 1
        elif kind == "error":
            report.violations.append(f"{worker} failed: {record.get('message')}")
    ordered = sorted(sections.values(), key=lambda s: s.start)
    report.acquisitions = len(ordered)
    for section in ordered:
        if section.end is None and section.lost is None and section.worker in sigkills:
            kill = sigkills[section.worker]
            if kill >= section.start:
                section.killed = kill
        if section.close is None:
            report.violations.append(
                f"{section.worker} #{section.seq} (start {section.start:.3f}) never ended: no "
                "end, no lost record and no kill"
            )
        if section.lost is not None:
            report.reported_losses += 1
            if section.conn not in session_kills:
                report.violations.append(
                    f"{section.worker} #{section.seq} reported a loss, but its connection "
                    f"{section.conn} was never killed (false loss report; the library said: "
                    f"{section.lost_reason or 'nothing'})"
                )

    def excused(section: Section, overlap_begins: float) -> bool:
        kill = session_kills.get(section.conn) if section.conn is not None else None
        told = section.lost is not None or section.release_cut is not None
        return told and kill is not None and kill < overlap_begins

    for index, first in enumerate(ordered):
        first_close = first.close if first.close is not None else float("inf")
        for later in ordered[index + 1 :]:
            if later.start >= first_close:
                break
            if excused(first, later.start) or excused(later, later.start):
                report.excused_overlaps += 1
                continue
            report.overlaps += 1
            report.violations.append(
                f"silent overlap: {first.worker} #{first.seq} "
                f"[{first.start:.4f}, {first_close:.4f}) and {later.worker} #{later.seq} "
                f"started {later.start:.4f} (conn {first.conn} / {later.conn})"
            )
    starts = [s.start for s in ordered]
    bounds = [run_start] if run_start is not None else []
    edges = [*bounds, *starts, *([run_end] if run_end is not None else [])]
    gaps = [b - a for a, b in zip(edges, edges[1:])]
    report.max_gap = max(gaps, default=0.0)
    if report.max_gap > stall_seconds:
        report.violations.append(f"no acquisition for {report.max_gap:.1f} s (stalled)")
    return report


# --------------------------------------------------------------------------- hostile events

#: Chances per iteration of a worker: an interrupt injected into its acquire or its release,
#: and a close() of its Locker racing its acquire. Its on_lost callback always raises.
INTERRUPT_CHANCE = 0.05
CLOSE_RACE_CHANCE = 0.02


class Interrupt:
    """Raises ``exception`` at the ``at``-th line the calling thread runs (any module but
    :mod:`threading`, see :meth:`_trace`)."""

    def __init__(self, at: int, exception: type[BaseException] = KeyboardInterrupt) -> None:
        self.at = at
        self.exception = exception
        self.lines = 0
        self.fired = False

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and _in_finalizer(frame):
            return None  # run by the garbage collector, not by the call under test
        if event == "call" and frame.f_globals.get("__name__") == "threading":
            # CPython's own Condition/Event are not safe against an exception raised between
            # their lines (one injected in Condition.wait after _release_save() leaves the
            # condition's lock released, and the enclosing ``with`` then fails with
            # "release unlocked lock"): no library can guard that, so no line there counts.
            return None
        if event == "line" and not _on_with_line(frame):
            self.lines += 1
            if self.lines == self.at:
                self.fired = True
                sys.settrace(None)
                raise self.exception("injected")
        return self._trace

    def run(self, call: Callable[[], Any]) -> bool:
        """Run ``call`` with the interrupt armed; :returns: whether it fired."""
        sys.settrace(self._trace)
        try:
            call()
        except self.exception:
            if not self.fired:
                raise
        finally:
            sys.settrace(None)
        return self.fired


def _on_with_line(frame: Any) -> bool:
    """Whether the frame is on a ``with`` statement's line.

    Its line event also fires as the block exits, before ``__exit__`` is called: raising
    there would leave a lock acquired by the ``with`` held, where a real interrupt cannot land
    (CPython runs signal handlers after that call, not before it). Skipped both ways.
    """
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).lstrip()
    return line.startswith(("with ", "async with "))


def _in_finalizer(frame: Any) -> bool:
    """Whether the frame runs for the garbage collector: a ``__del__`` or a weakref callback."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(("weakref.py", "weakrefset.py")):
            return True
        # A finalizer under another name: PyMySQL's Connection has ``__del__ = _force_close``
        # (its explicit calls are skipped too, which only leaves their lines uncounted).
        owner = frame.f_locals.get("self") if code.co_argcount else None
        if getattr(getattr(type(owner), "__del__", None), "__code__", None) is code:
            return True
        frame = frame.f_back
    return False


def hostile_on_lost(lock: Any) -> None:
    """An ``on_lost`` that fails in the worst ways; the library must carry on regardless.

    On the Locker's callback thread it raises ``SystemExit`` or ``KeyboardInterrupt`` too. In
    the worker's own thread (a loss found by ``release()``) only an ``Exception``: a
    ``SystemExit`` raised by a callback in the caller's thread is the caller's to handle.
    """
    own_thread = threading.current_thread() is threading.main_thread()
    kinds = (RuntimeError,) if own_thread else (SystemExit, KeyboardInterrupt, RuntimeError)
    raise random.choice(kinds)("from on_lost")


# --------------------------------------------------------------------------- the worker


def worker_main(worker: str, driver: str, log_path: str, deadline: float) -> int:
    """Loop over the lock until ``deadline`` (monotonic); the supervisor may kill us any time."""
    from PyMySQLLock import (
        AcquireInterruptedError,
        LockConnectionError,
        Locker,
        LockError,
        LockLostError,
    )

    log = Log(log_path)
    url = os.environ[URL_ENV]
    rng = random.Random()
    try:
        locker = Locker.from_url(url, driver=driver)
        # --broken: every worker takes a lock of its own, so nothing excludes anything and the
        # checker must find overlaps (a self-test of the checker and of this whole harness).
        name = f"{NAME}-{worker}" if os.environ.get(BROKEN_ENV) else NAME
        lock = locker.lock(name, refresh_interval_secs=REFRESH_INTERVAL, on_lost=hostile_on_lost)
        seq = 0
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < CLOSE_RACE_CHANCE:
                # close() from another thread while this one acquires: the acquire must end
                # with a LockError or give the lock up in close(); never held afterwards.
                closer = threading.Timer(rng.uniform(0, 0.005), locker.close)
                closer.start()
                with contextlib.suppress(LockError):
                    lock.acquire(timeout=0.5)
                closer.join()
                locker.close()
                if lock.locked():
                    log.write("error", worker=worker, driver=driver, message="held after close")
                locker = Locker.from_url(url, driver=driver)
                lock = locker.lock(
                    name, refresh_interval_secs=REFRESH_INTERVAL, on_lost=hostile_on_lost
                )
                continue
            try:
                if roll < CLOSE_RACE_CHANCE + INTERRUPT_CHANCE:
                    Interrupt(rng.randint(1, 400)).run(functools.partial(lock.acquire, timeout=2))
                    if not lock.locked():
                        continue  # interrupted before the grant, or the grant given up
                elif not lock.acquire(timeout=2):
                    continue
            except (LockConnectionError, AcquireInterruptedError) as exc:
                # Our waiting session was killed by the supervisor: expected, try again.
                log.write("acquire_error", worker=worker, driver=driver, message=str(exc))
                continue
            seq += 1
            log.write("start", worker=worker, driver=driver, seq=seq, conn=lock.connection_id)
            try:
                steps = rng.randint(1, 5)
                step = 0.1 if rng.random() < 0.1 else rng.uniform(0, 0.004)
                for _ in range(steps):
                    time.sleep(step)  # the "work" the lock protects
                    lock.ensure_held()
                lock.ensure_held()
            except LockLostError:
                log.write("lost", worker=worker, driver=driver, seq=seq, reason=_why(lock))
                lock.release()  # only cleans up: the loss is already known
                continue
            log.write("end", worker=worker, driver=driver, seq=seq)
            if rng.random() < INTERRUPT_CHANCE:
                cut = Interrupt(rng.randint(1, 200)).run(lock.release)
                if lock.locked():
                    lock.release()  # interrupted before anything changed: released now
                elif cut and not lock.lost:
                    # Released by closing the connection, mid-release: whether the session
                    # still held the lock then is unknowable (see the checker's excuses).
                    log.write("release_cut", worker=worker, driver=driver, seq=seq)
            else:
                lock.release()
            if lock.lost:
                log.write("lost", worker=worker, driver=driver, seq=seq, reason=_why(lock))
        locker.close()
    except BaseException as exc:
        log.write("error", worker=worker, driver=driver, message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        log.close()
    return 0


def _why(lock: Any) -> str:
    """The loss as the library reported it: its cause, and its message."""
    reason = lock.lost_reason
    return "unknown" if reason is None else f"{reason.cause.name}: {reason}"


# --------------------------------------------------------------------------- the supervisor


class Admin:
    """A root connection of the supervisor's own, independent of the library under test."""

    def __init__(self, url: str) -> None:
        from PyMySQLLock.config import parse_url

        self._kwargs = {
            key: value
            for key, value in parse_url(url).connect_kwargs.items()
            if key in ("host", "port", "user", "password", "unix_socket")
        }
        self._conn: Any = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import pymysql

        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = pymysql.connect(
                        autocommit=True, connect_timeout=10, read_timeout=10, **self._kwargs
                    )
                with self._conn.cursor() as cursor:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall())
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] in (1094, 1095):
                    return []  # no such thread: the target is gone already
                self.close()
                if attempt == 2:
                    raise
        return []

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def _breaking_locker(url: str, driver: str, log: Log) -> Any:
    """A Locker of the supervisor's for :meth:`~PyMySQLLock.Locker.force_release`, used as an
    administrator would use it, whose ``break_lock(name)`` also writes the ``force_release``
    record.

    The record must name the session the library ends, and only the library knows it: it reads
    the holder itself just before its ``KILL``, and the holder may have changed since anyone
    else looked. So the first :meth:`~PyMySQLLock.Locker.holder` answer inside ``break_lock``
    writes the record, between the library's read and its ``KILL``. If the library ever ends a
    session without that read, the run fails (an ``error`` record) instead of blaming the
    workers for losses nobody recorded.
    """
    from PyMySQLLock import Locker

    class BreakingLocker(Locker):
        _armed = False
        _ended: int | None = None

        def holder(self, name: str) -> int | None:
            conn = super().holder(name)
            if self._armed and conn is not None:
                self._armed, self._ended = False, conn
                log.write("force_release", conn=conn, driver=driver)
            return conn

        def break_lock(self, name: str) -> int | None:
            """:returns: the session ``force_release`` ended, ``None`` if the lock was free."""
            self._armed, self._ended = True, None
            try:
                ended = self.force_release(name)
            finally:
                self._armed = False
            if ended and self._ended is None:
                log.write(
                    "error",
                    worker="supervisor",
                    message="force_release ended a session without reading the holder first",
                )
            return self._ended if ended else None

    return BreakingLocker.from_url(url, driver=driver)


@dataclass
class _Slot:
    driver: str
    number: int
    incarnation: int = 0
    name: str = ""
    proc: subprocess.Popen[bytes] | None = None
    stderr: Path | None = None


class Supervisor:
    """Runs the workers and the chaos; see the module docstring."""

    def __init__(
        self,
        url: str,
        workers: int,
        duration: float,
        directory: Path,
        *,
        seed: int | None = None,
        quiet: bool = False,
        broken: bool = False,
    ) -> None:
        self.url = url
        self.broken = broken
        self.duration = duration
        self.directory = directory
        self.log_path = directory / "stress.log"
        self.log = Log(self.log_path)
        self.admin = Admin(url)
        self.rng = random.Random(seed)
        self.quiet = quiet
        self.slots = [_Slot(DRIVERS[i % len(DRIVERS)], i) for i in range(workers)]
        self.deadline = 0.0
        self.unexpected_exits: list[str] = []
        # connection id -> worker, from the start records read so far
        self._holders: dict[int, str] = {}
        self._offset = 0
        self._breakers: dict[str, Any] = {}  # driver -> Locker (see _breaking_locker)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def spawn(self, slot: _Slot) -> None:
        slot.incarnation += 1
        slot.name = f"w{slot.number}.{slot.incarnation}"
        slot.stderr = self.directory / f"{slot.name}.stderr"
        env = {**os.environ, URL_ENV: self.url}
        env.pop(BROKEN_ENV, None)
        if self.broken:
            env[BROKEN_ENV] = "1"
        with slot.stderr.open("wb") as err:
            slot.proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    slot.name,
                    slot.driver,
                    str(self.log_path),
                    repr(self.deadline),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )

    def _follow_log(self) -> None:
        """Learn which worker owns which connection from the records written so far."""
        with open(self.log_path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("kind") == "start" and record.get("conn") is not None:
                    self._holders[int(record["conn"])] = record["worker"]

    def _holder(self) -> tuple[int | None, _Slot | None]:
        rows = self.admin.query("SELECT IS_USED_LOCK(%s)", (NAME,))
        conn = rows[0][0] if rows and rows[0][0] is not None else None
        if conn is None:
            return None, None
        self._follow_log()
        name = self._holders.get(int(conn))
        slot = next((s for s in self.slots if s.name == name), None)
        return int(conn), slot

    def _sigkill(self, slot: _Slot) -> None:
        proc = slot.proc
        if proc is None or proc.poll() is not None:
            return
        self.log.write("sigkill", worker=slot.name, pid=proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.spawn(slot)

    def _kill_session(self, conn: int) -> None:
        self.log.write("kill_session", conn=conn)
        self.admin.query(f"KILL CONNECTION {int(conn)}")

    def _force_release(self, driver: str) -> int | None:
        breaker = self._breakers.get(driver)
        if breaker is None:
            breaker = self._breakers[driver] = _breaking_locker(self.url, driver, self.log)
        ended: int | None = breaker.break_lock(NAME)
        return ended

    def chaos(self) -> str | None:
        """Do one random bad thing; :returns: what was done, or ``None``."""
        roll = self.rng.random()
        if roll < 0.3:
            conn, slot = self._holder()
            if slot is not None:
                self._sigkill(slot)
                return f"SIGKILL holder {slot.name}"
        elif roll < 0.55:
            conn, _ = self._holder()
            if conn is not None:
                self._kill_session(conn)
                return f"KILL holder session {conn}"
        elif roll < 0.8:
            driver = self.rng.choice(DRIVERS)
            conn = self._force_release(driver)
            if conn is not None:
                return f"force_release ({driver}) ended holder session {conn}"
        elif roll < 0.9:
            slot = self.rng.choice(self.slots)
            self._sigkill(slot)
            return f"SIGKILL {slot.name}"
        else:
            rows = self.admin.query(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
                (NAME,),
            )
            if rows:
                conn = int(self.rng.choice(rows)[0])
                self._kill_session(conn)
                return f"KILL waiting session {conn}"
        return None

    def _reap_unexpected(self) -> None:
        for slot in self.slots:
            proc = slot.proc
            if proc is not None and proc.poll() is not None and time.monotonic() < self.deadline:
                self.unexpected_exits.append(
                    f"{slot.name} exited early with code {proc.returncode}: {self._stderr(slot)}"
                )
                self.spawn(slot)

    @staticmethod
    def _stderr(slot: _Slot) -> str:
        try:
            text = slot.stderr.read_text(errors="replace").strip() if slot.stderr else ""
        except OSError:
            text = ""
        return text[-2000:]

    def run(self) -> Report:
        started = self.log.write("begin", workers=len(self.slots), duration=self.duration)
        self.deadline = started + self.duration
        for slot in self.slots:
            self.spawn(slot)
        next_report = started + 10
        try:
            while time.monotonic() < self.deadline:
                time.sleep(self.rng.uniform(0.3, 1.2))  # pacing of the chaos, not a handshake
                if time.monotonic() >= self.deadline:
                    break
                self._reap_unexpected()
                done = self.chaos()
                if done:
                    self.log.write("chaos", what=done)
                if time.monotonic() >= next_report:
                    next_report += 10
                    self._follow_log()
                    self.say(
                        f"[{time.monotonic() - started:6.1f} s] {len(self._holders)} "
                        f"connections seen, last chaos: {done}"
                    )
            self.shutdown()
        finally:
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is None:
                    slot.proc.kill()
                    slot.proc.wait()
            self.admin.close()
            for breaker in self._breakers.values():
                breaker.close()
        self.log.write("finish")
        self.log.close()
        records, bad = read_records(self.log_path)
        report = check(records, bad, run_end=self.deadline)
        report.violations += self.unexpected_exits
        return report

    def shutdown(self) -> None:
        """Let every worker finish its last section and exit; kill those that do not."""
        limit = time.monotonic() + SHUTDOWN_GRACE
        for slot in self.slots:
            proc = slot.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.write("sigkill", worker=slot.name, pid=proc.pid)
                proc.kill()
                proc.wait()
                self.unexpected_exits.append(f"{slot.name} did not exit after the deadline")
                continue
            if proc.returncode != 0:
                self.unexpected_exits.append(
                    f"{slot.name} exited with code {proc.returncode}: {self._stderr(slot)}"
                )


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from PyMySQLLock.testing import ThrowawayServer

    with ThrowawayServer() as server:
        yield server.url


def run(
    *,
    duration: float,
    workers: int = 8,
    server_url: str | None = None,
    seed: int | None = None,
    quiet: bool = False,
    keep: str | None = None,
    broken: bool = False,
) -> Report:
    """Run the stress and return its report (see the module docstring).

    :param duration: seconds of chaos.
    :param workers: worker processes.
    :param server_url: ``mysql://...`` of a server to use; default a throwaway server.
    :param seed: seed of the supervisor's choices.
    :param quiet: print no progress.
    :param keep: a directory to keep the log and worker stderr in (default: removed).
    :param broken: give every worker its own lock (a self-test: the run must then fail).
    """
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    with _server(server_url) as url, contextlib.ExitStack() as stack:
        if keep:
            directory = Path(keep)
            directory.mkdir(parents=True, exist_ok=True)
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stress-")))
        supervisor = Supervisor(
            url, workers, duration, directory, seed=seed, quiet=quiet, broken=broken
        )
        supervisor.say(
            f"stress: {workers} workers ({', '.join(DRIVERS)}), {duration:.0f} s, log {directory}"
        )
        return supervisor.run()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        worker, driver, log_path, deadline = args[1:5]
        return worker_main(worker, driver, log_path, float(deadline))
    parser = argparse.ArgumentParser(prog="stress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
    parser.add_argument("--server-url", help="mysql://user:pw@host:port/db (default: throwaway)")
    parser.add_argument("--seed", type=int, help="seed of the supervisor's random choices")
    parser.add_argument("--keep", help="keep the log and worker stderr in this directory")
    parser.add_argument(
        "--require-chaos",
        action="store_true",
        help="also fail unless there was at least one acquisition, process kill and session kill",
    )
    parser.add_argument(
        "--broken",
        action="store_true",
        help="self-test: every worker takes its own lock, so the run must report overlaps",
    )
    options = parser.parse_args(args)
    report = run(
        duration=options.duration,
        workers=options.workers,
        server_url=options.server_url,
        seed=options.seed,
        keep=options.keep,
        broken=options.broken,
    )
    if options.require_chaos:
        for what, count in (
            ("acquisitions", report.acquisitions),
            ("process kills", report.process_kills),
            ("session kills", report.session_kills),
            ("forced releases", report.forced_releases),
        ):
            if count == 0:
                report.violations.append(f"no {what} happened")
    print(report.summary())
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
