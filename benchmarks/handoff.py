"""Target 3: how soon a waiter blocked in another process gets the lock after a release.

The holder is this process; the waiter is a spawned process that opens the same backends.
Per sample: the holder acquires and tells the waiter; the waiter answers and calls acquire();
the holder keeps the lock a few milliseconds more so that the waiter is surely blocked on the
server (this is a benchmark of the hand-off, the only place where a sleep stands in for work),
then takes ``t0``, calls release() and takes ``t0r`` when it returns; the waiter takes ``t1``
when its acquire() returns. CLOCK_MONOTONIC is system-wide on Linux, so ``t1 - t0r`` (the
target's definition) and ``t1 - t0`` (release call to acquire return) compare across processes.
"""

from __future__ import annotations

import random
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

from .backends import Spec
from .context import RunContext
from .report import Column, Section, Target
from .spawn import CONTEXT
from .stats import median, percentile

__all__ = ["COLUMNS", "latency_row", "run"]

P50_LIMIT_MS = 1.0
P99_LIMIT_MS = 5.0
_WARMUP = 5
#: Seconds the holder keeps the lock after the waiter said it is about to wait.
HOLD = (0.008, 0.012)
HOLD_CPA_PYMYSQL = (0.030, 0.040)


#: The columns of a hand-off table (here and in :mod:`benchmarks.aiohandoff`).
COLUMNS = (
    Column("backend", "backend"),
    Column("p50", "p50 ms", "{:.2f}"),
    Column("p90", "p90 ms", "{:.2f}"),
    Column("p99", "p99 ms", "{:.2f}"),
    Column("max", "max ms", "{:.2f}"),
    Column("p50_call", "p50 from call", "{:.2f}"),
    Column("release_p50", "release() p50", "{:.2f}"),
    Column("ratio", "call p50 x raw", "{:.2f}"),
    Column("samples", "samples", "{:,}"),
)


def latency_row(label: str, reps: list[list[tuple[float, float, float]]]) -> dict[str, Any]:
    """One backend's row of :data:`COLUMNS` (``ratio`` left to the caller).

    :param reps: per rep, per sample: ms from the release's return, from its call, and the
        release's own duration.
    """
    from_return = [[s[0] for s in rep] for rep in reps]
    p50s = [percentile(values, 50) for values in from_return]
    p50_calls = [percentile([s[1] for s in rep], 50) for rep in reps]
    return {
        "backend": label,
        "p50": median(p50s),
        "p90": median(percentile(values, 90) for values in from_return),
        "p99": median(percentile(values, 99) for values in from_return),
        "max": max(max(values) for values in from_return),
        "p50_call": median(p50_calls),
        "release_p50": median(percentile([s[2] for s in rep], 50) for rep in reps),
        "samples": sum(len(rep) for rep in reps),
        "ratio": None,
        "p50_reps": p50s,
        "p50_call_reps": p50_calls,
    }


def waiter(conn: Connection, specs: list[Spec]) -> None:
    """The spawned waiter: acquire what the holder names, report when it got it."""
    factories = [spec.factory() for spec in specs]
    try:
        backends = [factory.open() for factory in factories]
        conn.send("open")
        while True:
            message = conn.recv()
            if message is None:
                break
            index, name = message
            backend = backends[index]
            conn.send("ready")
            called = time.monotonic_ns()
            backend.acquire(name)
            acquired = time.monotonic_ns()
            backend.release()
            conn.send((called, acquired))
    finally:
        for factory in factories:
            factory.close()


def _sample(
    conn: Connection, backend: Any, index: int, name: str, hold: tuple[float, float]
) -> tuple[int, int, int, int]:
    backend.acquire(name)
    conn.send((index, name))
    if conn.recv() != "ready":
        raise RuntimeError("the waiter is out of step")
    time.sleep(random.uniform(*hold))
    t0 = time.monotonic_ns()
    backend.release()
    t0r = time.monotonic_ns()
    called, acquired = conn.recv()
    return t0, t0r, called, acquired


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="handoff",
        title="Hand-off to a waiter in another process (ms)",
        columns=list(COLUMNS),
    )
    specs = ctx.mysql_specs(("raw", "lib", "cpa")) + ctx.peer_specs()
    samples = ctx.size(100, 10)
    # A few ms of holding lets the waiter block on the server (and the CPUs go idle, as
    # between real hand-offs); the 0.2.0-style waiter with PyMySQL first needs ~20 ms to connect.
    holds = [HOLD_CPA_PYMYSQL if spec.label == "cpa/pymysql" else HOLD for spec in specs]
    ctx.log(f"handoff: {len(specs)} backends, {ctx.reps} reps x {samples} samples")
    parent, child = CONTEXT.Pipe()
    process = CONTEXT.Process(target=waiter, args=(child, specs), daemon=True)
    process.start()
    factories = [spec.factory() for spec in specs]
    # per spec, per rep: (from release return, from release call, release duration) in ms
    found: list[list[list[tuple[float, float, float]]]] = [[] for _ in specs]
    invalid = 0
    try:
        backends = [factory.open() for factory in factories]
        if parent.recv() != "open":
            raise RuntimeError("the waiter did not start")
        run_id = uuid.uuid4().hex[:12]
        for rep in range(ctx.reps):
            order = list(range(len(specs)))
            shift = rep % len(order)
            for index in order[shift:] + order[:shift]:
                name = f"bench-handoff-{run_id}-{index}"
                kept = []
                for number in range(samples + (_WARMUP if rep == 0 else 0)):
                    t0, t0r, called, acquired = _sample(
                        parent, backends[index], index, name, holds[index]
                    )
                    if number < (_WARMUP if rep == 0 else 0):
                        continue
                    if called >= t0:  # the waiter was not waiting yet: not a hand-off
                        invalid += 1
                        continue
                    kept.append(((acquired - t0r) / 1e6, (acquired - t0) / 1e6, (t0r - t0) / 1e6))
                found[index].append(kept)
        parent.send(None)
        process.join(30)
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        for factory in factories:
            factory.close()
    labels = [spec.label for spec in specs]
    p50_by_label: dict[str, list[float]] = {}
    for spec, reps in zip(specs, found):
        row = latency_row(spec.label, reps)
        p50_by_label[spec.label] = row["p50_call_reps"]
        section.rows.append(row)
    for row, spec in zip(section.rows, specs):
        raw = p50_by_label.get(f"raw/{spec.driver}") if spec.driver else None
        if raw is not None and spec.kind != "raw":
            # From the release call: always positive, so the ratio is meaningful.
            row["ratio"] = median(a / b for a, b in zip(row["p50_call_reps"], raw) if b > 0)
        if spec.kind == "lib":
            section.targets.append(
                Target(
                    "T3",
                    "hand-off p50 after release()",
                    spec.driver,
                    row["p50"],
                    P50_LIMIT_MS,
                    " ms",
                )
            )
            section.targets.append(
                Target(
                    "T3",
                    "hand-off p99 after release()",
                    spec.driver,
                    row["p99"],
                    P99_LIMIT_MS,
                    " ms",
                )
            )
    section.details = {
        "hold_seconds": dict(zip(labels, holds)),
        "invalid_samples": invalid,
    }
    section.notes = [
        (
            "latency = waiter's acquire() return minus the holder's release() return (negative "
            "when the waiter wakes before the holder has read RELEASE_LOCK's answer); "
            "'from call': minus the start of the release() call"
        ),
        (
            f"percentiles per rep over {samples} samples, median over {ctx.reps} reps; max "
            f"over all; the holder keeps the lock {HOLD[0] * 1e3:.0f}-{HOLD[1] * 1e3:.0f} ms "
            "after the waiter starts waiting "
            f"({HOLD_CPA_PYMYSQL[0] * 1e3:.0f}-{HOLD_CPA_PYMYSQL[1] * 1e3:.0f} ms for "
            "cpa/pymysql, whose waiter first spends ~20 ms connecting)"
        ),
        f"samples where the waiter was not yet waiting (dropped): {invalid}",
        *ctx.peer_notes(),
    ]
    return section
