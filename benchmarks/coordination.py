"""Coordination: leader failover, demotion notice, and a semaphore's hand-off next to a lock's.

* **Failover after SIGKILL**: a leader in a spawned process, a candidate here waiting on the
  server; from just before the SIGKILL to the candidate's ``on_elected``.
* **Failover after KILL CONNECTION** of the leader's session (both candidates here): to the
  successor's ``on_elected``, and to the old leader's ``on_demoted`` (the demotion notice, which
  its keepalive finds within the refresh interval).
* **Hand-off**: a waiter blocked in ``acquire()`` (of a semaphore with every slot taken, or of
  a plain lock) and a holder that releases; from the release call to the waiter's return. The
  holder waits a few milliseconds first so that the waiter surely waits on the server (a
  benchmark's stand-in for work, as in ``handoff``).

The promise checked: a new leader, and the demoted leader's notice, within the refresh interval
plus one second.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

from .backends import admin_connect
from .context import RunContext
from .report import Column, Section, Target
from .servers import MySQLTarget
from .spawn import CONTEXT
from .stats import median, percentile

__all__ = ["run"]

INTERVAL = 1.0
#: The promise: a new leader (and the old one's notice) within the interval plus this.
SLACK = 1.0
HOLD = (0.008, 0.012)
#: The semaphore's waiter needs longer to be waiting on every slot (tries, turnstile, threads).
HOLD_SEMAPHORE = (0.030, 0.040)
LIMIT = 3


def _leader(conn: Connection, driver: str, target: MySQLTarget, name: str) -> None:
    """The spawned leader: campaign, say when elected, wait to be killed."""
    from PyMySQLLock import Locker

    elected = threading.Event()
    with Locker(driver=driver, **target.kwargs()) as locker:
        election = locker.election(
            name, identity="bench-leader", on_elected=lambda term: elected.set()
        )
        with election:
            elected.wait(30)
            conn.send("elected")
            conn.recv()  # never answered: the process is killed


class _Times:
    """When callbacks ran, by key."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._cond = threading.Condition()

    def mark(self, key: str) -> None:
        with self._cond:
            self.at.setdefault(key, time.monotonic())
            self._cond.notify_all()

    def wait(self, key: str, timeout: float) -> float | None:
        with self._cond:
            self._cond.wait_for(lambda: key in self.at, timeout)
            return self.at.get(key)


def _sigkill_sample(driver: str, target: MySQLTarget, locker: Any) -> float | None:
    name = f"bench-el-{uuid.uuid4().hex[:10]}"
    parent, child = CONTEXT.Pipe()
    process = CONTEXT.Process(target=_leader, args=(child, driver, target, name), daemon=True)
    process.start()
    times = _Times()
    try:
        if not parent.poll(60) or parent.recv() != "elected":
            raise RuntimeError("the spawned leader was not elected")
        follower = locker.election(
            name,
            identity="bench-follower",
            on_elected=lambda term: times.mark("elected"),
            refresh_interval_secs=INTERVAL,
        )
        with follower:
            time.sleep(0.2)  # lets the follower's GET_LOCK reach the server
            killed = time.monotonic()
            process.kill()
            elected = times.wait("elected", INTERVAL + SLACK + 10)
        return None if elected is None else elected - killed
    finally:
        process.kill()
        process.join()
        parent.close()
        child.close()


def _kill_session_sample(locker_a: Any, locker_b: Any, admin: Any) -> tuple[float, float] | None:
    name = f"bench-el-{uuid.uuid4().hex[:10]}"
    times = _Times()

    def candidate(locker: Any, who: str) -> Any:
        return locker.election(
            name,
            identity=who,
            on_elected=lambda term: times.mark(f"elected {term.identity}"),
            on_demoted=lambda term: times.mark(f"demoted {term.identity}"),
            refresh_interval_secs=INTERVAL,
        )

    with candidate(locker_a, "a") as first:
        if first.wait_for_leadership(30) is None:
            raise RuntimeError("no leader")
        with candidate(locker_b, "b"):
            time.sleep(random.uniform(0.2, 0.2 + INTERVAL))  # any phase of the interval
            killed = time.monotonic()
            admin.cursor().execute(f"KILL CONNECTION {int(first.lock.connection_id)}")
            elected = times.wait("elected b", INTERVAL + SLACK + 10)
            demoted = times.wait("demoted a", INTERVAL + SLACK + 10)
    if elected is None or demoted is None:
        return None
    return elected - killed, demoted - killed


def _handoff_sample(
    holder: Any, waiter: Any, blockers: list[Any], hold: tuple[float, float]
) -> float:
    """Milliseconds from the holder's release call to the waiter's acquire return."""
    # With a timeout: the last sample's cancelled waits may still hold a slot for a moment.
    for each in [*blockers, holder]:
        if not each.acquire(10):
            raise RuntimeError("the holders could not take every slot")
    returned: list[float] = []

    def wait() -> None:
        waiter.acquire(30)
        returned.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(random.uniform(*hold))
    released = time.monotonic()
    holder.release()
    thread.join(60)
    waiter.release()
    for each in blockers:
        each.release()
    return (returned[0] - released) * 1e3


def _driver_rows(ctx: RunContext, driver: str) -> list[dict[str, Any]]:
    from PyMySQLLock import Locker

    target = ctx.mysql
    samples = ctx.size(10, 2)
    handoffs = ctx.size(100, 10)
    admin = admin_connect(target)
    lockers = [Locker(driver=driver, **target.kwargs()) for _ in range(LIMIT + 1)]
    try:
        sigkill = [_sigkill_sample(driver, target, lockers[0]) for _ in range(samples)]
        killed = [_kill_session_sample(lockers[0], lockers[1], admin) for _ in range(samples)]
        name = f"bench-sem-{uuid.uuid4().hex[:10]}"
        gates = [each.semaphore(name, LIMIT) for each in lockers]
        sem = [
            _handoff_sample(gates[0], gates[-1], gates[1:LIMIT], HOLD_SEMAPHORE)
            for _ in range(handoffs)
        ]
        name = f"bench-lock-{uuid.uuid4().hex[:10]}"
        locks = [lockers[0].lock(name), lockers[-1].lock(name)]
        plain = [_handoff_sample(locks[0], locks[1], [], HOLD) for _ in range(handoffs)]
    finally:
        for each in lockers:
            each.close()
        admin.close()

    def seconds(values: list[float | None], case: str) -> dict[str, Any]:
        found = [value for value in values if value is not None]
        return {
            "case": case,
            "driver": driver,
            "p50": median(found) if found else None,
            "max": max(found) if found else None,
            "missed": len(values) - len(found),
            "samples": len(values),
            "unit": "s",
        }

    def millis(values: list[float], case: str) -> dict[str, Any]:
        return {
            "case": case,
            "driver": driver,
            "p50": percentile(values, 50),
            "max": percentile(values, 90),
            "missed": 0,
            "samples": len(values),
            "unit": "ms (max: p90)",
        }

    return [
        seconds(sigkill, "failover, leader SIGKILLed"),
        seconds([pair and pair[0] for pair in killed], "failover, leader session KILLed"),
        seconds([pair and pair[1] for pair in killed], "demotion notice, session KILLed"),
        millis(sem, f"hand-off, semaphore (limit {LIMIT})"),
        millis(plain, "hand-off, single lock"),
    ]


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="coordination",
        title=f"Leader election and semaphores (refresh interval {INTERVAL:g} s)",
        columns=[
            Column("case", "case"),
            Column("driver", "driver"),
            Column("p50", "p50", "{:.3f}"),
            Column("max", "max", "{:.3f}"),
            Column("unit", "unit"),
            Column("missed", "missed"),
            Column("samples", "samples"),
        ],
    )
    for driver in ctx.drivers:
        ctx.log(f"coordination: {driver}")
        rows = _driver_rows(ctx, driver)
        section.rows.extend(rows)
        for row in rows[:3]:
            if row["max"] is not None:
                section.targets.append(
                    Target(
                        "C1",
                        f"{row['case']} (max) within interval + {SLACK:g} s",
                        driver,
                        row["max"],
                        INTERVAL + SLACK,
                        " s",
                    )
                )
    section.notes = [
        (
            "failover: from just before the SIGKILL or KILL CONNECTION to the successor's "
            "on_elected; demotion notice: to the old leader's on_demoted (found by its keepalive)"
        ),
        (
            "hand-off: from the holder's release() call to the waiter's acquire() return, both in "
            "this process on separate Lockers; the semaphore's waiter is the head waiter, waiting "
            f"on all {LIMIT} slots; max column is p90 for hand-offs"
        ),
        (
            f"the holder keeps the lock {HOLD[0] * 1e3:.0f}-{HOLD[1] * 1e3:.0f} ms "
            f"({HOLD_SEMAPHORE[0] * 1e3:.0f}-{HOLD_SEMAPHORE[1] * 1e3:.0f} ms for the semaphore) "
            "after the waiter starts, so that it waits on the server"
        ),
    ]
    return section
