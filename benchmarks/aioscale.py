"""Target A3: 10,000 locks held by one process on one event loop (the asyncio API).

Per asyncio driver and rep, in a fresh spawned process with one event loop: one AsyncLocker
takes ``count`` distinct locks (at most :data:`CONCURRENCY` acquires under way at once, as an
application's tasks would), holds them through three refresh intervals while its keepalive
checks every one, has the server ``KILL`` five of their sessions and times how soon each loss is
reported, then releases all. The limit, in a fresh process of its own (before the library's in
every other rep): the raw driver opens as many connections with the same concurrency and takes
``GET_LOCK`` on each, then sends the keepalive's checks itself, at the same rate, on those
connections.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import threading
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Callable, TypeVar

from .aioraw import available_async_drivers, raw_connection, raw_value
from .context import RunContext
from .procinfo import cpu_seconds, os_threads, rss_bytes
from .report import Column, Section, Target
from .spawn import run_spawned
from .stats import median

__all__ = ["run"]

T = TypeVar("T")

ACQUIRE_RATIO_LIMIT = 1.3
KEEPALIVE_RATIO_LIMIT = 1.2
#: Seconds between two checks of a lock (the library's default); the window is
#: :data:`INTERVALS` of them. A shorter one would have the checks of the first locks compete
#: with the acquires of the last (10,000 locks every 2 s is more than two CPUs keep up with).
INTERVAL = 10.0
#: The interval of a --quick run: a smoke test of the code, not of the figures.
QUICK_INTERVAL = 1.0
INTERVALS = 3
#: Seconds the keepalive window (and the raw checks') lasts beyond its intervals.
WINDOW_EXTRA = 0.5
#: Reps of this benchmark at most (each takes about two minutes): three, so that the median
#: is not moved by one rep that a busy period of the machine slowed down.
MAX_REPS = 3
#: Acquires (and raw connects) under way at once.
CONCURRENCY = 64
#: Sessions the server kills while the locks are held; each loss must be seen in time.
KILLED = 5
#: How often the raw baseline sends a batch of checks (as the blocking keepalive batches them).
BATCH_SECONDS = 0.05
STILL_HELD = "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()"


def _raise_file_limit(need: int) -> None:
    """One descriptor per connection: raise the soft limit as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _bounded(count: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """``make(0) ... make(count - 1)``, at most :data:`CONCURRENCY` under way at once."""
    results: list[Any] = [None] * count
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            results[number] = await make(number)

    await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, count))))
    return results


async def _status(cursor: Any, variable: str) -> int:
    await cursor.execute("SHOW GLOBAL STATUS LIKE %s", (variable,))
    return int((await cursor.fetchall())[0][1])


async def _held_on_server(cursor: Any, prefix: str) -> int:
    return int(
        await raw_value(
            cursor,
            "SELECT COUNT(DISTINCT TABLE_SCHEMA) FROM information_schema.METADATA_LOCK_INFO "
            "WHERE LOCK_TYPE = 'User lock' AND TABLE_SCHEMA LIKE %s",
            (prefix + "%",),
        )
    )


async def _until_disconnected(cursor: Any, at_most: int, seconds: float = 60.0) -> None:
    """Wait until the server has let go of the closed sessions (their slots count)."""
    deadline = time.monotonic() + seconds
    while await _status(cursor, "Threads_connected") > at_most and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def _raw_checks(cursors: list[Any], prefix: str, interval: float) -> float:
    """The keepalive's limit: the same checks, one per lock per interval, by the plain driver.

    Every :data:`BATCH_SECONDS` a batch of checks is sent at once, each on the connection of
    the lock it proves, as the keepalive does; for as long as the library's window (a window
    of one interval measured a ratio that moved by 0.1 from one run to the next).

    :returns: the process's CPU seconds per second of window.
    """
    count = len(cursors)
    per_batch = max(1, round(count * BATCH_SECONDS / interval))
    loop = asyncio.get_running_loop()
    cpu_before = time.process_time()
    began = loop.time()
    sent = 0
    while loop.time() - began < INTERVALS * interval + WINDOW_EXTRA:
        numbers = [(sent + k) % count for k in range(per_batch)]
        await asyncio.gather(
            *(raw_value(cursors[n], STILL_HELD, (f"{prefix}raw-{n}",)) for n in numbers)
        )
        sent += per_batch
        await asyncio.sleep(max(0.0, began + sent * interval / count - loop.time()))
    return (time.process_time() - cpu_before) / (loop.time() - began)


async def _measure(
    driver: str, kwargs: dict[str, Any], count: int, interval: float, server_pid: int
) -> Any:
    from PyMySQLLock.aio import AsyncLocker

    loop = asyncio.get_running_loop()
    prefix = f"bench-aioscale-{uuid.uuid4().hex[:12]}-"
    admin, admin_cursor = await raw_connection(driver, kwargs)
    threads_before = os_threads()
    locker = AsyncLocker(driver=driver, **kwargs)
    await locker.connect()
    rss_before = rss_bytes()
    lost_at: dict[str, float] = {}

    def on_lost(lock: Any) -> None:
        lost_at.setdefault(lock.name, loop.time())

    locks = [
        locker.lock(f"{prefix}{n}", refresh_interval_secs=interval, on_lost=on_lost)
        for n in range(count)
    ]
    # Each part starts from a full collection, so that neither inherits the other's garbage
    # nor a collector tuned to the other's heap.
    gc.collect()
    began = time.perf_counter()
    acquired = sum(await _bounded(count, lambda n: locks[n].acquire(timeout=60)))
    acquire_seconds = time.perf_counter() - began
    rss_held = rss_bytes()
    threads_added = os_threads() - threads_before
    python_threads = threading.active_count() - 1
    sessions = len({lock.connection_id for lock in locks})

    gc.collect()
    selects_before = await _status(admin_cursor, "Com_select")
    server_cpu_before = cpu_seconds(server_pid)
    cpu_before = time.process_time()
    window_began = loop.time()
    await asyncio.sleep(INTERVALS * interval + WINDOW_EXTRA)
    elapsed = loop.time() - window_began
    keepalive_cpu = time.process_time() - cpu_before
    server_cpu = cpu_seconds(server_pid) - server_cpu_before
    selects = await _status(admin_cursor, "Com_select") - selects_before - 1
    held_client = sum(lock.locked() for lock in locks)
    held_server = await _held_on_server(admin_cursor, prefix)

    # KILL a few sessions, spread over the locks; each loss must be reported in time.
    victims = [locks[n * count // KILLED] for n in range(KILLED)]
    killed_at: dict[str, float] = {}
    for lock in victims:
        killed_at[lock.name] = loop.time()
        await admin_cursor.execute("KILL %s", (lock.connection_id,))
    deadline = loop.time() + interval + 10
    while len(lost_at) < KILLED and loop.time() < deadline:
        await asyncio.sleep(0.01)
    detections = [lost_at[name] - killed_at[name] for name in killed_at if name in lost_at]
    missed = KILLED - len(detections)
    unexpected = sorted(set(lost_at) - set(killed_at))

    began = time.perf_counter()
    await _bounded(count, lambda n: locks[n].release())
    release_seconds = time.perf_counter() - began
    await locker.close()
    await _until_disconnected(admin_cursor, 50)
    admin.close()
    return {
        "acquired": acquired,
        "acquire_s": acquire_seconds,
        "release_s": release_seconds,
        "sessions": sessions,
        "threads_added": threads_added,
        "python_threads": python_threads,
        "rss_per_lock_kib": (rss_held - rss_before) / count / 1024,
        "keepalive_cpu_pct": 100 * keepalive_cpu / elapsed,
        "server_cpu_pct": 100 * server_cpu / elapsed,
        "checks_per_lock_interval": selects / count / (elapsed / interval),
        "held_client": held_client,
        "held_server": held_server,
        "detect_max_s": max(detections) if detections else None,
        "detect_missed": missed,
        "unexpected_losses": len(unexpected),
        "window_s": elapsed,
    }


async def _measure_raw(driver: str, kwargs: dict[str, Any], count: int, interval: float) -> Any:
    """The limit: as many raw connections, each taking one GET_LOCK, with the same concurrency;
    then the keepalive's checks sent by the plain driver on them."""
    prefix = f"bench-aioscale-{uuid.uuid4().hex[:12]}-"
    admin, admin_cursor = await raw_connection(driver, kwargs)

    async def raw_take(number: int) -> tuple[Any, Any]:
        connection, cursor = await raw_connection(driver, kwargs)
        await raw_value(cursor, "SELECT GET_LOCK(%s, 10)", (f"{prefix}raw-{number}",))
        return connection, cursor

    gc.collect()
    began = time.perf_counter()
    raw = await _bounded(count, raw_take)
    raw_seconds = time.perf_counter() - began
    gc.collect()
    raw_check_cpu = await _raw_checks([cursor for _, cursor in raw], prefix, interval)
    for connection, _ in raw:
        connection.close()
    await _until_disconnected(admin_cursor, 50)
    admin.close()
    return {"raw_acquire_s": raw_seconds, "raw_check_cpu_pct": 100 * raw_check_cpu}


def measure(
    library: bool,
    driver: str,
    kwargs: dict[str, Any],
    count: int,
    interval: float,
    server_pid: int,
) -> dict[str, Any]:
    """In a spawned process: hold ``count`` locks on one event loop, or the raw baseline.

    Each in a fresh process of its own: the first to open 10,000 connections in a process
    pays for the memory it touches first (a quarter of a megabyte per asyncmy connection),
    the second would reuse it.
    """
    _raise_file_limit(count + 200)
    # The five KILLed locks are lost on purpose: their warnings are not news.
    logging.getLogger("PyMySQLLock").setLevel(logging.ERROR)
    part = (
        _measure(driver, kwargs, count, interval, server_pid)
        if library
        else _measure_raw(driver, kwargs, count, interval)
    )
    result: dict[str, Any] = asyncio.run(part)
    return result


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    count = ctx.size(10_000, 500)
    interval = INTERVAL if not ctx.quick else QUICK_INTERVAL
    section = Section(
        name="aioscale",
        title=f"asyncio: {count:,} locks held by one process on one event loop "
        f"(refresh interval {interval:g} s)",
        columns=[
            Column("driver", "driver"),
            Column("acquire_s", "acquire all s", "{:.2f}"),
            Column("raw_acquire_s", "raw s", "{:.2f}"),
            Column("ratio", "x raw", "{:.2f}"),
            Column("release_s", "release all s", "{:.2f}"),
            Column("sessions", "sessions", "{:,.0f}"),
            Column("threads_added", "threads added", "{:.0f}"),
            Column("rss_per_lock_kib", "RSS/lock KiB", "{:.1f}"),
            Column("keepalive_cpu_pct", "keepalive CPU %", "{:.1f}"),
            Column("raw_check_cpu_pct", "raw checks CPU %", "{:.1f}"),
            Column("keepalive_ratio", "keepalive x raw", "{:.2f}"),
            Column("server_cpu_pct", "server CPU %", "{:.1f}"),
            Column("checks_per_lock_interval", "checks/lock/interval", "{:.2f}"),
            Column("held", "held after", "{}"),
            Column("detect_max_s", "KILL seen s (max)", "{:.2f}"),
        ],
    )
    drivers = available_async_drivers()
    rep_count = min(ctx.reps, MAX_REPS)
    for driver in drivers:
        reps = []
        for rep in range(rep_count):
            ctx.log(f"aioscale: {driver}, {count:,} locks, rep {rep + 1}/{rep_count}")
            # The library first in one rep, the raw driver first in the next.
            result: dict[str, Any] = {}
            for library in (True, False) if rep % 2 == 0 else (False, True):
                result.update(
                    run_spawned(
                        measure,
                        library,
                        driver,
                        ctx.mysql.kwargs(),
                        count,
                        interval,
                        ctx.mysql_pid,
                    )
                )
            reps.append(result)
        keys = (
            "acquire_s",
            "raw_acquire_s",
            "release_s",
            "sessions",
            "threads_added",
            "rss_per_lock_kib",
            "keepalive_cpu_pct",
            "raw_check_cpu_pct",
            "server_cpu_pct",
            "checks_per_lock_interval",
        )
        row: dict[str, Any] = {"driver": driver, **{k: median(r[k] for r in reps) for k in keys}}
        row["ratio"] = median(r["acquire_s"] / r["raw_acquire_s"] for r in reps)
        row["keepalive_ratio"] = median(
            r["keepalive_cpu_pct"] / r["raw_check_cpu_pct"] for r in reps
        )
        held = min(min(r["held_client"], r["held_server"]) for r in reps)
        missed = sum(r["detect_missed"] for r in reps)
        unexpected = sum(r["unexpected_losses"] for r in reps)
        row["held"] = f"{held:,}/{count:,}" + (f" ({unexpected} lost)" if unexpected else "")
        detected = [r["detect_max_s"] for r in reps if r["detect_max_s"] is not None]
        row["detect_max_s"] = max(detected) if detected and not missed else None
        row["reps"] = reps
        section.rows.append(row)
        section.targets += [
            Target(
                "A3",
                f"acquire {count:,} / raw driver connect + GET_LOCK",
                driver,
                row["ratio"],
                ACQUIRE_RATIO_LIMIT,
                "x",
            ),
            Target("A3", "threads added", driver, max(r["threads_added"] for r in reps), 0),
            Target(
                "A3",
                "keepalive CPU / the same checks by the raw driver",
                driver,
                row["keepalive_ratio"],
                KEEPALIVE_RATIO_LIMIT,
                "x",
            ),
            Target(
                "A3",
                f"locks still held after {INTERVALS} intervals (fewest of reps)",
                driver,
                held,
                count,
                at_least=True,
            ),
            Target(
                "A3",
                f"KILL of {KILLED} sessions reported (slowest, s)",
                driver,
                row["detect_max_s"],
                interval + 1,
                " s",
            ),
        ]
    section.details = {
        "count": count,
        "interval_s": interval,
        "concurrency": CONCURRENCY,
        "killed": KILLED,
        "reps": rep_count,
    }
    section.notes = [
        (
            f"medians over {rep_count} reps (at most {MAX_REPS}: each takes two minutes or "
            "more); the library and the raw driver each in a fresh spawned process with one "
            "event loop, the library first in odd reps and the raw driver in even ones; "
            f"acquire all: {count:,} locks of one AsyncLocker, at most {CONCURRENCY} acquires "
            f"under way at once; raw: the plain driver opens {count:,} connections (same "
            "concurrency) and sends GET_LOCK on each; x raw: the one over the other, per rep"
        ),
        (
            "sessions: server connections the locks live on; threads added: the kernel's "
            "count of the process's threads with all locks held minus before the AsyncLocker "
            "(fewer than zero never; the figure is the largest of the reps); RSS/lock: client "
            "RSS growth from the connected AsyncLocker to all locks held, over the count"
        ),
        (
            f"keepalive CPU: the process's CPU over {INTERVALS} intervals + {WINDOW_EXTRA:g} s "
            "while the "
            "locks are only held (the keepalive's timer and check tasks are all that runs); raw "
            f"checks CPU: the same {count:,} checks per interval ({STILL_HELD}) sent by the "
            f"plain driver over a window as long, in concurrent batches every "
            f"{BATCH_SECONDS * 1e3:.0f} ms, each on its lock's connection; keepalive x raw: "
            "the one over the other, per rep; server CPU: mariadbd's over the library's window"
        ),
        (
            f"held after: fewest locks held (client and server side) after the window; KILL "
            f"seen: after the window the server kills {KILLED} of the sessions, and the time "
            "from each KILL to its on_lost call, slowest of all reps (limit: interval + 1 s)"
        ),
    ]
    return section
