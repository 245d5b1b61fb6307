"""``pymysqllock run`` supervises the whole job: its process group, every signal, its secrets.

Real processes throughout: the command line under test, a command that starts a background
process of its own, and signals sent with ``os.kill``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
import time
import urllib.parse
from pathlib import Path

import pytest

from PyMySQLLock import Locker, cli
from PyMySQLLock.runner import redact_url

WAIT = 30.0

# The command: starts a background process that ignores SIGTERM (unless JOB_POLITE is set),
# writes "<pid> <background pid>" to argv[1], traps the signal named in JOB_TRAP (writes
# "got N" and exits 7), and otherwise waits for the gate file argv[2].
JOB = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path

    log, gate = Path(sys.argv[1]), Path(sys.argv[2])
    background = "import signal, time; "
    if not os.environ.get("JOB_POLITE"):
        background += "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    background += "time.sleep(120)"
    helper = subprocess.Popen([sys.executable, "-c", background])
    trap = os.environ.get("JOB_TRAP")
    if trap:
        def on_signal(signum, frame):
            with log.open("a") as out:
                out.write(f"got {signum}\\n")
            sys.exit(7)
        signal.signal(int(trap), on_signal)
    with log.open("a") as out:
        out.write(f"{os.getpid()} {helper.pid} url={os.environ.get('PYMYSQLLOCK_URL')}\\n")
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    """
)


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(JOB)
    return [sys.executable, str(path), str(tmp_path / "log"), str(tmp_path / "gate")]


@pytest.fixture
def run_env(tmp_path, server):
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (cli.URL_ENV, "MYSQL_HOME", "MARIADB_HOME", "PYTHONWARNINGS")
    }
    return {**env, "HOME": str(home), cli.URL_ENV: server.url}


def wait_for_log(path: Path, timeout: float = WAIT) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if lines:
            return lines
        if time.monotonic() > deadline:
            pytest.fail(f"the command wrote nothing to {path} within {timeout} s")
        time.sleep(0.01)


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"process {pid} of the command's group still runs")
        time.sleep(0.02)


@pytest.mark.parametrize("trigger", ["lost", "sigterm"])
def test_loss_or_shutdown_ends_the_whole_process_group(
    run_env, job, tmp_path, lock_name, launch, server, trigger
):
    process = launch(run_env, "run", "--refresh", "0.2", "--grace", "0.5", lock_name, "--", *job)
    pid, helper = map(int, wait_for_log(tmp_path / "log")[0].split()[:2])
    assert os.getpgid(pid) == pid != os.getpgid(process.pid), "not a process group of its own"
    assert os.getpgid(helper) == pid
    if trigger == "lost":
        holder = server.sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0]
        server.sql(f"KILL CONNECTION {int(holder)}")
    else:
        process.send_signal(signal.SIGTERM)
    code = process.wait(WAIT)
    assert code == (cli.EXIT_LOST if trigger == "lost" else 128 + signal.SIGTERM)
    # The background process ignored SIGTERM: only the group's SIGKILL ends it.
    wait_gone(pid, 5)
    wait_gone(helper, 5)


@pytest.mark.parametrize(
    "signum",
    [signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGQUIT, signal.SIGRTMIN],
    ids=["USR1", "USR2", "ALRM", "QUIT", "RTMIN"],
)
def test_every_signal_that_would_end_pymysqllock_reaches_the_command(
    run_env, job, tmp_path, lock_name, launch, server, signum
):
    environment = {**run_env, "JOB_TRAP": str(int(signum)), "JOB_POLITE": "1"}
    process = launch(environment, "run", lock_name, "--", *job)
    _, helper = map(int, wait_for_log(tmp_path / "log")[0].split()[:2])
    process.send_signal(signum)
    # pymysqllock lived on, passed the signal to the command, and reports its status.
    assert process.wait(WAIT) == 7
    assert f"got {int(signum)}" in (tmp_path / "log").read_text()
    assert server.sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0] is None
    if signum == signal.SIGQUIT:
        wait_gone(helper, 5)  # a shutdown signal: the rest of the group is ended too
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper, signal.SIGKILL)  # the signal may or may not have ended it


def test_a_signal_ends_the_wait_at_once_when_the_server_hangs(
    fresh_server, run_env, job, tmp_path, lock_name, launch
):
    with Locker(**fresh_server.connect_kwargs()) as rival:
        held = rival.lock(lock_name)
        assert held.acquire(0)
        process = launch({**run_env, cli.URL_ENV: fresh_server.url}, "run", lock_name, "--", *job)
        deadline = time.monotonic() + WAIT
        while not fresh_server.sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'"
        ):
            assert time.monotonic() < deadline, "pymysqllock never waited for the lock"
            time.sleep(0.02)
        fresh_server.pause()
        try:
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(WAIT)
            elapsed = time.monotonic() - sent
        finally:
            fresh_server.resume()
        assert code == 128 + signal.SIGTERM
        # The ping timeout is 10 s: waiting for the hung server would take that long.
        assert elapsed < 5.0, f"exit took {elapsed:.1f} s"
        assert not (tmp_path / "log").exists()
        held.release()


def test_the_command_does_not_get_the_password(run_env, job, tmp_path, lock_name, launch, server):
    user = f"runpw_{os.urandom(3).hex()}"
    password = "s3cr:et@pw"
    server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
    try:
        url = (
            f"mysql://{user}:{urllib.parse.quote(password, safe='')}@{server.host}:{server.port}/"
            f"?connect_timeout=5"
        )
        for keep in (False, True):
            log = tmp_path / "log"
            log.unlink(missing_ok=True)
            (tmp_path / "gate").touch()
            options = ["--keep-url-password"] if keep else []
            environment = {**run_env, cli.URL_ENV: url, "JOB_POLITE": "1"}
            process = launch(environment, "run", *options, lock_name, "--", *job)
            assert process.wait(WAIT) == 0, process.stderr.read() if process.stderr else ""
            seen = log.read_text().split("url=", 1)[1].strip()
            if keep:
                assert seen == url
            else:
                assert urllib.parse.quote(password, safe="") not in seen
                assert password not in seen
                assert seen.startswith(f"mysql://{user}@{server.host}:{server.port}/")
                assert "connect_timeout=5" in seen
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(log.read_text().split()[1]), signal.SIGKILL)
    finally:
        server.sql("DROP USER %s@'%%'", (user,))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://app:pw@db:3306/x", "mysql://app@db:3306/x"),
        ("mysql://app@db/x", "mysql://app@db/x"),
        (
            "mysql+pymysql://a%40b:p%3Aw@[::1]:3306/x?password=y&ssl=1",
            "mysql+pymysql://a%40b@[::1]:3306/x?ssl=1",
        ),
        ("mysql://db/x?passwd=q", "mysql://db/x"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected
