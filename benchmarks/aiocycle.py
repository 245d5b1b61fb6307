"""Target A1: the warm asyncio acquire+release cycle against the raw asyncio driver loop.

Per asyncio driver, both loops run in one spawned process and one event loop, interleaved as in
:mod:`benchmarks.cycle`: each round runs a block of raw cycles and a block of library cycles
back to back (in alternating order), and the ratio is taken per round, then its median.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from .aioraw import available_async_drivers, raw_connection
from .context import RunContext
from .report import Column, Section, Target
from .spawn import run_spawned
from .stats import median, percentile

__all__ = ["run"]

RATIO_LIMIT = 1.2


async def _raw_block(cursor: Any, name: str, cycles: int) -> list[int]:
    """The same two statements the library sends, on one connection, rows read as it does."""
    times = []
    clock = time.perf_counter_ns
    for _ in range(cycles):
        began = clock()
        await cursor.execute("SELECT GET_LOCK(%s, %s)", (name, 10))
        await cursor.fetchall()
        await cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
        await cursor.fetchall()
        times.append(clock() - began)
    return times


async def _lib_block(locker: Any, name: str, cycles: int) -> list[int]:
    times = []
    clock = time.perf_counter_ns
    for _ in range(cycles):
        began = clock()
        lock = locker.lock(name)
        await lock.acquire(timeout=10)
        await lock.release()
        times.append(clock() - began)
    return times


async def _measure(
    kwargs: dict[str, Any], drivers: list[str], reps: int, rounds: int, block: int
) -> dict[str, dict[str, Any]]:
    from PyMySQLLock.aio import AsyncLocker

    run_id = uuid.uuid4().hex[:12]
    results: dict[str, dict[str, Any]] = {}
    for driver in drivers:
        connection, cursor = await raw_connection(driver, kwargs)
        locker = AsyncLocker(driver=driver, **kwargs)
        try:
            raw_name, lib_name = f"bench-aio-{run_id}-raw", f"bench-aio-{run_id}-lib"
            await _raw_block(cursor, raw_name, block)  # warm both
            await _lib_block(locker, lib_name, block)
            raw: dict[str, Any] = {"cycles": [], "blocks": []}
            lib: dict[str, Any] = {"cycles": [], "blocks": []}
            for _rep in range(reps):
                for result in (raw, lib):
                    result["cycles"].append([])
                    result["blocks"].append([])
                for number in range(rounds):
                    order = ("raw", "lib") if number % 2 == 0 else ("lib", "raw")
                    for kind in order:
                        if kind == "raw":
                            times = await _raw_block(cursor, raw_name, block)
                            target = raw
                        else:
                            times = await _lib_block(locker, lib_name, block)
                            target = lib
                        target["cycles"][-1].extend(times)
                        target["blocks"][-1].append(sum(times) / len(times))
            results[f"raw/{driver}"] = raw
            results[f"aio/{driver}"] = lib
        finally:
            await locker.close()
            connection.close()
    return results


def measure(
    kwargs: dict[str, Any], drivers: list[str], reps: int, rounds: int, block: int
) -> dict[str, dict[str, Any]]:
    """In a spawned process: per backend, per rep, every cycle's ns and each round's mean."""
    return asyncio.run(_measure(kwargs, drivers, reps, rounds, block))


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="aiocycle",
        title="asyncio: uncontended acquire+release cycle (us per cycle)",
        columns=[
            Column("backend", "backend"),
            Column("mean", "mean us", "{:,.0f}"),
            Column("p50", "p50 us", "{:,.0f}"),
            Column("p99", "p99 us", "{:,.0f}"),
            Column("ratio", "x raw", "{:.2f}"),
            Column("overhead", "+us vs raw", "{:,.0f}"),
        ],
    )
    drivers = available_async_drivers()
    block = ctx.size(50, 20)
    rounds = ctx.size(40, 5)
    ctx.log(f"aiocycle: {', '.join(drivers)}, {ctx.reps} reps x {rounds} rounds")
    results = run_spawned(measure, ctx.mysql.kwargs(), drivers, ctx.reps, rounds, block)
    for label, result in results.items():
        row: dict[str, Any] = {
            "backend": label,
            "mean": median(sum(c) / len(c) / 1e3 for c in result["cycles"]),
            "p50": median(percentile(c, 50) / 1e3 for c in result["cycles"]),
            "p99": median(percentile(c, 99) / 1e3 for c in result["cycles"]),
            "ratio": None,
            "overhead": None,
        }
        kind, _, driver = label.partition("/")
        if kind == "aio":
            raw = results[f"raw/{driver}"]
            ratios = [
                median(a / b for a, b in zip(mine, theirs))
                for mine, theirs in zip(result["blocks"], raw["blocks"])
            ]
            extra = [
                median((a - b) / 1e3 for a, b in zip(mine, theirs))
                for mine, theirs in zip(result["blocks"], raw["blocks"])
            ]
            row["ratio"] = median(ratios)
            row["overhead"] = median(extra)
            row["ratio_reps"] = ratios
            section.targets.append(
                Target(
                    "A1",
                    "warm asyncio cycle / raw asyncio driver loop",
                    driver,
                    row["ratio"],
                    RATIO_LIMIT,
                    "x",
                )
            )
        section.rows.append(row)
    section.details = {"rounds": rounds, "block_cycles": block, "reps": ctx.reps}
    section.notes = [
        (
            "raw = SELECT GET_LOCK(%s, 10) + SELECT RELEASE_LOCK(%s) through the driver's "
            "cursor on one persistent connection; aio = locker.lock(name) + await "
            "acquire(timeout=10) + await release() on a warm AsyncLocker; both in the same "
            "event loop of one process"
        ),
        (
            "x raw and +us: per round (the two blocks back to back), median over rounds, then "
            f"median over {ctx.reps} reps"
        ),
    ]
    return section
