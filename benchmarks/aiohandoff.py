"""Target A2: how soon an asyncio waiter in another process gets the lock after a release.

As :mod:`benchmarks.handoff`, with asyncio on both sides: the holder is an event loop in this
process, the waiter an event loop in a spawned process, each with the same backends. Per
sample the holder acquires and tells the waiter; the waiter answers and awaits ``acquire()``;
the holder keeps the lock a few milliseconds more (so the waiter is surely waiting), takes
``t0``, awaits ``release()`` and takes ``t0r``; the waiter takes ``t1`` when its acquire
returns. The pipe between the two is read with blocking calls while nothing is in flight.

Backends: the raw asyncio drivers (``GET_LOCK`` waiting on the server), the library on each,
and ``redis.asyncio``'s Lock on the private Redis as the peer, which polls: once with its
default ``sleep=0.1`` and once with ``sleep=0.001``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .aioraw import available_async_drivers, raw_connection, raw_value
from .context import RunContext
from .handoff import COLUMNS, latency_row
from .report import Section, Target
from .spawn import CONTEXT
from .stats import median

__all__ = ["run"]

RATIO_LIMIT = 1.2
_WARMUP = 5
#: Seconds the holder keeps the lock after the waiter said it is about to wait.
HOLD = (0.008, 0.012)
WAIT_SECONDS = 10
#: redis.asyncio's Lock polls: its default sleep between attempts, and a short one.
REDIS_SLEEPS = (0.1, 0.001)


@dataclass(frozen=True)
class AsyncSpec:
    """One backend, picklable for the waiter: ``raw``, ``aio`` or ``redis``."""

    kind: str
    driver: str
    mysql: dict[str, Any]
    redis: tuple[str, int] | None = None
    sleep: float = 0.0

    @property
    def label(self) -> str:
        """The row label."""
        if self.kind == "redis":
            return f"redis.asyncio sleep={self.sleep:g}"
        return f"{self.kind}/{self.driver}"


class _Raw:
    def __init__(self, spec: AsyncSpec) -> None:
        self.spec = spec
        self.name = ""

    async def open(self) -> None:
        self.connection, self.cursor = await raw_connection(self.spec.driver, self.spec.mysql)

    async def acquire(self, name: str) -> None:
        if await raw_value(self.cursor, "SELECT GET_LOCK(%s, %s)", (name, WAIT_SECONDS)) != 1:
            raise RuntimeError(f"GET_LOCK({name!r}) failed")
        self.name = name

    async def release(self) -> None:
        await raw_value(self.cursor, "SELECT RELEASE_LOCK(%s)", (self.name,))

    async def close(self) -> None:
        self.connection.close()


class _Library:
    def __init__(self, spec: AsyncSpec) -> None:
        from PyMySQLLock.aio import AsyncLocker

        self.locker = AsyncLocker(driver=spec.driver, **spec.mysql)

    async def open(self) -> None:
        await self.locker.connect()

    async def acquire(self, name: str) -> None:
        self.lock = self.locker.lock(name)
        if not await self.lock.acquire(timeout=WAIT_SECONDS):
            raise RuntimeError(f"lock {name!r} not acquired")

    async def release(self) -> None:
        await self.lock.release()

    async def close(self) -> None:
        await self.locker.close()


class _Redis:
    def __init__(self, spec: AsyncSpec) -> None:
        import redis.asyncio

        assert spec.redis is not None
        self.client = redis.asyncio.Redis(host=spec.redis[0], port=spec.redis[1])
        self.sleep = spec.sleep

    async def open(self) -> None:
        await self.client.ping()

    async def acquire(self, name: str) -> None:
        self.lock = self.client.lock(
            name, timeout=60, sleep=self.sleep, blocking_timeout=WAIT_SECONDS
        )
        if not await self.lock.acquire():
            raise RuntimeError(f"redis lock {name!r} not acquired")

    async def release(self) -> None:
        await self.lock.release()

    async def close(self) -> None:
        await self.client.aclose()


def _backend(spec: AsyncSpec) -> Any:
    kinds = {"raw": _Raw, "aio": _Library, "redis": _Redis}
    return kinds[spec.kind](spec)


async def _open_all(specs: list[AsyncSpec]) -> list[Any]:
    backends = [_backend(spec) for spec in specs]
    for backend in backends:
        await backend.open()
    return backends


async def _wait_for_names(conn: Connection, specs: list[AsyncSpec]) -> None:
    backends = await _open_all(specs)
    try:
        conn.send("open")
        while True:
            message = conn.recv()
            if message is None:
                break
            index, name = message
            conn.send("ready")
            called = time.monotonic_ns()
            await backends[index].acquire(name)
            acquired = time.monotonic_ns()
            await backends[index].release()
            conn.send((called, acquired))
    finally:
        for backend in backends:
            await backend.close()


def waiter(conn: Connection, specs: list[AsyncSpec]) -> None:
    """The spawned waiter: acquire what the holder names, report when it got it."""
    asyncio.run(_wait_for_names(conn, specs))


async def _hold(
    conn: Connection, specs: list[AsyncSpec], reps: int, samples: int
) -> list[list[list[tuple[float, float, float]]]]:
    """The holder: per spec, per rep, (from release return, from release call, release) ms."""
    backends = await _open_all(specs)
    found: list[list[list[tuple[float, float, float]]]] = [[] for _ in specs]
    try:
        if conn.recv() != "open":
            raise RuntimeError("the waiter did not start")
        run_id = uuid.uuid4().hex[:12]
        for rep in range(reps):
            shift = rep % len(specs)
            order = list(range(len(specs)))
            for index in order[shift:] + order[:shift]:
                name = f"bench-aiohandoff-{run_id}-{index}"
                warmup = _WARMUP if rep == 0 else 0
                kept = []
                for number in range(samples + warmup):
                    backend = backends[index]
                    await backend.acquire(name)
                    conn.send((index, name))
                    if conn.recv() != "ready":
                        raise RuntimeError("the waiter is out of step")
                    await asyncio.sleep(random.uniform(*HOLD))
                    t0 = time.monotonic_ns()
                    await backend.release()
                    t0r = time.monotonic_ns()
                    called, acquired = conn.recv()
                    if number < warmup or called >= t0:  # not waiting yet: not a hand-off
                        continue
                    kept.append(((acquired - t0r) / 1e6, (acquired - t0) / 1e6, (t0r - t0) / 1e6))
                found[index].append(kept)
        conn.send(None)
    finally:
        for backend in backends:
            await backend.close()
    return found


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="aiohandoff",
        title="asyncio: hand-off to a waiting task in another process (ms)",
        columns=list(COLUMNS),
    )
    mysql = ctx.mysql.kwargs()
    specs = [
        AsyncSpec(kind, driver, mysql)
        for driver in available_async_drivers()
        for kind in ("raw", "aio")
    ]
    if ctx.redis is not None:
        where = (ctx.redis.host, ctx.redis.port)
        specs += [AsyncSpec("redis", "", mysql, where, sleep) for sleep in REDIS_SLEEPS]
    samples = ctx.size(100, 10)
    ctx.log(f"aiohandoff: {len(specs)} backends, {ctx.reps} reps x {samples} samples")
    parent, child = CONTEXT.Pipe()
    process = CONTEXT.Process(target=waiter, args=(child, specs), daemon=True)
    process.start()
    try:
        found = asyncio.run(_hold(parent, specs, ctx.reps, samples))
        process.join(30)
    finally:
        if process.is_alive():
            process.kill()
            process.join()
    call_p50s: dict[str, list[float]] = {}
    for spec, reps in zip(specs, found):
        row = latency_row(spec.label, reps)
        call_p50s[spec.label] = row["p50_call_reps"]
        if spec.kind == "aio":
            raw = call_p50s[f"raw/{spec.driver}"]
            # From the release call: always positive, so the ratio is meaningful.
            row["ratio"] = median(a / b for a, b in zip(row["p50_call_reps"], raw) if b > 0)
            section.targets.append(
                Target(
                    "A2",
                    "asyncio hand-off p50 from release() / raw asyncio driver",
                    spec.driver,
                    row["ratio"],
                    RATIO_LIMIT,
                    "x",
                )
            )
        section.rows.append(row)
    dropped = ctx.reps * samples * len(specs) - sum(row["samples"] for row in section.rows)
    section.details = {"hold_seconds": HOLD, "dropped_samples": dropped}
    section.notes = [
        (
            "latency = waiter's acquire() return minus the holder's release() return; 'from "
            "call': minus the start of the release() call; call p50 x raw: that p50 over the "
            "raw driver's, per rep, median over reps"
        ),
        (
            f"percentiles per rep over {samples} samples, median over {ctx.reps} reps; max over "
            f"all; the holder keeps the lock {HOLD[0] * 1e3:.0f}-{HOLD[1] * 1e3:.0f} ms after "
            "the waiter starts waiting; holder and waiter are each one event loop"
        ),
        (
            "raw/<driver>: GET_LOCK(name, 10) and RELEASE_LOCK on one connection of the plain "
            "asyncio driver; aio/<driver>: locker.lock(name) + await acquire(timeout=10) + "
            "await release() on a warm AsyncLocker; redis.asyncio: redis-py's asyncio Lock "
            "on the private Redis, which polls (sleep= between attempts; 0.1 s is its default)"
        ),
        f"samples where the waiter was not yet waiting (dropped): {dropped}",
        *([] if ctx.redis is not None else [f"redis.asyncio skipped: {ctx.redis_skipped}"]),
    ]
    return section
