"""The ``pymysqllock`` command line, run as ``python -m PyMySQLLock`` against the session server.

Commands that run under the lock are small Python scripts (``CHILD``) that append lines to a log
file and can wait for a gate file: the tests learn what happened from the log, never from time.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import CLI

from PyMySQLLock import InvalidArgumentError, Locker, cli, optionfile
from PyMySQLLock.drivers import DRIVER_NAMES

#: The command line under test; warnings are errors in it too.
#: A password with every character that a URL, an option file or SQL treats specially.
SPECIAL_PASSWORD = "p@ss:w/rd%\"'"
#: Generous bound for anything that should take a fraction of a second.
WAIT = 30.0

# Appends "<label> <event>" lines to the log (argv[1]); waits for the gate file (argv[3]) if
# given. CHILD_TRAP: SIGTERM/SIGINT/SIGHUP log "signal N" and exit CHILD_SIGNAL_EXIT;
# CHILD_IGNORE_TERM: SIGTERM is ignored; CHILD_COUNT_INTS: SIGINT logs "signal 2" and goes on,
# SIGTERM logs "interrupts=<SIGINTs so far>" and exits 5; CHILD_EXIT: the exit status.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path

    log, label = Path(sys.argv[1]), sys.argv[2]
    gate = Path(sys.argv[3]) if len(sys.argv) > 3 else None

    def note(text):
        with log.open("a") as out:
            out.write(f"{label} {text}\\n")

    def on_signal(signum, frame):
        note(f"signal {signum}")
        sys.exit(int(os.environ.get("CHILD_SIGNAL_EXIT", "5")))

    if os.environ.get("CHILD_TRAP"):
        for each in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(each, on_signal)
    if os.environ.get("CHILD_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    interrupts = 0
    if os.environ.get("CHILD_COUNT_INTS"):
        def on_interrupt(signum, frame):
            global interrupts
            interrupts += 1
            note(f"signal {signum}")

        def on_terminate(signum, frame):
            note(f"interrupts={interrupts}")
            sys.exit(5)

        signal.signal(signal.SIGINT, on_interrupt)
        signal.signal(signal.SIGTERM, on_terminate)
    note(
        f"start pid={os.getpid()} lock={os.environ.get('PYMYSQLLOCK_LOCK_NAME')} "
        f"conn={os.environ.get('PYMYSQLLOCK_CONNECTION_ID')}"
    )
    deadline = time.monotonic() + 60
    while gate is not None and not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    note("end")
    sys.exit(int(os.environ.get("CHILD_EXIT", "0")))
    """
)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def base_env(tmp_path):
    """The environment of the command line: no URL, and a home without option files."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (cli.URL_ENV, "MYSQL_HOME", "MARIADB_HOME", "PYTHONWARNINGS")
    }
    env["HOME"] = str(home)
    return env


@pytest.fixture
def env(base_env, server):
    """``base_env`` with ``PYMYSQLLOCK_URL`` set to the session server."""
    return {**base_env, cli.URL_ENV: server.url}


@pytest.fixture
def child(tmp_path):
    """The command prefix that runs ``CHILD``: ``[*child, log, label, gate]``."""
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return [sys.executable, str(path)]


@pytest.fixture
def root_locker(server):
    """A Locker of the test itself (as root) on the session server."""
    with Locker(**server.connect_kwargs()) as locker:
        yield locker


@pytest.fixture
def make_account(server):
    """``make_account(password)``: an account that may use the session database; dropped after."""
    made = []

    def make(password):
        user = f"cli_{os.urandom(4).hex()}"
        server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        server.sql(f"GRANT SELECT ON `{server.database}`.* TO %s@'%%'", (user,))
        made.append(user)
        return user

    yield make
    for user in made:
        server.sql("DROP USER %s@'%%'", (user,))


def run_cli(environment, *args, timeout=WAIT):
    return subprocess.run(
        [*CLI, *map(str, args)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def finish(process):
    """Wait for a launched command line; :returns: (exit status, stdout, stderr)."""
    out, err = process.communicate(timeout=WAIT)
    return process.returncode, out, err


def log_lines(log):
    return log.read_text().splitlines() if log.exists() else []


def wait_for_line(log, prefix, timeout=WAIT):
    """Wait until the log has a line starting with ``prefix``; :returns: that line."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log_lines(log):
            if line.startswith(prefix):
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no {prefix!r} line in {log} after {timeout} s: {log_lines(log)}")
        time.sleep(0.01)


def freed_by_the_server(locker, name, timeout=WAIT):
    """Wait until nobody holds ``name``: :returns: whether that happened within ``timeout``.

    For a ``run`` ended by a signal: it closes the lock's connection instead of sending
    ``RELEASE_LOCK`` (a server that hangs must not keep it), and the server frees the lock once
    its thread for that connection has seen the close, which a busy server may do after the
    process has exited.
    """
    deadline = time.monotonic() + timeout
    while locker.holder(name) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def field(line, key):
    """The value of ``key=value`` in a log line."""
    return dict(part.split("=", 1) for part in line.split() if "=" in part)[key]


def quoted(password):
    """``password`` as an option-file value: double-quoted, with ``\\`` and ``"`` escaped."""
    return '"' + password.replace("\\", "\\\\").replace('"', '\\"') + '"'


def url_for(server, user, password, database=True):
    auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    path = f"/{server.database}" if database else ""
    return f"mysql://{auth}@{server.host}:{server.port}{path}"


# --------------------------------------------------------------------------- help and usage


def test_help_documents_the_exit_codes(base_env):
    result = run_cli(base_env, "--help")
    assert result.returncode == 0
    for text in ("exit codes:", "run", "list", "status", "release", "demo", cli.URL_ENV):
        assert text in result.stdout
    for code in (cli.EXIT_LOST, cli.EXIT_NO_PERMISSION, cli.EXIT_UNAVAILABLE, 126, 127):
        assert f"\n  {code} " in result.stdout
    run_help = run_cli(base_env, "run", "--help")
    assert run_help.returncode == 0
    assert "--conflict-exit-code" in run_help.stdout
    assert "exit codes:" in run_help.stdout


def test_version(base_env):
    from PyMySQLLock import __version__

    result = run_cli(base_env, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pymysqllock {__version__}"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run", "x"],
        ["run", "x", "--"],
        ["release", "x"],
        ["run", "-E", "300", "x", "--", "true"],
        ["run", "-n", "-w", "1", "x", "--", "true"],
        ["run", "--refresh", "0", "x", "--", "true"],
        ["status", "--url", "postgres://u@h/d", "x"],
        ["status", "--driver", "nosuch", "x"],
        ["status", "--defaults-file", "{tmp}/missing.cnf", "x"],
        ["status", "--url", "mysql://u@h/d", "--defaults-file", "{tmp}/any.cnf", "x"],
        ["status", ""],
        ["list", "--", "extra"],
        ["demo", "--workers", "1"],
        ["demo", "--driver", "nosuch"],
        ["demo", "--url", "http://example.com/"],
    ],
    ids=lambda args: " ".join(args) or "no-command",
)
def test_usage_errors_exit_2_with_one_message(env, tmp_path, args):
    # With PYMYSQLLOCK_URL set, so that nothing could reach a server other than the test's.
    result = run_cli(env, *(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    assert "error" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_exits_69(base_env):
    # A port nobody listens on: the connection is refused at once.
    result = run_cli(base_env, "status", "--url", "mysql://root@127.0.0.1:1/x", "x")
    assert result.returncode == cli.EXIT_UNAVAILABLE
    assert result.stderr.startswith("pymysqllock: error: Could not connect to db")
    assert len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- run


def test_run_passes_the_exit_status_and_tells_the_command_about_the_lock(
    env, child, tmp_path, lock_name
):
    log = tmp_path / "log"
    result = run_cli({**env, "CHILD_EXIT": "7"}, "run", lock_name, "--", *child, log, "job")
    assert result.returncode == 7, result.stderr
    start = wait_for_line(log, "job start")
    assert field(start, "lock") == lock_name
    assert field(start, "conn").isdigit()
    assert log_lines(log)[-1] == "job end"


def test_run_reports_a_death_by_signal_as_128_plus_n(env, lock_name):
    command = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    result = run_cli(env, "run", lock_name, "--", sys.executable, "-c", command)
    assert result.returncode == 128 + signal.SIGTERM


def test_run_gets_the_status_even_when_its_caller_ignores_sigchld(env, lock_name):
    # An ignored SIGCHLD survives exec and makes the kernel reap children unasked.
    wrapper = (
        "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    command = [
        sys.executable,
        "-c",
        wrapper,
        *CLI[1:],
        "run",
        lock_name,
        "--",
        "sh",
        "-c",
        "exit 4",
    ]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert result.returncode == 4, result.stderr


def test_run_without_dashes_runs_a_simple_command(env, lock_name):
    assert run_cli(env, "run", lock_name, "true").returncode == 0
    assert run_cli(env, "run", lock_name, "false").returncode == 1


def test_run_command_not_found_or_not_executable(env, tmp_path, lock_name, root_locker):
    missing = run_cli(env, "run", lock_name, "--", str(tmp_path / "missing"))
    assert missing.returncode == cli.EXIT_NOT_FOUND
    assert "cannot run" in missing.stderr
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    denied = run_cli(env, "run", lock_name, "--", str(script))
    assert denied.returncode == cli.EXIT_CANNOT_EXECUTE
    assert root_locker.holder(lock_name) is None


def test_two_runs_serialize(env, child, tmp_path, lock_name, launch, lock_waiters):
    log, gate = tmp_path / "log", tmp_path / "gate"
    first = launch(env, "run", lock_name, "--", *child, log, "first", gate)
    wait_for_line(log, "first start")
    second = launch(env, "run", lock_name, "--", *child, log, "second")
    lock_waiters(lock_name)  # the second run waits on the server for the lock
    assert [line.split()[:2] for line in log_lines(log)] == [["first", "start"]]
    gate.touch()
    assert finish(first)[0] == 0
    assert finish(second)[0] == 0
    events = [line.split()[:2] for line in log_lines(log)]
    assert events == [["first", "start"], ["first", "end"], ["second", "start"], ["second", "end"]]


def _read_line_with(fd, marker):
    """Read a pipe until a whole line containing ``marker`` has arrived; :returns: that line."""
    data = b""
    deadline = time.monotonic() + WAIT
    while True:
        for line in data.split(b"\n")[:-1]:
            if marker in line:
                return line.decode()
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            pytest.fail(f"no line with {marker!r} on the pipe: {data!r}")
        data += chunk


def test_run_verbose_names_the_holder_while_it_waits(
    env, child, tmp_path, lock_name, launch, root_locker, server, driver
):
    """``run -v`` says whom it waits for, as ``flock --verbose`` does, then runs once free."""
    log = tmp_path / "log"
    held = root_locker.lock(lock_name, timeout=0)
    held.acquire()
    try:
        holder = held.connection_id
        process = launch(env, "run", "-v", "--driver", driver, lock_name, "--", *child, log, "job")
        # The first report comes after FIRST_REPORT_SECONDS of waiting: read until it is there.
        line = _read_line_with(process.stderr.fileno(), b"waiting for lock")
        assert not log.exists(), "the command ran while another session held the lock"
    finally:
        held.release()
    assert lock_name in line
    # The holder is this test's root session, whose account the process list shows.
    assert f"held by connection {holder} ({server.user}@" in line
    code, _out, err = finish(process)
    assert code == 0, err
    assert [entry.split()[:2] for entry in log_lines(log)] == [["job", "start"], ["job", "end"]]


@pytest.mark.parametrize(
    ("options", "expected"),
    [(["-n"], 1), (["-n", "-E", "42"], 42), (["-w", "0.3", "-E", "9"], 9), (["--nonblock"], 1)],
    ids=["n", "n-E42", "w-E9", "nonblock"],
)
def test_busy_lock_exits_with_the_conflict_code(
    env, child, tmp_path, lock_name, root_locker, options, expected
):
    log = tmp_path / "log"
    with root_locker.lock(lock_name, timeout=0):
        result = run_cli(env, "run", *options, lock_name, "--", *child, log, "job")
    assert result.returncode == expected
    assert not log.exists(), "the command ran without the lock"


def test_lost_lock_stops_the_command_and_exits_75(
    env, child, tmp_path, lock_name, launch, root_locker, server
):
    log = tmp_path / "log"
    process = launch(
        {**env, "CHILD_TRAP": "1", "CHILD_SIGNAL_EXIT": "3"},
        "run",
        "--refresh",
        "0.2",
        "--grace",
        "20",
        lock_name,
        "--",
        *child,
        log,
        "job",
        tmp_path / "never",
    )
    start = wait_for_line(log, "job start")
    holder = root_locker.holder(lock_name)
    assert holder == int(field(start, "conn"))
    server.sql(f"KILL CONNECTION {holder}")
    code, _, err = finish(process)
    assert code == cli.EXIT_LOST
    assert f"job signal {signal.SIGTERM}" in log_lines(log)
    assert "was lost" in err


def test_lost_lock_kills_a_command_that_ignores_sigterm_after_the_grace(
    env, child, tmp_path, lock_name, launch, root_locker, server
):
    log = tmp_path / "log"
    process = launch(
        {**env, "CHILD_IGNORE_TERM": "1"},
        "run",
        "--refresh",
        "0.2",
        "--grace",
        "0.5",
        lock_name,
        "--",
        *child,
        log,
        "job",
        tmp_path / "never",
    )
    start = wait_for_line(log, "job start")
    server.sql(f"KILL CONNECTION {root_locker.holder(lock_name)}")
    assert finish(process)[0] == cli.EXIT_LOST
    assert "job end" not in log_lines(log)
    assert not Path(f"/proc/{field(start, 'pid')}").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded_to_the_command(
    env, child, tmp_path, lock_name, launch, root_locker, signum
):
    log = tmp_path / "log"
    process = launch(
        {**env, "CHILD_TRAP": "1", "CHILD_SIGNAL_EXIT": "5"},
        "run",
        lock_name,
        "--",
        *child,
        log,
        "job",
        tmp_path / "never",
    )
    wait_for_line(log, "job start")
    process.send_signal(signum)
    code, _, err = finish(process)
    assert code == 5, err
    assert f"job signal {signum}" in log_lines(log)
    assert freed_by_the_server(root_locker, lock_name)


def test_ctrl_c_in_the_terminal_reaches_the_command_once(
    env, child, tmp_path, lock_name, root_locker
):
    # The command's process group is the terminal's foreground while it runs: the terminal
    # sends it SIGINT directly, and pymysqllock (not in that group) must not send a second
    # one. The SIGTERM that follows is forwarded, and anything pymysqllock forwarded before
    # it has been handled by then.
    log = tmp_path / "log"
    args = [*CLI, "run", "-vv", lock_name, "--", *child, str(log), "job", str(tmp_path / "x")]
    pid, terminal = os.forkpty()
    if pid == 0:  # pragma: no cover - the child only execs
        try:
            os.execve(sys.executable, args, {**env, "CHILD_COUNT_INTS": "1"})  # noqa: S606
        finally:
            os._exit(127)
    try:
        wait_for_line(log, "job start")
        os.write(terminal, b"\x03")
        wait_for_line(log, f"job signal {signal.SIGINT}")
        os.kill(pid, signal.SIGTERM)
        assert wait_for_line(log, "job interrupts=") == "job interrupts=1"
        output = _read_until(terminal, None)
    finally:
        os.close(terminal)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 5, output
    # Signals coalesce, so the count above cannot tell; what pymysqllock did, its log can.
    assert f"forwarding signal {signal.SIGINT}".encode() not in output
    assert f"forwarding signal {signal.SIGTERM}".encode() in output
    assert freed_by_the_server(root_locker, lock_name)


def test_signal_while_waiting_gives_up_without_running_the_command(
    env, child, tmp_path, lock_name, launch, root_locker, lock_waiters
):
    log = tmp_path / "log"
    held = root_locker.lock(lock_name)
    held.acquire(0)
    process = launch(env, "run", lock_name, "--", *child, log, "job")
    lock_waiters(lock_name)
    process.send_signal(signal.SIGTERM)
    assert finish(process)[0] == 128 + signal.SIGTERM
    held.release()
    assert root_locker.holder(lock_name) is None
    assert not log.exists()


@pytest.mark.parametrize("driver", ["pymysql", "MySQLdb"])
def test_run_passes_inherited_descriptors_but_not_its_own(env, lock_name, driver):
    # What a command inherits from pymysqllock's caller it keeps (as with flock); the
    # connection to the server it must not, or the lock would outlive pymysqllock. (The C
    # client library under MySQLdb leaves its socket inheritable.)
    read_end, write_end = os.pipe()
    try:
        command = "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"
        result = subprocess.run(
            [*CLI, "run", "--driver", driver, lock_name, "--", sys.executable, "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT,
            pass_fds=(write_end,),
            check=False,
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    descriptors = json.loads(result.stdout)
    assert write_end in descriptors
    # 0-2, the inherited pipe, and the descriptor listing /proc/self/fd itself.
    assert len(descriptors) == 5, descriptors


# --------------------------------------------------------------------------- list, status, release


def test_list_as_json_follows_the_schema(env, server, root_locker, unique_name):
    prefix = unique_name()
    names = [f"{prefix}-a", f"{prefix}-b"]
    with root_locker.lock(names[0], timeout=0) as first, root_locker.lock(names[1], timeout=0):
        first_id = first.connection_id
        result = run_cli(env, "list", "--json", "--prefix", prefix)
        table = run_cli(env, "list", "--prefix", prefix)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [record["name"] for record in records] == names
    keys = {"name", "server_name", "connection_id", "user", "host", "held_for_seconds"}
    for record in records:
        assert set(record) == keys
        assert record["server_name"] == record["name"]
        assert isinstance(record["connection_id"], int)
        assert record["user"] == server.user
        assert record["host"].startswith(server.host)
        if server.flavor == "mariadb":
            assert record["held_for_seconds"] >= 0
    assert records[0]["connection_id"] == first_id
    assert table.returncode == 0
    title, header, *rows = table.stdout.splitlines()
    assert title == f"locks held on {server.host}:{server.port} as {server.user}:"
    assert header.split() == ["NAME", "HOLDER", "USER@HOST", "HELD", "FOR"]
    assert [row.split()[0] for row in rows] == names
    assert rows[0].split()[1] == str(first_id)
    assert rows[0].split()[2].startswith(f"{server.user}@{server.host}")


def test_list_without_matching_locks(env, server, unique_name):
    prefix = unique_name()
    assert run_cli(env, "list", "--json", "--prefix", prefix).stdout.strip() == "[]"
    result = run_cli(env, "list", "--prefix", prefix)
    assert result.returncode == 0
    assert result.stdout.strip() == f"no locks held on {server.host}:{server.port} as {server.user}"


def test_status_free_and_held(env, server, root_locker, lock_name):
    free = run_cli(env, "status", lock_name)
    assert free.returncode == 0
    where = f"{server.host}:{server.port} as {server.user}"
    assert free.stdout.strip() == f"{lock_name}: free on {where}"
    with root_locker.lock(lock_name, timeout=0) as lock:
        holder = lock.connection_id
        held = run_cli(env, "status", lock_name)
    assert held.returncode == 1
    assert held.stdout.startswith(f"{lock_name}: held by connection {holder} (")
    assert f"{server.user}@{server.host}" in held.stdout
    assert held.stdout.strip().endswith(f" on {where}")


def test_release_force_frees_a_lock_held_by_another_process(
    env, child, tmp_path, lock_name, launch, root_locker
):
    log = tmp_path / "log"
    never = tmp_path / "never"
    holder = launch(env, "run", "--refresh", "0.2", lock_name, "--", *child, log, "job", never)
    start = wait_for_line(log, "job start")
    result = run_cli(env, "release", "--force", lock_name)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip() == f"{lock_name}: released (ended connection {field(start, 'conn')})"
    )
    # The holder notices, stops its command and reports the loss.
    assert finish(holder)[0] == cli.EXIT_LOST
    assert root_locker.holder(lock_name) is None
    again = run_cli(env, "release", "--force", lock_name)
    assert again.returncode == 1
    assert again.stdout.strip() == f"{lock_name}: was free"


def test_release_force_without_privilege_exits_77(base_env, server, make_account, lock_name):
    password = os.urandom(6).hex()
    user = make_account(password)
    with Locker(**server.connect_kwargs()) as root, root.lock(lock_name, timeout=0) as lock:
        result = run_cli(
            {**base_env, cli.URL_ENV: url_for(server, user, password)},
            "release",
            "--force",
            lock_name,
        )
        assert result.returncode == cli.EXIT_NO_PERMISSION
        assert result.stderr.startswith("pymysqllock: error: permission denied")
        assert root.holder(lock_name) == lock.connection_id


# --------------------------------------------------------------------------- connection settings


def _option_file(path, server, user, password, *, extra=""):
    path.write_text(
        textwrap.dedent(
            f"""\
            # written by the test
            [mysqld]
            password = not-this-one
            [client]
            host = {server.host}
            port = {server.port}
            user = {user}
            password = {quoted(password)}   # a comment after a quoted value
            {extra}
            [mysql]
            user = not-this-one
            """
        )
    )
    path.chmod(0o600)
    return path


def test_defaults_file_with_a_special_password(
    base_env, server, make_account, tmp_path, unique_name
):
    user = make_account(SPECIAL_PASSWORD)
    options = _option_file(
        tmp_path / "my.cnf", server, user, SPECIAL_PASSWORD, extra=f"database={server.database}"
    )
    name = unique_name()
    result = run_cli(base_env, "status", "--defaults-file", options, name)
    assert result.returncode == 0, result.stderr
    locker = Locker.from_url(url_for(server, user, SPECIAL_PASSWORD))
    with locker, locker.lock(name, timeout=0):
        listed = run_cli(base_env, "list", "--json", "--defaults-file", options, "--prefix", name)
    assert [record["user"] for record in json.loads(listed.stdout)] == [user]


def test_my_cnf_in_home_and_include(base_env, server, make_account, tmp_path, lock_name):
    user = make_account(SPECIAL_PASSWORD)
    secrets_file = tmp_path / "secret.cnf"
    secrets_file.write_text(f"[client]\npassword={quoted(SPECIAL_PASSWORD)}\n")
    home = Path(base_env["HOME"])
    (home / ".my.cnf").write_text(
        f"[client]\nhost={server.host}\nport={server.port}\nuser={user}\n!include {secrets_file}\n"
    )
    result = run_cli(base_env, "status", lock_name)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("how", ["env", "flag"])
def test_url_with_a_special_password(base_env, server, make_account, lock_name, how):
    user = make_account(SPECIAL_PASSWORD)
    url = url_for(server, user, SPECIAL_PASSWORD)
    if how == "env":
        result = run_cli({**base_env, cli.URL_ENV: url}, "status", lock_name)
    else:
        result = run_cli(base_env, "status", "--url", url, lock_name)
    assert result.returncode == 0, result.stderr


def test_password_flags_like_the_mysql_client(base_env, server, make_account, lock_name):
    user = make_account(SPECIAL_PASSWORD)
    where = ["--no-defaults", "-h", server.host, "-P", server.port, "-u", user]
    attached = run_cli(base_env, "status", *where, f"-p{SPECIAL_PASSWORD}", lock_name)
    assert attached.returncode == 0, attached.stderr
    long_form = run_cli(base_env, "status", *where, f"--password={SPECIAL_PASSWORD}", lock_name)
    assert long_form.returncode == 0, long_form.stderr
    wrong = run_cli(base_env, "status", *where, "-pwrong", lock_name)
    assert wrong.returncode == cli.EXIT_UNAVAILABLE
    assert "wrong" not in wrong.stderr.replace("pymysqllock: error:", "")


def test_p_alone_asks_for_the_password(base_env, server, make_account, lock_name):
    user = make_account(SPECIAL_PASSWORD)
    args = [*CLI, "status", "--no-defaults", "-h", server.host, "-P", str(server.port)]
    # "-p NAME": as for the mysql client, the word after a bare -p is not its value.
    args += ["-u", user, "-p", lock_name]
    pid, terminal = os.forkpty()
    if pid == 0:  # pragma: no cover - the child only execs
        try:
            os.execve(sys.executable, args, base_env)  # noqa: S606 - no shell wanted
        finally:
            os._exit(127)
    output = b""
    try:
        output = _read_until(terminal, b"Enter password: ")
        os.write(terminal, SPECIAL_PASSWORD.encode() + b"\n")
        output += _read_until(terminal, None)
    finally:
        os.close(terminal)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert f"{lock_name}: free".encode() in output
    assert SPECIAL_PASSWORD.encode() not in output  # not echoed


def _read_until(fd, marker):
    """Read a pseudo-terminal until ``marker`` (or its end, for ``None``)."""
    data = b""
    deadline = time.monotonic() + WAIT
    while marker is None or marker not in data:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            pytest.fail(f"no {marker!r} from the terminal: {data!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            chunk = b""
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("how", ["option-file", "env-url"])
def test_password_is_never_on_a_command_line_or_in_the_log(
    base_env, server, make_account, child, tmp_path, lock_name, launch, how
):
    user = make_account(SPECIAL_PASSWORD)
    environment = dict(base_env)
    if how == "option-file":
        options = _option_file(tmp_path / "my.cnf", server, user, SPECIAL_PASSWORD)
        where = ["--defaults-file", options]
    else:
        environment[cli.URL_ENV] = url_for(server, user, SPECIAL_PASSWORD)
        where = []
    log, gate = tmp_path / "log", tmp_path / "gate"
    process = launch(environment, "run", "-vv", *where, lock_name, "--", *child, log, "job", gate)
    start = wait_for_line(log, "job start")
    secrets = [SPECIAL_PASSWORD, urllib.parse.quote(SPECIAL_PASSWORD, safe="")]
    for pid in (process.pid, int(field(start, "pid"))):
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert not any(secret in command_line for secret in secrets)
    gate.touch()
    code, out, err = finish(process)
    assert code == 0, err
    assert "DEBUG" in err  # -vv did log
    assert not any(secret in out + err for secret in secrets)


def test_connection_flags(base_env, server, lock_name):
    where = ["--no-defaults", "-h", server.host, "-P", server.port, "-u", server.user]
    result = run_cli(base_env, "status", *where, "-D", server.database, lock_name)
    assert result.returncode == 0, result.stderr


def test_flags_override_the_url(base_env, server, lock_name):
    url = f"mysql://{server.user}@{server.host}:1/{server.database}"
    result = run_cli(base_env, "status", "--url", url, "-P", server.port, lock_name)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("driver", DRIVER_NAMES)
def test_driver_flag(env, lock_name, driver):
    result = run_cli(env, "status", "-vv", "--driver", driver, lock_name)
    assert result.returncode == 0, result.stderr
    assert f"with {driver}" in result.stderr


def test_socket_flag_and_the_localhost_rule(base_env, server, lock_name):
    socket_path = getattr(server, "socket", None)
    if socket_path is None:
        pytest.skip("the session server is not a throwaway server with a known socket")
    via_socket = run_cli(
        base_env, "status", "--no-defaults", "-S", socket_path, "-u", server.user, lock_name
    )
    assert via_socket.returncode == 0, via_socket.stderr
    # As for the mysql client, a socket is ignored when the host is not localhost.
    via_tcp = run_cli(
        base_env,
        "status",
        "--no-defaults",
        "-S",
        "/nonexistent.sock",
        "-h",
        server.host,
        "-P",
        server.port,
        "-u",
        server.user,
        lock_name,
    )
    assert via_tcp.returncode == 0, via_tcp.stderr


# --------------------------------------------------------------------------- resolution


def _resolve(argv, environ, answer="typed"):
    return cli.resolve_connection(cli.parse_args(argv), environ, prompt=lambda _: answer)


def test_precedence_of_connection_sources(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / ".my.cnf").write_text("[client]\nhost=from-home\nuser=home\n")
    named = tmp_path / "named.cnf"
    named.write_text("[client]\nhost=from-file\n")
    environ = {cli.URL_ENV: "mysql://env@from-env/db"}
    resolved = _resolve(["status", "--url", "mysql://flag@from-flag/x", "n"], environ)
    assert resolved.connect_kwargs["host"] == "from-flag"
    resolved = _resolve(["status", "--defaults-file", str(named), "n"], environ)
    assert resolved.connect_kwargs == {"host": "from-file"}
    assert _resolve(["status", "n"], environ).connect_kwargs["host"] == "from-env"
    defaults = _resolve(["status", "n"], {}).connect_kwargs
    assert defaults["host"] == "from-home"
    assert defaults["user"] == "home"
    assert "host" not in _resolve(["status", "--no-defaults", "n"], {}).connect_kwargs
    extra = tmp_path / "extra.cnf"
    extra.write_text("[client]\nuser=extra\nport=3307\n")
    # The extra file comes before ~/.my.cnf, which therefore wins.
    merged = _resolve(["status", "--defaults-extra-file", str(extra), "n"], {}).connect_kwargs
    assert (merged["user"], merged["port"]) == ("home", 3307)


def test_flags_and_prompt_override_every_source():
    environ = {cli.URL_ENV: "mysql+mysqldb://u:pw@h:1/db?unix_socket=/s&namespace=ns"}
    resolved = _resolve(["status", "-u", "other", "-P", "2", "-p", "n"], environ)
    assert resolved.driver == "MySQLdb"
    assert resolved.locker_options == {"namespace": "ns"}
    # The host is not localhost, so the socket is dropped, as the mysql client would.
    assert resolved.connect_kwargs == {
        "user": "other",
        "password": "typed",
        "host": "h",
        "port": 2,
        "database": "db",
    }
    assert "typed" not in repr(resolved)
    assert _resolve(["status", "--driver", "pymysql", "n"], environ).driver == "pymysql"
    local = {cli.URL_ENV: "mysql://u@localhost/db?unix_socket=/s"}
    assert _resolve(["status", "n"], local).connect_kwargs["unix_socket"] == "/s"


def test_a_tls_file_that_cannot_be_read_is_refused_before_the_password_prompt(tmp_path):
    # The check is the library's (PyMySQLLock.tls.check_files; pairing a lone certificate or
    # key is tls_request's): the command line runs it before it asks for anything.
    missing = tmp_path / "missing.pem"

    def prompt(_: str) -> str:
        raise AssertionError("prompted for a password before the TLS files were checked")

    args = cli.parse_args(["status", "--no-defaults", "-p", "--ssl-ca", str(missing), "n"])
    with pytest.raises(InvalidArgumentError, match=f"ssl_ca file {missing}: No such file"):
        cli.resolve_connection(args, {}, prompt=prompt)
    url = f"mysql://u@h/db?ssl_ca={urllib.parse.quote(str(missing))}"
    with pytest.raises(InvalidArgumentError, match=f"ssl_ca file {missing}"):
        _resolve(["status", "n"], {cli.URL_ENV: url})
    pem = tmp_path / "client.pem"
    pem.write_text("certificate and key\n")
    resolved = _resolve(["status", "--no-defaults", "--ssl-cert", str(pem), "n"], {})
    assert resolved.connect_kwargs["ssl_cert"] == str(pem)


def test_an_unread_tls_option_of_an_option_file_is_refused(tmp_path):
    """Ignoring ssl-verify-server-cert would connect with less checking than the file asks."""
    conf = tmp_path / "my.cnf"
    conf.write_text("[client]\nhost=db\nloose-ssl-verify-server-cert\ntls_version=TLSv1.3\n")
    conf.chmod(0o600)
    argv = ["status", "--defaults-file", str(conf), "n"]
    with pytest.raises(cli.UsageError, match="set ssl-verify-server-cert, tls-version, which"):
        _resolve(argv, {})
    resolved = _resolve([*argv[:-1], "--ssl-mode", "VERIFY_IDENTITY", "n"], {})
    assert resolved.connect_kwargs == {"host": "db", "ssl_mode": "VERIFY_IDENTITY"}


@pytest.mark.parametrize("driver_name", ["pymysql", "mysql.connector", "MySQLdb"])
def test_a_missing_tls_file_is_a_usage_error_with_every_driver(tmp_path, driver_name):
    """Before this check, each driver failed its own way, some only once the server offered
    TLS; the command line now names the file, and connects to nothing."""
    missing = tmp_path / "ca.pem"
    flags = ["--no-defaults", "-h", "127.0.0.1", "-P", "9", "--driver", driver_name]
    result = subprocess.run(
        [*CLI, "status", *flags, "--ssl-ca", str(missing), "n"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    assert f"cannot read the ssl_ca file {missing}" in result.stderr


def test_p_then_a_word_is_a_prompt_and_a_positional():
    args = cli.parse_args(["status", "-p", "name"])
    assert args.password_prompt
    assert args.password is None
    assert args.name == "name"
    attached = cli.parse_args(["status", "-psecret", "name"])
    assert (attached.password, attached.password_prompt) == ("secret", False)
    run = cli.parse_args(["run", "name", "--", "cmd", "-p", "-pX", "--password"])
    assert run.command == ["cmd", "-p", "-pX", "--password"]
    assert run.password is None
    assert not run.password_prompt


# --------------------------------------------------------------------------- option files


def test_option_file_syntax():
    text = textwrap.dedent(
        r"""
        ; a comment
        # another
        [client]
        host = db.example   # trailing comment
        user="quoted # not a comment"
        loose_ssl_ca = '/etc/ca.pem'
        password = a\tb\sc\\d\"e
        port=3307
        unknown-option = ignored
        [mysqld]
        host = server-side
        [CLIENT-server]
        socket = /run/mysqld/mysqld.sock
        [pymysqllock]
        port = 3308
        """
    )
    options = optionfile.parse_text(text)
    assert options == {
        "host": "db.example",
        "user": "quoted # not a comment",
        "ssl-ca": "/etc/ca.pem",
        "password": 'a\tb c\\d"e',
        "port": "3308",
        "socket": "/run/mysqld/mysqld.sock",
    }
    assert optionfile.connect_options(options) == {
        "host": "db.example",
        "user": "quoted # not a comment",
        "ssl_ca": "/etc/ca.pem",
        "password": 'a\tb c\\d"e',
        "port": 3308,
        "unix_socket": "/run/mysqld/mysqld.sock",
    }


def test_option_file_password_without_value_means_prompt():
    options = optionfile.parse_text("[client]\npassword\n")
    assert options == {"password": optionfile.PROMPT}


@pytest.mark.parametrize(
    "text",
    [
        "host = x\n",  # before any group
        "[client\nhost = x\n",
        "[client]\nport = http\n",
        "[client]\nhost\n",
        "[client]\n= x\n",
        "[client]\n!unknown x\n",
    ],
    ids=["no-group", "unclosed-group", "bad-port", "host-without-value", "no-name", "directive"],
)
def test_option_file_errors_name_the_line(text):
    with pytest.raises(optionfile.OptionFileError, match=r"line \d"):
        optionfile.parse_text(text, source="my.cnf")


def test_option_file_includes(tmp_path):
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "b.cnf").write_text("[client]\nuser = from-b\n")
    (conf_d / "a.cnf").write_text("[client]\nuser = from-a\nport = 1\n")
    (conf_d / "ignored.txt").write_text("[client]\nuser = not-a-cnf-file\n")
    (tmp_path / "secret.cnf").write_text("[client]\npassword = s3cret\n")
    main = tmp_path / "main.cnf"
    main.write_text("[client]\nhost = h\n!includedir conf.d\n!include secret.cnf\n")
    assert optionfile.read_files([main]) == {
        "host": "h",
        "user": "from-b",
        "port": "1",
        "password": "s3cret",
    }


def test_option_file_include_loop_is_an_error(tmp_path):
    looping = tmp_path / "loop.cnf"
    looping.write_text(f"[client]\nhost = h\n!include {looping}\n")
    with pytest.raises(optionfile.OptionFileError, match="nested more than"):
        optionfile.read_files([looping])


def test_option_files_later_wins_and_missing_defaults_are_skipped(tmp_path):
    first, second = tmp_path / "first.cnf", tmp_path / "second.cnf"
    first.write_text("[client]\nhost = one\nuser = one\n")
    second.write_text("[client]\nhost = two\n")
    options = optionfile.read_files([first, tmp_path / "missing.cnf", second])
    assert options == {"host": "two", "user": "one"}
    with pytest.raises(optionfile.OptionFileError, match="does not exist"):
        optionfile.read_files([tmp_path / "missing.cnf"], required=[tmp_path / "missing.cnf"])


def test_world_writable_option_files(tmp_path):
    path = tmp_path / "open.cnf"
    path.write_text("[client]\nhost = anyone-could-have-written-this\n")
    path.chmod(0o666)
    assert optionfile.read_files([path]) == {}
    with pytest.raises(optionfile.OptionFileError, match="world-writable"):
        optionfile.read_files([path], required=[path])


def test_default_files_order(tmp_path):
    files = optionfile.default_files({"MYSQL_HOME": "/opt/mysql"}, home=tmp_path)
    assert files == [
        Path("/etc/my.cnf"),
        Path("/etc/mysql/my.cnf"),
        Path("/opt/mysql/my.cnf"),
        tmp_path / ".my.cnf",
    ]


# --------------------------------------------------------------------------- demo


def test_demo_starts_its_own_server_and_finds_no_overlap(base_env):
    result = run_cli(base_env, "demo", "--workers", "3", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "starting a throwaway database server" in out
    assert "KILLED with SIGKILL while holding the lock" in out
    assert "freed the dead worker's lock" in out
    assert "overlapping critical sections: 0" in out
    assert "OK: no two workers ever held the lock at the same time" in out
    assert out.rstrip().endswith("removed the throwaway server")
    for worker in (1, 2, 3):
        assert f"worker {worker}  HOLDS the lock" in out


def test_demo_on_a_given_server(base_env, server):
    result = run_cli(base_env, "demo", "--url", server.url, "--workers", "2", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "throwaway" not in result.stdout
    assert "overlapping critical sections: 0" in result.stdout


def test_demo_overlap_check():
    from PyMySQLLock.demo import Section, find_overlaps

    apart = [Section(1, 0.0, 1.0), Section(2, 1.5, 2.0), Section(3, 1.0001, 1.4)]
    assert find_overlaps(apart) == []
    nested = [Section(1, 0.0, 5.0), Section(2, 1.0, 2.0), Section(3, 3.0, 4.0)]
    assert find_overlaps(nested) == [(nested[0], nested[1]), (nested[0], nested[2])]
