"""Where the library's own time goes in the uncontended cycle (cProfile, per driver).

The warm library cycle and the raw driver loop (the same two statements on the same driver)
are profiled in the same spawned process, and their per-function times are subtracted: what
is left is what the library adds on top of the two round trips. cProfile inflates the cost of
Python calls, so the absolute figures are larger than in the ``cycle`` benchmark; the ranking
and the calls per cycle are what matter.
"""

from __future__ import annotations

import cProfile
import pstats
import uuid
from typing import Any

from .backends import Spec
from .context import RunContext
from .report import Column, Section
from .spawn import run_spawned
from .stats import median

__all__ = ["run"]

_TOP = 12


def _label(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function  # a built-in: "{method 'release' of '_thread.lock' objects}"
    marker = "/PyMySQLLock/"
    if marker in filename:
        filename = "PyMySQLLock/" + filename.split(marker, 1)[1]
    else:
        filename = filename.rsplit("/", 1)[-1]
    return f"{filename}:{line}({function})"


def _profile(pairs: list[tuple[Any, cProfile.Profile]], name: str, cycles: int) -> None:
    """Profile each backend in turn, in small chunks, so that both see the same CPU modes."""
    chunk = 50
    for _ in range(0, cycles, chunk):
        for backend, profiler in pairs:
            profiler.enable()
            for _ in range(chunk):
                backend.acquire(name)
                backend.release()
            profiler.disable()


def measure(specs: list[Spec], cycles: int, reps: int) -> list[dict[str, Any]]:
    """In a spawned process: profile lib and raw ``reps`` times each, alternating."""
    lib_factory, raw_factory = specs[0].factory(), specs[1].factory()
    try:
        lib, raw = lib_factory.open(), raw_factory.open()
        name = f"bench-profile-{uuid.uuid4().hex[:12]}"
        for backend in (lib, raw):
            for _ in range(200):
                backend.acquire(name)
                backend.release()
        out = []
        for rep in range(reps):
            lib_profiler, raw_profiler = cProfile.Profile(), cProfile.Profile()
            pairs = [(lib, lib_profiler), (raw, raw_profiler)]
            _profile(pairs if rep % 2 == 0 else pairs[::-1], name, cycles)
            lib_stats, raw_stats = pstats.Stats(lib_profiler), pstats.Stats(raw_profiler)
            lib_table: dict[Any, Any] = lib_stats.stats  # type: ignore[attr-defined]
            raw_table: dict[Any, Any] = raw_stats.stats  # type: ignore[attr-defined]
            extra = []
            for key, (_cc, calls, tottime, _cum, _callers) in lib_table.items():
                theirs = raw_table.get(key, (0, 0, 0.0, 0.0, {}))
                extra.append(
                    {
                        "function": _label(key),
                        "us_per_cycle": (tottime - theirs[2]) / cycles * 1e6,
                        "calls_per_cycle": (calls - theirs[1]) / cycles,
                    }
                )
            # A function called as often in both loops is the driver doing the same work; its
            # time differs only by noise (how long the server took to answer). What the
            # library adds is what it calls more often.
            extra = [item for item in extra if item["calls_per_cycle"] > 0]
            extra.sort(key=lambda item: item["us_per_cycle"], reverse=True)
            out.append(
                {
                    "lib_us": lib_stats.total_tt / cycles * 1e6,  # type: ignore[attr-defined]
                    "raw_us": raw_stats.total_tt / cycles * 1e6,  # type: ignore[attr-defined]
                    "lib_calls": lib_stats.total_calls / cycles,  # type: ignore[attr-defined]
                    "raw_calls": raw_stats.total_calls / cycles,  # type: ignore[attr-defined]
                    "top": extra[:_TOP],
                }
            )
        return out
    finally:
        lib_factory.close()
        raw_factory.close()


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="profile",
        title="Profile of the warm cycle: what the library adds to the raw loop (cProfile)",
        columns=[
            Column("driver", "driver"),
            Column("lib_us", "lib us", "{:.0f}"),
            Column("raw_us", "raw us", "{:.0f}"),
            Column("share", "library share %", "{:.0f}"),
            Column("lib_calls", "calls/cycle lib", "{:.0f}"),
            Column("raw_calls", "calls/cycle raw", "{:.0f}"),
            Column("top", "largest additions (us/cycle, profiled)", "{}"),
        ],
    )
    cycles = ctx.size(3000, 300)  # a multiple of the 50-cycle chunks
    for driver in ctx.drivers:
        ctx.log(f"profile: {driver}, {ctx.reps} reps x {cycles} cycles")
        specs = [Spec("lib", driver, ctx.mysql), Spec("raw", driver, ctx.mysql)]
        reps = run_spawned(measure, specs, cycles, ctx.reps)
        row: dict[str, Any] = {"driver": driver}
        for key in ("lib_us", "raw_us", "lib_calls", "raw_calls"):
            row[key] = median(r[key] for r in reps)
        row["share"] = median(100 * (r["lib_us"] - r["raw_us"]) / r["lib_us"] for r in reps)
        middle = sorted(reps, key=lambda r: r["lib_us"])[len(reps) // 2]
        row["top"] = "; ".join(
            f"{item['function']} {item['us_per_cycle']:.1f}" for item in middle["top"][:3]
        )
        row["top_functions"] = middle["top"]
        section.rows.append(row)
    section.notes = [
        (
            f"{cycles} cycles per profile, {ctx.reps} reps; lib/raw us: profiled time per cycle "
            "(inflated by the profiler); library share: (lib - raw) / lib"
        ),
        (
            "largest additions: functions the library calls more often than the raw loop, by own "
            "time per cycle in the lib profile minus the raw profile's (the rep with the median "
            "lib time); the full list is in the JSON file"
        ),
    ]
    return section
