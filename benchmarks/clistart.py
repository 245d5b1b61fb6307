"""Issue 14, item 5: the wall time of a cron wrapper, ``pymysqllock run NAME -- true``.

Three commands run as fresh processes, side by side in one run: ``python -c pass`` (the
interpreter's own start), the same interpreter importing the driver and making one raw
connection to the benchmark's server and closing it (the least any wrapper has to do), and the
console script ``pymysqllock run --driver D NAME -- true`` with a new lock name every time.
Each round runs the three back to back, in a rotating order, so that the machine's moods
(other work, idle-CPU wake-ups) fall on all of them alike.

They run as a user's machine runs them: in a virtualenv of their own, where PyMySQLLock is
installed from a wheel built from this checkout, with the benchmark interpreter's packages
(the drivers) importable through a ``.pth`` file and no ``PYTHONPATH``. The development
virtualenv would flatter the wrapper: its editable install puts an import finder into every
start of the interpreter, ``python -c pass`` included, and that fixed cost shrinks the ratio.

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
import shutil
import site
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
#: Bound on building the wheel and making the virtualenv.
SETUP_TIMEOUT = 600.0
#: What the wheel is built from: the files of this checkout that setup.cfg reads.
_SOURCES = ("PyMySQLLock", "setup.cfg", "setup.py", "pyproject.toml", "README.rst", "HISTORY.rst")
_SOURCES_OPTIONAL = ("LICENSE", "MANIFEST.in")
#: How each driver's module is imported and its connect function called.
_CONNECT = {
    "pymysql": ("pymysql", "pymysql.connect"),
    "mysql.connector": ("mysql.connector", "mysql.connector.connect"),
    "MySQLdb": ("MySQLdb", "MySQLdb.connect"),
}


def _environment(pycache: str) -> dict[str, str]:
    """This environment, without what would change how the CLI connects or warns or which
    PyMySQLLock it imports, and with byte code cached in ``pycache`` (see the module's
    docstring)."""
    dropped = (
        "PYMYSQLLOCK_URL",
        "MYSQL_HOME",
        "MARIADB_HOME",
        "PYTHONWARNINGS",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPATH",
    )
    environment = {key: value for key, value in os.environ.items() if key not in dropped}
    environment["PYTHONPYCACHEPREFIX"] = pycache
    return environment


def _setup(argv: list[str]) -> None:
    """Run one step of the set-up; :raises subprocess.CalledProcessError: with its output."""
    subprocess.run(argv, check=True, timeout=SETUP_TIMEOUT, capture_output=True)


def _installed(workdir: Path) -> Path:
    """Make a virtualenv with PyMySQLLock installed from a wheel of this checkout.

    :param workdir: an empty directory for the copy, the wheel and the virtualenv.
    :returns: the virtualenv's interpreter.
    :raises subprocess.CalledProcessError: when building or installing fails.
    """
    root = Path(__file__).resolve().parent.parent
    source = workdir / "source"
    source.mkdir()
    # A copy, so that building leaves nothing (build/, *.egg-info) in the checkout.
    for name in (*_SOURCES, *(n for n in _SOURCES_OPTIONAL if (root / n).exists())):
        if (root / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(root / name, source / name, ignore=ignore)
        else:
            shutil.copy2(root / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    wheels = workdir / "wheels"
    _setup([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)])
    venv = workdir / "venv"
    _setup([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    wheel = next(wheels.glob("*.whl"))
    _setup([*pip, "--python", str(python), "install", "--no-deps", str(wheel)])
    # The drivers: this interpreter's packages, as a plain path (its .pth files, the
    # editable install's finder among them, are not run there).
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        timeout=SETUP_TIMEOUT,
        capture_output=True,
        text=True,
    )
    packages = "\n".join(site.getsitepackages())
    (Path(found.stdout.strip()) / "benchmark-drivers.pth").write_text(packages + "\n")
    return python


def _commands(driver: str, target: MySQLTarget, python: Path, script: Path) -> dict[str, list[str]]:
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
        "python -c pass": [str(python), "-c", "pass"],
        RAW: [str(python), "-c", raw],
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
    python: Path,
    rounds: int,
    run_id: str,
    pycache: str,
) -> None:
    """Measure one driver's three commands; add their rows and the target to ``section``."""
    commands = _commands(driver, ctx.mysql, python, python.parent / "pymysqllock")
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
    rounds = ctx.size(20, 5)
    run_id = uuid.uuid4().hex[:12]
    ctx.log(f"clistart: {len(ctx.drivers)} drivers, {ctx.reps} reps x {rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="clistart-") as workdir:
        try:
            python = _installed(Path(workdir))
        except (subprocess.SubprocessError, OSError, StopIteration) as exc:
            output = getattr(exc, "stderr", None) or b""
            section.skipped = (
                f"cannot install PyMySQLLock from a wheel of this checkout: {exc!r} "
                f"{output.decode(errors='replace')[-500:]}"
            )
            return section
        pycache = str(Path(workdir) / "pycache")
        for driver in ctx.drivers:
            _measure_driver(section, ctx, driver, python, rounds, f"{run_id}-{driver}", pycache)
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
            "all three in a virtualenv where PyMySQLLock is installed from a wheel of this "
            "checkout (as pip installs it, not the development virtualenv's editable install, "
            "whose import finder runs in every interpreter start and would shrink the ratio), "
            "the drivers importable through a .pth file, no PYTHONPATH"
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
