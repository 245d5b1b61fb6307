"""Target 1: the uncontended acquire+release cycle against the raw driver loop.

All backends run in one spawned process, interleaved: each round runs a short block of cycles
of every backend, and a driver's raw loop and library loop run back to back (in alternating
order). On this kind of VM the round-trip time jumps between two modes about 2x apart
(idle-CPU wake-ups, see ``peer-bench.md``), so only figures taken close together in time are
compared: the ratio to the raw loop is computed per round and its median reported.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .backends import Spec
from .context import RunContext
from .report import Column, Section, Target
from .spawn import CONTEXT, run_spawned
from .stats import median, percentile

__all__ = ["run"]

RATIO_LIMIT = 1.2


def _block(backend: Any, name: str, cycles: int) -> list[int]:
    times = []
    clock = time.perf_counter_ns
    for _ in range(cycles):
        began = clock()
        backend.acquire(name)
        backend.release()
        times.append(clock() - began)
    return times


def _units(specs: list[Spec]) -> list[list[int]]:
    """Spec indexes grouped so that a driver's raw and lib loops run back to back."""
    units: list[list[int]] = []
    pairs: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        if spec.kind in ("raw", "lib", "lib-fenced", "lib-fenced-cursor"):
            if spec.driver not in pairs:
                pairs[spec.driver] = []
                units.append(pairs[spec.driver])
            pairs[spec.driver].append(index)
        else:
            units.append([index])
    return units


def measure(specs: list[Spec], reps: int, rounds: int, blocks: list[int]) -> list[dict[str, Any]]:
    """In a spawned process: per spec, per rep, every cycle's ns and each round's block mean."""
    factories = [spec.factory() for spec in specs]
    try:
        backends = [factory.open() for factory in factories]
        run_id = uuid.uuid4().hex[:12]
        names = [f"bench-cycle-{run_id}-{index}" for index in range(len(specs))]
        for backend, name, size in zip(backends, names, blocks):
            _block(backend, name, max(2 * size, 3))
        units = _units(specs)
        results: list[dict[str, Any]] = [{"cycles": [], "blocks": []} for _ in specs]
        for _rep in range(reps):
            for result in results:
                result["cycles"].append([])
                result["blocks"].append([])
            for number in range(rounds):
                shift = number % len(units)
                for unit in units[shift:] + units[:shift]:
                    ordered = unit if number % 2 == 0 else unit[::-1]
                    for index in ordered:
                        times = _block(backends[index], names[index], blocks[index])
                        results[index]["cycles"][-1].extend(times)
                        results[index]["blocks"][-1].append(sum(times) / len(times))
        return results
    finally:
        for factory in factories:
            factory.close()


def spin(stop: Any) -> None:
    """In a spawned process: keep one CPU busy until ``stop`` is set."""
    while not stop.is_set():
        for _ in range(10_000):
            pass


def _measure_with_spinner(
    specs: list[Spec], reps: int, rounds: int, blocks: list[int]
) -> list[dict[str, Any]]:
    stop = CONTEXT.Event()
    spinner = CONTEXT.Process(target=spin, args=(stop,), daemon=True)
    spinner.start()
    try:
        return run_spawned(measure, specs, reps, rounds, blocks)
    finally:
        stop.set()
        spinner.join(10)
        if spinner.is_alive():
            spinner.kill()
            spinner.join()


def _rows(section: Section, specs: list[Spec], results: list[dict[str, Any]], cpus: str) -> None:
    by_label = {spec.label: result for spec, result in zip(specs, results)}
    for spec, result in zip(specs, results):
        row: dict[str, Any] = {
            "backend": spec.label,
            "cpus": cpus,
            "mean": median(sum(c) / len(c) / 1e3 for c in result["cycles"]),
            "p50": median(percentile(c, 50) / 1e3 for c in result["cycles"]),
            "p99": median(percentile(c, 99) / 1e3 for c in result["cycles"]),
            "ratio": None,
            "overhead": None,
        }
        raw = by_label.get(f"raw/{spec.driver}") if spec.driver else None
        if raw is not None and spec.kind != "raw":
            per_rep_ratio, per_rep_extra = [], []
            for mine, theirs in zip(result["blocks"], raw["blocks"]):
                per_rep_ratio.append(median(a / b for a, b in zip(mine, theirs)))
                per_rep_extra.append(median((a - b) / 1e3 for a, b in zip(mine, theirs)))
            row["ratio"] = median(per_rep_ratio)
            row["overhead"] = median(per_rep_extra)
            row["ratio_reps"] = per_rep_ratio
            if spec.kind == "lib":
                section.targets.append(
                    Target(
                        "T1",
                        "uncontended cycle / raw driver loop",
                        f"{spec.driver}, CPUs {cpus}",
                        row["ratio"],
                        RATIO_LIMIT,
                        "x",
                    )
                )
        section.rows.append(row)


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="cycle",
        title="Uncontended acquire+release cycle (us per cycle)",
        columns=[
            Column("backend", "backend"),
            Column("cpus", "CPUs"),
            Column("mean", "mean us", "{:,.0f}"),
            Column("p50", "p50 us", "{:,.0f}"),
            Column("p99", "p99 us", "{:,.0f}"),
            Column("ratio", "x raw", "{:.2f}"),
            Column("overhead", "+us vs raw", "{:,.0f}"),
        ],
    )
    specs = (
        ctx.mysql_specs(("raw", "lib", "lib-fenced", "lib-fenced-cursor", "cpa")) + ctx.peer_specs()
    )
    block = ctx.size(50, 20)
    # PyMySQL's connect builds a TLS context (~20 ms), the other drivers connect in ~1 ms.
    blocks = [
        (1 if spec.driver == "pymysql" else 3) if spec.kind == "cpa" else block for spec in specs
    ]
    rounds = ctx.size(40, 5)
    ctx.log(f"cycle: {len(specs)} backends, idle CPUs, {ctx.reps} reps x {rounds} rounds")
    _rows(section, specs, run_spawned(measure, specs, ctx.reps, rounds, blocks), "idle")
    busy_specs = ctx.mysql_specs(("raw", "lib", "lib-fenced"))
    ctx.log(f"cycle: {len(busy_specs)} backends, one CPU busy, {ctx.reps} reps x {rounds} rounds")
    busy = _measure_with_spinner(busy_specs, ctx.reps, rounds, [block] * len(busy_specs))
    _rows(section, busy_specs, busy, "1 busy")
    section.details = {
        "rounds": rounds,
        "block_cycles": dict(zip((s.label for s in specs), blocks)),
        "reps": ctx.reps,
    }
    section.notes = [
        (
            "raw = SELECT GET_LOCK(%s, 10) + SELECT RELEASE_LOCK(%s) on one persistent "
            "connection; lib = locker.lock(name) + acquire(timeout=10) + release() on a warm "
            "Locker; lib-fenced = the same with fencing=True (GET_LOCK, the token's INSERT ... "
            "ON DUPLICATE KEY UPDATE, RELEASE_LOCK); lib-fenced-cursor = lib-fenced plus one "
            "SELECT through lock.cursor(), whose session is then closed at release instead of "
            "pooled (so each cycle connects); cpa = connect per acquire with a refresh thread "
            "(PyMySQLLock 0.2.0's strategy)"
        ),
        (
            "x raw and +us: per round (each backend's block next to its raw loop), median over "
            f"rounds, then median over {ctx.reps} reps; us columns: median over reps"
        ),
        (
            "CPUs idle: nothing else runs, and each round trip may pay for waking an idle vCPU "
            "(the mode changes from minute to minute on a VM); 1 busy: a spawned process keeps "
            "one CPU spinning, which removes the wake-ups and leaves the CPU cost of each "
            "side: the steadier comparison"
        ),
        *ctx.peer_notes(),
    ]
    return section
