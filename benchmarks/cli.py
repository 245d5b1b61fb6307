"""``python -m benchmarks``: start the servers, run the benchmarks, print and save the results."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .backends import DRIVERS, driver_available
from .context import RunContext
from .machine import describe
from .procinfo import machine_busy
from .report import Section, load, render_rst, render_text, save
from .servers import PeerUnavailable, PrivatePostgres, PrivateRedis, mariadb

__all__ = ["BENCHMARKS", "main"]

#: Benchmark names, in the order they run; each is ``benchmarks.<name>.run(ctx)``.
BENCHMARKS: tuple[str, ...] = (
    "cycle",
    "handoff",
    "scale",
    "contention",
    "lost",
    "windows",
    "coordination",
    "profile",
    "aiocycle",
    "aiohandoff",
    "aioscale",
    "clistart",
)
# Only these compare against Redis and PostgreSQL; the others never start them.
_PEER_USERS = frozenset({"cycle", "handoff", "aiohandoff"})
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="PyMySQLLock benchmarks, side by side with the raw drivers and peers.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (<1 min)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        metavar="N",
        help="repetitions of every figure; the median is reported (default 3, --quick 1)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the machine-readable results (default {DEFAULT_JSON})",
    )
    parser.add_argument("--rst", type=Path, metavar="PATH", help="also write the tables as reST")
    parser.add_argument(
        "--drivers",
        default=",".join(DRIVERS),
        help="comma-separated drivers to measure (default: all three)",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip Redis and PostgreSQL")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="measure nothing: print (and with --rst, write) the report of a result file",
    )
    return parser


def _selected(only: list[str]) -> list[str]:
    names = [name.strip() for item in only for name in item.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    return [name for name in BENCHMARKS if name in names] if names else list(BENCHMARKS)


@contextlib.contextmanager
def _peers(ctx: RunContext, wanted: bool) -> Iterator[None]:
    redis, pg = PrivateRedis(), PrivatePostgres()
    try:
        if not wanted:
            ctx.redis_skipped = ctx.pg_skipped = "not selected (--no-peers)"
        else:
            for module in ("redis", "redis_lock"):
                if not driver_available(module):
                    ctx.redis_skipped = f"the {module} package is not installed"
            if not ctx.redis_skipped:
                try:
                    ctx.redis = redis.start()
                    ctx.log(f"private Redis {ctx.redis.version} on port {ctx.redis.port}")
                except PeerUnavailable as exc:
                    ctx.redis_skipped = str(exc)
            if not driver_available("psycopg"):
                ctx.pg_skipped = "the psycopg package is not installed"
            else:
                try:
                    ctx.pg = pg.start()
                    ctx.log(f"private PostgreSQL {ctx.pg.version} on port {ctx.pg.port}")
                except PeerUnavailable as exc:
                    ctx.pg_skipped = str(exc)
        yield
    finally:
        redis.close()
        pg.close()


def _load() -> str:
    """The load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)"


def _run_one(name: str, ctx: RunContext) -> Section:
    module = importlib.import_module(f"benchmarks.{name}")
    runner: Callable[[RunContext], Section] = module.run
    began = time.monotonic()
    try:
        section = runner(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others
        ctx.log(f"{name} failed: {exc!r}")
        section = Section(name=name, title=name, columns=[], skipped=f"failed: {exc!r}")
    section.details["seconds"] = round(time.monotonic() - began, 1)
    ctx.log(f"{name} done in {section.details['seconds']} s")
    return section


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    A missed target does not fail the run: the figures are the result, and a noisy machine
    must not break ``make bench``.
    """
    args = _parser().parse_args(argv)
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.report is not None:
        machine, _config, sections = load(args.report)
        print(render_text(machine, sections))
        if args.rst:
            args.rst.write_text(render_rst(machine, sections, machine.get("command", command)))
        return 0
    names = _selected(args.only)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1:
        raise SystemExit("--reps must be at least 1")
    drivers = [d for d in args.drivers.split(",") if d]
    missing = [d for d in drivers if d not in DRIVERS]
    if missing:
        raise SystemExit(f"unknown driver(s) {missing}; choose from {DRIVERS}")
    # Other work on the machine skews every figure: say how busy it was before ours began.
    load_before = _load()
    busy_before = f"{machine_busy(2.0):.0f}% of all CPUs (over 2 s)"
    server, target = mariadb()
    try:
        ctx = RunContext(
            reps=reps,
            quick=args.quick,
            mysql=target,
            mysql_pid=server.pid or 0,
            drivers=[d for d in drivers if driver_available(d)],
        )
        ctx.log(f"throwaway {target.version} on port {target.port}")
        skipped_drivers = sorted(set(drivers) - set(ctx.drivers))
        with _peers(ctx, not args.no_peers and bool(_PEER_USERS & set(names))):
            machine = describe(
                target.version,
                ctx.redis.version if ctx.redis else None,
                ctx.pg.version if ctx.pg else None,
            )
            machine["command"] = command
            machine["load before"] = load_before
            machine["CPU busy before the run"] = busy_before
            if skipped_drivers:
                machine["skipped drivers"] = ", ".join(skipped_drivers) + " (not installed)"
            sections = [_run_one(name, ctx) for name in names]
            machine["load after"] = _load()
    finally:
        server.close()
    if args.quick:
        # Small sizes say nothing about the goals; show the figures, judge nothing.
        for section in sections:
            for goal in section.targets:
                goal.met = None
    else:
        for section in sections:
            for goal in section.targets:
                goal.judge()
    config = {"reps": reps, "quick": args.quick, "benchmarks": names, "drivers": ctx.drivers}
    save(args.json, machine, config, sections)
    print(render_text(machine, sections))
    print(f"\nresults written to {args.json}")
    if args.rst:
        args.rst.write_text(render_rst(machine, sections, command))
        print(f"reST written to {args.rst}")
    return 0
