"""Target 6: how soon a held lock is reported lost.

Two ways to lose a lock, on a throwaway server of this benchmark's own (it gets paused):

* ``KILL CONNECTION`` of the session holding it, from another connection. The victims are held
  each from a thread of its own (every lock has a session of its own anyway; the threads also
  keep the victims' acquires apart from the main thread's), alone and next to 1,000 more locks
  held by the main thread, which must all stay held. Victims are killed one after another at random
  moments, so that the kills fall at every phase of the refresh interval.
* A hung server: ``SIGSTOP`` of the server process. The keepalive's check then waits for an
  answer until the ping timeout; several victims on separate sessions show whether those waits
  add up.

The latency is from just before the KILL (or the SIGSTOP) to the ``on_lost`` callback.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from PyMySQLLock.testing import ThrowawayServer

from .backends import admin_connect
from .context import RunContext
from .report import Column, Section, Target
from .servers import MySQLTarget, mariadb
from .stats import median, percentile

__all__ = ["Losses", "Victims", "own_server", "run"]

INTERVAL = 1.0
KILL_SLACK = 0.5
#: The Locker's ping_timeout in the hung-server runs (the default is 10 s).
PING_TIMEOUT = 1.0


@contextlib.contextmanager
def own_server() -> Iterator[tuple[ThrowawayServer, MySQLTarget]]:
    """A throwaway server for this benchmark alone (it gets paused or killed), with the
    library's log silenced meanwhile: every loss is caused on purpose, and the library's
    warnings would only bury the report."""
    library_log = logging.getLogger("PyMySQLLock")
    level = library_log.level
    library_log.setLevel(logging.CRITICAL)
    server, target = mariadb()
    try:
        yield server, target
    finally:
        server.close()
        library_log.setLevel(level)


class Losses:
    """Records when each lock's ``on_lost`` ran."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._cond = threading.Condition()

    def __call__(self, lock: Any) -> None:
        with self._cond:
            self.at[lock.name] = time.monotonic()
            self._cond.notify_all()

    def wait_for(self, names: set[str], deadline: float) -> None:
        with self._cond:
            while not names <= self.at.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)


def _hold(locker: Any, prefix: str, count: int, losses: Losses) -> list[Any]:
    """Acquire ``count`` locks from the calling thread (the library may put them on one
    session: every lock of a thread shares its connection)."""
    locks = [
        locker.lock(f"{prefix}{n}", refresh_interval_secs=INTERVAL, on_lost=losses)
        for n in range(count)
    ]
    for lock in locks:
        if not lock.acquire(timeout=10):
            raise RuntimeError(f"could not acquire {lock.name}")
    return locks


class Victims:
    """Locks held each from a thread of its own, each on its own session: killing one session
    (or a check waiting on one) tells nothing about the others."""

    def __init__(
        self, locker: Any, prefix: str, count: int, losses: Losses, interval: float = INTERVAL
    ) -> None:
        self.locks = [
            locker.lock(f"{prefix}{n}", refresh_interval_secs=interval, on_lost=losses)
            for n in range(count)
        ]
        self._stop = threading.Event()
        self._ready = threading.Semaphore(0)
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._hold, args=(lock,), daemon=True) for lock in self.locks
        ]
        for thread in self._threads:
            thread.start()
        for _ in self._threads:
            self._ready.acquire()
        if self._errors:
            self.close()
            raise RuntimeError(f"a victim lock was not acquired: {self._errors[0]!r}")

    def _hold(self, lock: Any) -> None:
        try:
            if not lock.acquire(timeout=10):
                raise RuntimeError(f"could not acquire {lock.name}")
        except Exception as exc:  # noqa: BLE001 - handed to the constructor
            self._errors.append(exc)
        finally:
            self._ready.release()
        self._stop.wait()
        if lock.locked():
            lock.release()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _kill_run(driver: str, target: MySQLTarget, bystanders: int, victims: int) -> dict[str, Any]:
    from PyMySQLLock import Locker

    losses = Losses()
    admin = admin_connect(target)
    prefix = f"bench-kill-{uuid.uuid4().hex[:12]}-"
    try:
        with Locker(driver=driver, **target.kwargs()) as locker:
            others = _hold(locker, f"{prefix}b", bystanders, losses)
            held = Victims(locker, f"{prefix}v", victims, losses)
            try:
                killed_at: dict[str, float] = {}
                early: list[str] = []  # reported lost before anything was done to them
                time.sleep(random.uniform(0, INTERVAL))  # a random phase of the interval
                for lock in held.locks:
                    time.sleep(random.uniform(0.05, 0.25))
                    if lock.name in killed_at:
                        continue
                    connection_id = lock.connection_id
                    if connection_id is None:
                        early.append(lock.name)
                        continue
                    now = time.monotonic()
                    # Every lock on that session is lost with it.
                    for each in held.locks + others:
                        if each.connection_id == connection_id:
                            killed_at[each.name] = now
                    admin.cursor().execute(f"KILL CONNECTION {int(connection_id)}")
                names = set(killed_at)
                losses.wait_for(names, time.monotonic() + INTERVAL + KILL_SLACK + 2.0)
            finally:
                held.close()
            latencies = [losses.at[name] - killed_at[name] for name in names if name in losses.at]
            spared = [lock for lock in held.locks + others if lock.name not in names]
            return {
                "latencies": latencies,
                "missed": len(names) - len(latencies),
                "false_losses": sum(
                    lock.lost or not lock.locked() for lock in spared if lock.name not in early
                )
                + len(early),
                "sessions": len({lock.connection_id for lock in others}),
            }
    finally:
        admin.close()


def _hung_run(
    driver: str, server: ThrowawayServer, target: MySQLTarget, victims: int
) -> dict[str, Any]:
    from PyMySQLLock import Locker

    losses = Losses()
    locker = Locker(driver=driver, ping_timeout=PING_TIMEOUT, **target.kwargs())
    try:
        held = Victims(locker, f"bench-hung-{uuid.uuid4().hex[:12]}-", victims, losses)
        try:
            time.sleep(random.uniform(0, INTERVAL))
            paused_at = time.monotonic()
            server.pause()
            try:
                losses.wait_for(
                    {lock.name for lock in held.locks},
                    paused_at + INTERVAL + victims * (PING_TIMEOUT + 1.0) + 2.0,
                )
            finally:
                server.resume()
        finally:
            held.close()
        latencies = sorted(
            losses.at[lock.name] - paused_at for lock in held.locks if lock.name in losses.at
        )
        return {"latencies": latencies, "missed": victims - len(latencies)}
    finally:
        locker.close()


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="lost",
        title=f"Lost-lock detection (refresh interval {INTERVAL:g} s), seconds",
        columns=[
            Column("case", "case"),
            Column("driver", "driver"),
            Column("p50", "p50 s", "{:.2f}"),
            Column("max", "max s", "{:.2f}"),
            Column("limit", "goal s", "{:.1f}"),
            Column("samples", "samples", "{}"),
            Column("missed", "not detected", "{}"),
            Column("false", "false losses", "{}"),
        ],
    )
    many = 1000
    few_victims, many_victims = ctx.size(10, 4), 5
    hung_held = ctx.size(3, 1)
    with own_server() as (server, target):
        for driver in ctx.drivers:
            cases = [(f"KILL {few_victims} of {few_victims} held", 0, few_victims)]
            if not ctx.quick:  # the scale benchmark already holds many locks in a quick run
                cases.append(
                    (f"KILL {many_victims} of {many + many_victims:,} held", many, many_victims)
                )
            for label, bystanders, victims in cases:
                reps = []
                for rep in range(ctx.reps):
                    ctx.log(f"lost: {driver} {label} rep {rep + 1}/{ctx.reps}")
                    reps.append(_kill_run(driver, target, bystanders, victims))
                limit = INTERVAL + KILL_SLACK
                row = {
                    "case": label,
                    "driver": driver,
                    "p50": median(percentile(r["latencies"], 50) for r in reps if r["latencies"]),
                    "max": max((max(r["latencies"]) for r in reps if r["latencies"]), default=None),
                    "limit": limit,
                    "samples": sum(len(r["latencies"]) for r in reps),
                    "missed": sum(r["missed"] for r in reps),
                    "false": sum(r["false_losses"] for r in reps),
                    "reps": reps,
                }
                section.rows.append(row)
                worst = row["max"] if not row["missed"] else float("inf")
                section.targets.append(
                    Target("T6", f"lost after KILL ({label}), worst", driver, worst, limit, " s")
                )
            reps = []
            for rep in range(ctx.reps):
                ctx.log(f"lost: {driver} hung server, {hung_held} held, rep {rep + 1}/{ctx.reps}")
                reps.append(_hung_run(driver, server, target, hung_held))
            limit = INTERVAL + PING_TIMEOUT
            first = [r["latencies"][0] for r in reps if r["latencies"]]
            last = [r["latencies"][-1] for r in reps if len(r["latencies"]) == hung_held]
            section.rows.append(
                {
                    "case": f"SIGSTOP, first of {hung_held}",
                    "driver": driver,
                    "p50": median(first),
                    "max": max(first, default=None),
                    "limit": limit,
                    "samples": len(first),
                    "missed": sum(r["missed"] for r in reps),
                    "false": None,
                    "reps": reps,
                }
            )
            if hung_held > 1:
                section.rows.append(
                    {
                        "case": f"SIGSTOP, last of {hung_held}",
                        "driver": driver,
                        "p50": median(last),
                        "max": max(last, default=None),
                        "limit": limit,
                        "samples": len(last),
                        "missed": sum(r["missed"] for r in reps),
                        "false": None,
                    }
                )
            every = [latency for r in reps for latency in r["latencies"]]
            worst = max(every) if every and not any(r["missed"] for r in reps) else float("inf")
            section.targets.append(
                Target(
                    "T6",
                    f"lost under a hung server (all {hung_held}), worst",
                    driver,
                    worst,
                    limit,
                    " s",
                )
            )
    section.notes = [
        (
            "KILL: victims, each held by a thread (so a session) of its own, killed one by one "
            f"50-250 ms apart; goal: refresh interval + {KILL_SLACK:g} s. p50: median over "
            f"{ctx.reps} reps of each rep's median; max: over all reps; false losses: other "
            "locks of the same Locker (the 1,000 are held by the main thread) reported lost or "
            "not held"
        ),
        (
            f"SIGSTOP: Locker(ping_timeout={PING_TIMEOUT:g}), victims on sessions of their own; "
            "goal: refresh interval + ping timeout for every held lock; the server is resumed "
            "as soon as all are reported (or after a deadline: 'not detected')"
        ),
    ]
    return section
