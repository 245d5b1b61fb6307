"""Detection windows: how long after each kind of fault a held lock is reported lost.

The documentation (``docs/concepts.rst``, *Choosing refresh_interval_secs*) promises a bound
for every fault as a function of the lock's ``refresh_interval_secs`` and the Locker's
``ping_timeout``; this benchmark measures the window at several intervals and puts it next to
that bound:

* **session killed** (``KILL CONNECTION`` of each victim's session): one interval;
* **server restart** (``SIGKILL`` of the server, started again at once): one interval;
* **connection reset** (a TCP proxy closes every connection, both ways): one interval;
* **server hung** (``SIGSTOP`` of the server): one interval plus ``ping_timeout``;
* **network black-holed** (the proxy stops forwarding, every socket stays open): one interval
  plus ``ping_timeout``;
* **server idle timeout** (the server's ``wait_timeout`` shorter than the interval): the server
  ends the session ``wait_timeout`` after the last check, the next check finds it one interval
  after the last: interval minus ``wait_timeout``, from the moment the server freed the lock
  (a competitor's ``GET_LOCK`` returned) to the report. This is the window in which another
  process holds the lock while the holder has not been told yet.

Otherwise the window is from just before the fault to each victim's ``on_lost`` callback. The
victims each hold a lock from a thread (so a session) of their own, so a check stuck on one
session shows whether the others wait for it. The fault comes at a random phase of the
interval. The benchmark has a throwaway server of its own (it gets killed and paused); the
network faults reach it through ``tests/tcpproxy.py``, the others directly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from PyMySQLLock.testing import ThrowawayServer

from .backends import admin_connect
from .context import RunContext
from .lost import Losses, Victims, own_server
from .report import Column, Section, Target
from .servers import MySQLTarget
from .stats import median

__all__ = ["run"]

#: The Locker's ping_timeout in every run (the default is 10 s; shorter keeps the run short).
PING_TIMEOUT = 1.0
#: Scheduling allowance on top of the documented bound before a window counts as over it.
SLACK = 0.25
#: Seconds to wait for the loss reports past the bound before counting them as missed.
GRACE = 3.0
#: The server's ``wait_timeout`` in the idle-timeout runs (its smallest value).
IDLE_TIMEOUT = 1


@dataclass
class _Scene:
    """What a fault acts on: the server, the proxy (if any), an admin connection, the locks."""

    server: ThrowawayServer
    proxy: Any
    admin: Any
    locks: list[Any]


@dataclass(frozen=True)
class _Fault:
    """One kind of fault: how to cause it, how to heal it, and its documented bound."""

    label: str
    waits_for_answer: bool  # nothing answers: the check waits for the ping timeout
    via_proxy: bool
    cause: Callable[[_Scene], object]
    heal: Callable[[_Scene], object] = lambda scene: None

    def bound(self, interval: float) -> float:
        """The documented window: one interval, plus ``ping_timeout`` when nothing answers."""
        return interval + (PING_TIMEOUT if self.waits_for_answer else 0.0)


def _kill_sessions(scene: _Scene) -> None:
    for connection_id in {lock.connection_id for lock in scene.locks} - {None}:
        scene.admin.cursor().execute(f"KILL CONNECTION {int(connection_id)}")


def _restart(scene: _Scene) -> None:
    scene.server.kill()
    scene.server.start()


FAULTS = (
    _Fault("session killed", False, False, _kill_sessions),
    _Fault("server restart", False, False, _restart),
    _Fault("connection reset", False, True, lambda scene: scene.proxy.sever()),
    _Fault(
        "server hung",
        True,
        False,
        lambda scene: scene.server.pause(),
        lambda scene: scene.server.resume(),
    ),
    _Fault(
        "network black-holed",
        True,
        True,
        lambda scene: scene.proxy.blackhole(),
        lambda scene: scene.proxy.restore(),
    ),
)


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.close()


def _target(server: ThrowawayServer) -> MySQLTarget:
    return MySQLTarget(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.database,
    )


@contextlib.contextmanager
def _proxy(server: ThrowawayServer, wanted: bool) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    # The test suite's proxy: a benchmark runs from the repository, like ``make bench``.
    from tests.tcpproxy import TcpProxy

    with TcpProxy(server.host, server.port) as proxy:
        yield proxy


def _one_run(
    fault: _Fault, driver: str, server: ThrowawayServer, interval: float, victims: int
) -> dict[str, Any]:
    """Hold ``victims`` locks, cause the fault at a random phase, time each loss report."""
    from PyMySQLLock import Locker

    losses = Losses()
    target = _target(server)
    kwargs = target.kwargs()
    with _proxy(server, fault.via_proxy) as proxy, contextlib.ExitStack() as stack:
        if proxy is not None:
            kwargs.update(host=proxy.host, port=proxy.port)
        admin = admin_connect(target)
        stack.callback(_close_quietly, admin)  # a restart has closed it already
        locker = Locker(driver=driver, ping_timeout=PING_TIMEOUT, **kwargs)
        stack.callback(locker.close)
        prefix = f"bench-window-{uuid.uuid4().hex[:12]}-"
        held = Victims(locker, prefix, victims, losses, interval)
        stack.callback(held.close)
        scene = _Scene(server, proxy, admin, held.locks)
        names = {lock.name for lock in held.locks}
        time.sleep(random.uniform(0, interval))  # a random phase of the interval
        early = [name for name in names if name in losses.at]
        began = time.monotonic()
        fault.cause(scene)
        try:
            losses.wait_for(names, began + fault.bound(interval) + GRACE)
        finally:
            fault.heal(scene)
    windows = sorted(losses.at[name] - began for name in names if name in losses.at)
    return {"windows": windows, "missed": len(names) - len(windows), "early": len(early)}


class _Competitor(threading.Thread):
    """Waits in ``GET_LOCK`` for a victim's lock on a connection of its own: it returns the
    moment the server frees the lock."""

    def __init__(self, target: MySQLTarget, name: str) -> None:
        super().__init__(daemon=True)
        self.conn = admin_connect(target)
        self.lock_name = name
        self.granted: float | None = None

    def run(self) -> None:
        try:
            cursor = self.conn.cursor()
            cursor.execute("SELECT GET_LOCK(%s, %s)", (self.lock_name, 30))
            if cursor.fetchall()[0][0] == 1:
                self.granted = time.monotonic()
        finally:
            _close_quietly(self.conn)


def _idle_run(
    driver: str, server: ThrowawayServer, interval: float, victims: int
) -> dict[str, Any]:
    """Victims on sessions with ``wait_timeout`` below their interval; the window runs from the
    server freeing each lock (its competitor's grant) to the victim's ``on_lost``."""
    from PyMySQLLock import Locker

    losses = Losses()
    target = _target(server)
    with contextlib.ExitStack() as stack:
        admin = admin_connect(target)
        stack.callback(_close_quietly, admin)
        cursor = admin.cursor()
        prefix = f"bench-idle-{uuid.uuid4().hex[:12]}-"
        # Connected before the change: they must not be ended while they wait.
        competitors = [_Competitor(target, f"{prefix}{n}") for n in range(victims)]
        cursor.execute("SELECT @@GLOBAL.wait_timeout")
        (usual,) = cursor.fetchall()[0]
        # A session takes the global value when it connects: only the victims' sessions,
        # opened by their acquires, get the short one.
        cursor.execute(f"SET GLOBAL wait_timeout = {IDLE_TIMEOUT}")
        try:
            locker = Locker(driver=driver, ping_timeout=PING_TIMEOUT, **target.kwargs())
            stack.callback(locker.close)
            held = Victims(locker, prefix, victims, losses, interval)
            stack.callback(held.close)
        finally:
            cursor.execute(f"SET GLOBAL wait_timeout = {int(usual)}")
        acquired = time.monotonic()
        for competitor in competitors:
            competitor.start()
        names = {lock.name for lock in held.locks}
        losses.wait_for(names, acquired + interval + GRACE)
        for competitor in competitors:
            competitor.join(30)
    windows = sorted(
        losses.at[c.lock_name] - c.granted
        for c in competitors
        if c.lock_name in losses.at and c.granted is not None
    )
    return {"windows": windows, "missed": len(names) - len(windows), "early": 0}


def _row(
    label: str, bound: float, interval: float, driver: str, reps: list[dict[str, Any]]
) -> dict[str, Any]:
    every = [window for r in reps for window in r["windows"]]
    missed = sum(r["missed"] for r in reps)
    return {
        "fault": label,
        "interval": interval,
        "driver": driver,
        "bound": bound,
        "p50": median(every),
        "max": max(every, default=None),
        "over": max(every) - bound if every and not missed else math.inf,
        "samples": len(every),
        "missed": missed,
        "early": sum(r["early"] for r in reps),
        "reps": reps,
    }


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="windows",
        title=f"Detection windows by fault and refresh interval (ping_timeout {PING_TIMEOUT:g} s)",
        columns=[
            Column("fault", "fault"),
            Column("interval", "interval s", "{:g}"),
            Column("driver", "driver"),
            Column("bound", "documented s", "{:.2f}"),
            Column("p50", "p50 s", "{:.2f}"),
            Column("max", "max s", "{:.2f}"),
            Column("over", "max - bound s", "{:+.2f}"),
            Column("samples", "samples", "{}"),
            Column("missed", "not reported", "{}"),
            Column("early", "false losses", "{}"),
        ],
    )
    intervals = (1.0,) if ctx.quick else (0.5, 1.0, 2.0)
    victims = ctx.size(3, 2)
    cases: list[tuple[str, Callable[[float], float], Callable[..., dict[str, Any]], Any]] = [
        (fault.label, fault.bound, functools.partial(_one_run, fault), intervals)
        for fault in FAULTS
    ]
    cases.append(
        (
            f"server idle timeout (wait_timeout {IDLE_TIMEOUT} s)",
            lambda interval: interval - IDLE_TIMEOUT,
            _idle_run,
            tuple(IDLE_TIMEOUT + interval for interval in intervals),
        )
    )
    with own_server() as (server, _):
        for driver in ctx.drivers:
            worst = -math.inf
            for label, bound, measure, each_interval in cases:
                for interval in each_interval:
                    reps = []
                    for rep in range(ctx.reps):
                        ctx.log(
                            f"windows: {driver} {label}, interval {interval:g} s, "
                            f"rep {rep + 1}/{ctx.reps}"
                        )
                        reps.append(measure(driver, server, interval, victims))
                    row = _row(label, bound(interval), interval, driver, reps)
                    worst = max(worst, row["over"])
                    section.rows.append(row)
            section.targets.append(
                Target(
                    "#11",
                    "every fault reported within its documented window: worst max - bound",
                    driver,
                    worst,
                    SLACK,
                    " s",
                )
            )
    section.notes = [
        (
            "documented: docs/concepts.rst, one interval for a killed session, a restart or a "
            "reset; one interval plus ping_timeout when nothing answers (hung server, "
            "black-holed network); interval minus wait_timeout from the moment the server "
            "freed the lock for an idle timeout. Windows from just before the fault (idle "
            f"timeout: from the server freeing the lock) to on_lost; {victims} "
            "victims per run, each on a session of its own, the fault at a random phase of "
            f"the interval; {ctx.reps} reps. Goal: max - bound <= {SLACK:g} s (scheduling)"
        ),
        (
            "false losses: victims reported lost before the fault; not reported: no on_lost "
            f"within the bound + {GRACE:g} s"
        ),
    ]
    return section
