"""Target 4: 1,000 locks held at once by one process.

Each (driver, rep) runs in a fresh spawned process: it takes 1,000 distinct locks with a 1 s
refresh interval, then idles through several intervals while the keepalive checks them, and
measures threads, memory, the keepalive's CPU time (its thread's own clock) and the server's
count of ``SELECT`` statements (so that the checks are seen to happen). The baselines in the
same process are the limit: raw connections, as many as the library used, and 1,000
``GET_LOCK`` on them; then the same checks sent by the plain driver on those connections.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from .backends import _one_value, _raw_connect, admin_connect
from .context import RunContext
from .procinfo import cpu_seconds, os_threads, rss_bytes
from .report import Column, Section, Target
from .servers import MySQLTarget
from .spawn import run_spawned
from .stats import median

__all__ = ["run"]

MAX_THREADS = 2
MAX_ACQUIRE_SECONDS = 2.0
MAX_KEEPALIVE_CPU = 5.0
INTERVAL = 1.0
#: How often the raw baseline sends a batch of checks (the keepalive's batching window).
BATCH_SECONDS = 0.05


def _selects(admin: Any) -> int:
    cursor = admin.cursor()
    cursor.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
    return int(cursor.fetchall()[0][1])


def _held_on_server(admin: Any, prefix: str) -> int:
    return int(
        _one_value(
            admin.cursor(),
            "SELECT COUNT(DISTINCT TABLE_SCHEMA) FROM information_schema.METADATA_LOCK_INFO "
            "WHERE LOCK_TYPE = 'User lock' AND TABLE_SCHEMA LIKE %s",
            (prefix + "%",),
        )
    )


def _acquire_spread(locks: list[Any]) -> int:
    """Acquire each lock from a thread of its own, all alive at once: the pattern of an
    application whose locks are taken by many worker threads."""
    done = threading.Barrier(len(locks))
    results = [False] * len(locks)

    def take(slot: int) -> None:
        results[slot] = locks[slot].acquire(timeout=10)
        done.wait(60)

    threads = [threading.Thread(target=take, args=(slot,)) for slot in range(len(locks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results)


def _raw_checks(connections: list[Any], prefix: str, count: int, window: float) -> float:
    """The keepalive's limit: the same checks, ``count`` per interval, sent by the plain driver.

    One blocking ``SELECT IS_USED_LOCK(...) = CONNECTION_ID()`` at a time, in batches every
    :data:`BATCH_SECONDS` as the keepalive runs them, each on the connection whose lock it
    proves (the raw locks are spread over the connections as in the raw acquire).

    :returns: this thread's CPU seconds per second of window.
    """
    per_batch = max(1, round(count * BATCH_SECONDS / INTERVAL))
    cursors = [conn.cursor() for conn in connections]
    cpu_before = time.thread_time()
    began = time.monotonic()
    sent = 0
    while time.monotonic() - began < window:
        for _ in range(per_batch):
            n = sent % count
            _one_value(
                cursors[n % len(cursors)],
                "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()",
                (f"{prefix}raw-{n}",),
            )
            sent += 1
        time.sleep(max(0.0, began + sent * INTERVAL / count - time.monotonic()))
    return (time.thread_time() - cpu_before) / (time.monotonic() - began)


def measure(
    driver: str, target: MySQLTarget, count: int, window: float, server_pid: int, spread: bool
) -> dict[str, Any]:
    """In a spawned process: hold ``count`` locks through ``window`` seconds, then the baseline.

    :param spread: take each lock from a thread of its own instead of all from the main thread
        (each lock has a session of its own either way).
    """
    from PyMySQLLock import Locker

    admin = admin_connect(target)
    prefix = f"bench-scale-{uuid.uuid4().hex[:12]}-"
    threads_before = os_threads()
    locker = Locker(driver=driver, **target.kwargs())
    rss_before = rss_bytes()
    locks = [locker.lock(f"{prefix}{n}", refresh_interval_secs=INTERVAL) for n in range(count)]
    began = time.perf_counter()
    acquired = _acquire_spread(locks) if spread else sum(lock.acquire(timeout=10) for lock in locks)
    acquire_seconds = time.perf_counter() - began
    rss_held = rss_bytes()
    # The kernel may still count a joined thread for a moment: the library's threads are the
    # Python threads besides the main one (the kernel's count is kept as a cross-check).
    helpers = [t for t in threading.enumerate() if t is not threading.main_thread()]
    library_threads = len(helpers)
    os_threads_added = os_threads() - threads_before
    sessions = len({lock.connection_id for lock in locks})
    clocks = [time.pthread_getcpuclockid(t.ident) for t in helpers if t.ident is not None]
    selects_before = _selects(admin)
    server_cpu_before = cpu_seconds(server_pid)
    thread_cpu_before = sum(time.clock_gettime(clock) for clock in clocks)
    process_cpu_before = time.process_time()
    window_began = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - window_began
    thread_cpu = sum(time.clock_gettime(clock) for clock in clocks) - thread_cpu_before
    process_cpu = time.process_time() - process_cpu_before
    server_cpu = cpu_seconds(server_pid) - server_cpu_before
    selects = _selects(admin) - selects_before - 1  # minus the measuring statement's own
    held_client = sum(lock.locked() for lock in locks)
    lost = sum(lock.lost for lock in locks)
    held_server = _held_on_server(admin, prefix)
    began = time.perf_counter()
    for lock in locks:
        lock.release()
    release_seconds = time.perf_counter() - began
    locker.close()
    # The limit, on as many connections as the library used: connect + GET_LOCK, nothing else.
    # PyMySQL is told to skip building a TLS context (~20 ms a connect here), which the
    # library avoids by reusing its first one.
    extra = {"ssl_disabled": True} if driver == "pymysql" else {}
    began = time.perf_counter()
    connections: list[Any] = []
    for n in range(count):
        if len(connections) < sessions:
            connections.append(_raw_connect(driver, target, **extra))
        cursor = connections[n % sessions].cursor()
        _one_value(cursor, "SELECT GET_LOCK(%s, 10)", (f"{prefix}raw-{n}",))
    raw_seconds = time.perf_counter() - began
    raw_check_cpu = _raw_checks(connections, prefix, count, min(window, 3.0))
    for conn in connections:
        conn.close()
    admin.close()
    return {
        "acquired": acquired,
        "acquire_s": acquire_seconds,
        "release_s": release_seconds,
        "raw_acquire_s": raw_seconds,
        "threads": library_threads,
        "sessions": sessions,
        "os_threads_added": os_threads_added,
        "rss_per_lock_kib": (rss_held - rss_before) / count / 1024,
        "keepalive_cpu_pct": 100 * thread_cpu / elapsed,
        "raw_check_cpu_pct": 100 * raw_check_cpu,
        "process_cpu_pct": 100 * process_cpu / elapsed,
        "server_cpu_pct": 100 * server_cpu / elapsed,
        "checks_per_lock_interval": selects / count / (elapsed / INTERVAL),
        "held_client": held_client,
        "held_server": held_server,
        "lost": lost,
        "window_s": elapsed,
    }


def keepalive_ratio(reps: list[dict[str, Any]]) -> float:
    """:returns: the keepalive's CPU over the raw checks' CPU, per rep, median over reps."""
    return median(r["keepalive_cpu_pct"] / r["raw_check_cpu_pct"] for r in reps)


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    count = ctx.size(1000, 200)
    window = ctx.size(35, 22) / 10  # seconds: several refresh intervals
    section = Section(
        name="scale",
        title=f"{count:,} locks held by one process (refresh interval {INTERVAL:g} s)",
        columns=[
            Column("driver", "driver"),
            Column("taken_by", "taken by"),
            Column("acquire_s", "acquire all s", "{:.2f}"),
            Column("ratio", "x raw", "{:.2f}"),
            Column("release_s", "release all s", "{:.2f}"),
            Column("threads", "lib threads", "{:.0f}"),
            Column("sessions", "sessions", "{:,.0f}"),
            Column("rss_per_lock_kib", "RSS/lock KiB", "{:.1f}"),
            Column("keepalive_cpu_pct", "keepalive CPU %", "{:.1f}"),
            Column("raw_check_cpu_pct", "raw checks CPU %", "{:.1f}"),
            Column("keepalive_ratio", "keepalive x raw", "{:.2f}"),
            Column("server_cpu_pct", "server CPU %", "{:.1f}"),
            Column("checks_per_lock_interval", "checks/lock/interval", "{:.2f}"),
            Column("held", "held after", "{}"),
        ],
    )
    variants = [(driver, spread) for driver in ctx.drivers for spread in (False, True)]
    for driver, spread in variants:
        taken_by = f"{count:,} threads" if spread else "1 thread"
        reps = []
        for rep in range(ctx.reps):
            ctx.log(f"scale: {driver}, taken by {taken_by}, rep {rep + 1}/{ctx.reps}")
            reps.append(
                run_spawned(measure, driver, ctx.mysql, count, window, ctx.mysql_pid, spread)
            )
        keys = (
            "acquire_s",
            "release_s",
            "threads",
            "rss_per_lock_kib",
            "keepalive_cpu_pct",
            "raw_check_cpu_pct",
            "process_cpu_pct",
            "sessions",
            "server_cpu_pct",
            "checks_per_lock_interval",
        )
        row: dict[str, Any] = {
            "driver": driver,
            "taken_by": taken_by,
            **{k: median(r[k] for r in reps) for k in keys},
        }
        row["ratio"] = median(r["acquire_s"] / r["raw_acquire_s"] for r in reps)
        row["keepalive_ratio"] = keepalive_ratio(reps)
        held = min(min(r["held_client"], r["held_server"]) for r in reps)
        row["held"] = f"{held}/{count}" + (
            f" ({max(r['lost'] for r in reps)} lost)" if any(r["lost"] for r in reps) else ""
        )
        row["reps"] = reps
        section.rows.append(row)
        scope = f"{driver}, taken by {taken_by}"
        section.targets += [
            Target("T4", "library threads", scope, max(r["threads"] for r in reps), MAX_THREADS),
            Target("T4", "acquire all", scope, row["acquire_s"], MAX_ACQUIRE_SECONDS, " s"),
            Target("T4", "locks still held (fewest of reps)", scope, held, count, at_least=True),
            Target(
                "T4",
                "keepalive CPU of one core",
                scope,
                row["keepalive_cpu_pct"],
                MAX_KEEPALIVE_CPU,
                "%",
            ),
        ]
    section.notes = [
        (
            f"medians over {ctx.reps} reps, each a fresh spawned process; held after = fewest "
            f"locks held (client and server side) after {window:g} s of refresh intervals"
        ),
        (
            "sessions: server connections the locks live on (one per lock); taken by 1 thread, "
            f"or each by its own thread ({count:,} threads "
            "alive at once, ended before the measurement); x raw: acquire-all time over raw "
            f"connect + {count:,} GET_LOCK on as many connections, in the same process (PyMySQL "
            "with ssl_disabled, i.e. without building a TLS context per connect)"
        ),
        (
            "RSS/lock: client RSS growth from the warm Locker to all locks held, over the count; "
            "keepalive CPU: the library threads' own CPU clocks over the window; raw checks "
            f"CPU: the same {count:,} checks per interval sent one at a time by the plain driver "
            "in batches every 50 ms, on the raw connections, in the same process: the limit "
            "(each check is a loopback send that wakes a server thread, which costs more when "
            "the CPUs are idle); keepalive x raw: the one over the other, per rep, median over "
            "reps; server CPU: mariadbd's, for the library's window (the keepalive's checks "
            "dominate it)"
        ),
    ]
    return section
