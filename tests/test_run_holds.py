"""``pymysqllock run --hold-at-least`` and ``--max-runtime``, real processes, every driver.

Two ``run`` processes stand for two hosts whose cron fires the same job a little apart: the
first host's job ends at once, but ``--hold-at-least`` keeps the lock, so the late host's
``run -n`` finds it busy and does not run the job. ``--max-runtime`` stops a command (and what
it started in its process group) that runs too long: SIGTERM, then SIGKILL after ``--grace``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import CLI

from PyMySQLLock import cli

#: Generous bound for anything that should take a fraction of a second.
WAIT = 30.0
HOLD = 1.0
SCHEMES = {"pymysql": "pymysql", "mysql.connector": "mysqlconnector", "MySQLdb": "mysqldb"}

# The job: writes "started <pid>" to the log (argv[1]) and ends at once.
JOB = """
import os, sys
with open(sys.argv[1], "a") as out:
    out.write(f"started {os.getpid()}\\n")
"""


@pytest.fixture
def env(tmp_path, server, driver):
    """The command line's environment: the session server's URL with the test's driver."""
    home = tmp_path / "home"
    home.mkdir()
    parts = urllib.parse.urlsplit(server.url)
    url = urllib.parse.urlunsplit(parts._replace(scheme=f"mysql+{SCHEMES[driver]}"))
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in (cli.URL_ENV, "MYSQL_HOME", "MARIADB_HOME", "PYTHONWARNINGS")
    }
    return {**environment, "HOME": str(home), cli.URL_ENV: url}


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(JOB)
    return [sys.executable, str(path)]


def _wait_for_line(log: Path, prefix: str, anywhere: bool = False) -> str:
    """Wait until ``log`` has a line starting with (or, ``anywhere``, containing) ``prefix``."""
    deadline = time.monotonic() + WAIT
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        for line in lines:
            if line.startswith(prefix) or (anywhere and prefix in line):
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no {prefix!r} line in {log} after {WAIT} s: {lines}")
        time.sleep(0.01)


def test_hold_at_least_makes_a_late_trigger_skip(env, job, tmp_path, lock_name, sql):
    log, stderr = tmp_path / "log", tmp_path / "stderr"
    with stderr.open("w") as errors:
        first = subprocess.Popen(
            [*CLI, "-v", "run", "--hold-at-least", "600", lock_name, "--", *job, str(log)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        # The first host's job has ended and been reaped: run says so, then holds.
        _wait_for_line(stderr, "keeping lock", anywhere=True)
        late = subprocess.run(
            [*CLI, "run", "-n", lock_name, "--", *job, str(tmp_path / "late-log")],
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert late.returncode == 1, late.stderr
        assert not (tmp_path / "late-log").exists()  # the late host did not run the job
        # A signal cuts the hold short; the status is the job's own.
        first.send_signal(signal.SIGTERM)
        assert first.wait(WAIT) == 0, stderr.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(WAIT)
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0] is None


def test_the_hold_ends_by_itself(env, job, tmp_path, lock_name, sql):
    started = time.monotonic()
    result = subprocess.run(
        [*CLI, "run", "--hold-at-least", str(HOLD), lock_name, "--", *job, str(tmp_path / "log")],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= HOLD
    assert (tmp_path / "log").read_text().startswith("started")
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0] is None


def test_bad_values_are_refused(env, lock_name):
    for option, value in (
        ("--hold-at-least", "-1"),
        ("--hold-at-least", "86401"),
        ("--max-runtime", "0"),
    ):
        result = subprocess.run(
            [*CLI, "run", option, value, lock_name, "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert option in result.stderr


# A job that runs too long: starts a grandchild in its process group, logs both pids, sleeps.
# CHILD_IGNORE_TERM makes both ignore SIGTERM, so that only SIGKILL ends them.
LONG_JOB = """
import os, signal, subprocess, sys, time
if os.environ.get("CHILD_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(sys.argv[1], "a") as out:
    out.write(f"grandchild {grandchild.pid}\\n")
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("ignore_term", [False, True], ids=["term", "kill"])
def test_max_runtime_stops_the_whole_group(env, tmp_path, lock_name, sql, ignore_term):
    log, script = tmp_path / "log", tmp_path / "long_job.py"
    script.write_text(LONG_JOB)
    environment = {**env, "CHILD_IGNORE_TERM": "1"} if ignore_term else env
    process = subprocess.Popen(
        [
            *CLI,
            "run",
            "--max-runtime",
            "1",
            "--grace",
            "0.5",
            lock_name,
            "--",
            sys.executable,
            str(script),
            str(log),
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        grandchild = int(_wait_for_line(log, "grandchild").split()[1])
        _out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=WAIT)
    expected = signal.SIGKILL if ignore_term else signal.SIGTERM
    assert process.returncode == 128 + expected, err
    assert "--max-runtime" in err
    # The warning comes through the command line's handler, added when it came (a run
    # without warnings never imports logging).
    assert "pymysqllock: WARNING: the command ran longer than --max-runtime: stopping it" in err
    deadline = time.monotonic() + WAIT
    while _alive(grandchild):  # stopped with its group (not our child: it may linger a moment)
        assert time.monotonic() < deadline, "the grandchild outlived --max-runtime"
        time.sleep(0.01)
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0] is None
