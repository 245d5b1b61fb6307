"""Issue 14, item 5: the wall time of a cron wrapper, ``pymysqllock run NAME -- true``.

Three commands run as fresh processes, side by side in one run: ``python -c pass`` (the
interpreter's own start), the same interpreter importing the driver and making one raw
connection to the benchmark's server and closing it (the least any wrapper has to do), and the
installed console script ``pymysqllock run --driver D NAME -- true`` with a new lock name every
time. Each round runs the three back to back, in a rotating order, so that the machine's moods
(other work, idle-CPU wake-ups) fall on all of them alike.

All three run with the same interpreter, flags and environment. That environment writes and
reads byte code in a directory of its own (``PYTHONPYCACHEPREFIX``, removed afterwards), even
when the benchmark itself runs with ``PYTHONDONTWRITEBYTECODE``: an installed package has its
byte code compiled, and without it every run of the wrapper would compile PyMySQLLock from
source while the drivers' byte code, compiled when they were installed, was read.

The promise checked: the wrapper takes under twice the raw connect's process.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

from .context import RunContext
from .report import Column, Section, Target
from .servers import MySQLTarget
from .stats import median

__all__ = ["run"]

RATIO_LIMIT = 2.0
#: The row kinds compared by the target.
CLI, RAW = "pymysqllock run", "pass + raw connect"
#: Bound on one process; a cron wrapper that takes longer is broken, not slow.
PROCESS_TIMEOUT = 60.0
#: How each driver's module is imported and its connect function called.
_CONNECT = {
    "pymysql": ("pymysql", "pymysql.connect"),
    "mysql.connector": ("mysql.connector", "mysql.connector.connect"),
    "MySQLdb": ("MySQLdb", "MySQLdb.connect"),
}


def _environment(pycache: str) -> dict[str, str]:
    """This environment, without what would change how the CLI connects or warns, and with
    byte code cached in ``pycache`` (see the module's docstring)."""
    dropped = (
        "PYMYSQLLOCK_URL",
        "MYSQL_HOME",
        "MARIADB_HOME",
        "PYTHONWARNINGS",
        "PYTHONDONTWRITEBYTECODE",
    )
    environment = {key: value for key, value in os.environ.items() if key not in dropped}
    environment["PYTHONPYCACHEPREFIX"] = pycache
    return environment


def _commands(driver: str, target: MySQLTarget, script: Path) -> dict[str, list[str]]:
    """The three command lines, by row kind (the CLI's lock name is appended per run)."""
    module, connect = _CONNECT[driver]
    raw = f"import {module}; {connect}(**{target.kwargs()!r}).close()"
    url = "mysql://{}:{}@{}:{}/{}".format(
        urllib.parse.quote(target.user, safe=""),
        urllib.parse.quote(target.password, safe=""),
        target.host,
        target.port,
        urllib.parse.quote(target.database, safe=""),
    )
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        RAW: [sys.executable, "-c", raw],
        CLI: [str(script), "run", "--no-defaults", "--url", url, "--driver", driver],
    }


def _time(argv: list[str], environment: dict[str, str]) -> float:
    """Run one process to its end; :returns: its wall time in ms."""
    began = time.perf_counter()
    subprocess.run(
        argv,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=PROCESS_TIMEOUT,
        check=True,
    )
    return (time.perf_counter() - began) * 1e3


def _measure(
    commands: dict[str, list[str]], reps: int, rounds: int, run_id: str, pycache: str
) -> dict[str, list[list[float]]]:
    """Per kind, per rep, the wall time (ms) of every round's process."""
    environment = _environment(pycache)
    kinds = list(commands)
    names = (f"bench-cli-{run_id}-{count}" for count in itertools.count())

    def argv(kind: str) -> list[str]:
        # A new lock name every run: no run may find the lock as another left it.
        return [*commands[kind], next(names), "--", "true"] if kind == CLI else commands[kind]

    # Warm the page cache and the server's thread cache, and compile the byte code.
    for kind in kinds:
        _time(argv(kind), environment)
    times: dict[str, list[list[float]]] = {kind: [] for kind in kinds}
    for _rep in range(reps):
        for kind in kinds:
            times[kind].append([])
        for number in range(rounds):
            shift = number % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                times[kind][-1].append(_time(argv(kind), environment))
    return times


def _measure_driver(
    section: Section,
    ctx: RunContext,
    driver: str,
    script: Path,
    rounds: int,
    run_id: str,
    pycache: str,
) -> None:
    """Measure one driver's three commands; add their rows and the target to ``section``."""
    commands = _commands(driver, ctx.mysql, script)
    times = _measure(commands, ctx.reps, rounds, run_id, pycache)
    medians = {kind: [median(rep) for rep in reps] for kind, reps in times.items()}
    per_rep_ratio = [cli / raw for cli, raw in zip(medians[CLI], medians[RAW])]
    for kind in commands:
        row = {
            "driver": driver,
            "command": kind,
            "p50": median(medians[kind]),
            "min": min(min(rep) for rep in times[kind]),
            "ratio": None,
        }
        if kind == CLI:
            row["ratio"] = median(per_rep_ratio)
            row["ratio_reps"] = per_rep_ratio
            section.targets.append(
                Target(
                    "CLI",
                    "pymysqllock run NAME -- true / python -c pass + one raw connect",
                    driver,
                    row["ratio"],
                    RATIO_LIMIT,
                    "x",
                )
            )
        section.rows.append(row)


def run(ctx: RunContext) -> Section:
    """Measure and build the section."""
    section = Section(
        name="clistart",
        title="pymysqllock run NAME -- true: wall time of one process (ms)",
        columns=[
            Column("driver", "driver"),
            Column("command", "command"),
            Column("p50", "median ms", "{:,.1f}"),
            Column("min", "min ms", "{:,.1f}"),
            Column("ratio", "x raw connect", "{:.2f}"),
        ],
    )
    script = Path(sys.executable).parent / "pymysqllock"
    if not script.exists():
        section.skipped = f"no console script at {script} (is the package installed?)"
        return section
    rounds = ctx.size(20, 5)
    run_id = uuid.uuid4().hex[:12]
    ctx.log(f"clistart: {len(ctx.drivers)} drivers, {ctx.reps} reps x {rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="clistart-pycache-") as pycache:
        for driver in ctx.drivers:
            _measure_driver(section, ctx, driver, script, rounds, f"{run_id}-{driver}", pycache)
    section.details = {"rounds": rounds, "reps": ctx.reps, "interpreter": sys.executable}
    section.notes = [
        (
            "each figure is one fresh process from start to exit, run with subprocess from the "
            "benchmark; python -c pass = the interpreter alone; pass + raw connect = python -c "
            "'import DRIVER; DRIVER.connect(...).close()' with the same interpreter and "
            "connection parameters; pymysqllock run = the installed console script, "
            "run --no-defaults --url URL --driver DRIVER NAME -- true, a new lock name each time"
        ),
        (
            "all three with the same environment, byte code cached (PYTHONPYCACHEPREFIX, a "
            "temporary directory) as for an installed package, also when the benchmark runs "
            "with PYTHONDONTWRITEBYTECODE"
        ),
        (
            f"each round runs the three back to back in a rotating order; median over {rounds} "
            f"rounds, then over {ctx.reps} reps; x raw connect = the ratio of the medians, per "
            "rep, then its median over reps"
        ),
    ]
    return section
