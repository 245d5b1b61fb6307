"""A forked child inherits a Locker holding a lock: it must neither use nor end the parent's.

The scenario runs in a separate interpreter (the "holder"), so that its child can end the way
real programs end, with ``sys.exit`` (interpreter shutdown, garbage collection of every inherited
connection object) or ``os._exit``, without a copy of the test runner living on in the child.
The holder reports on stdout and waits for instructions on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HOLDER = textwrap.dedent(
    """
    import gc, json, os, sys, threading
    from PyMySQLLock import Locker

    config = json.loads(sys.argv[1])
    lost = threading.Event()
    locker = Locker(driver=config["driver"], **config["connect"])
    lock = locker.lock(
        config["name"], refresh_interval_secs=config["interval"], on_lost=lambda _: lost.set()
    )
    assert lock.acquire(0)
    held_on = lock.connection_id
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        report = {"locked": lock.locked(), "lost": lock.lost, "connection": lock.connection_id}
        other = locker.lock(config["other"])
        report["other_acquired"] = other.acquire(timeout=5)
        report["other_connection"] = other.connection_id
        other.release()
        try:
            lock.release()
        except Exception as exc:
            report["release_error"] = type(exc).__name__
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(report))
        if config["exit"] == "sys.exit":
            del lock, other, locker
            gc.collect()
            sys.exit(0)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    print(json.dumps({
        "child": child,
        "exit_code": os.waitstatus_to_exitcode(status),
        "connection": held_on,
        "locked": lock.locked(),
    }), flush=True)
    command = sys.stdin.readline().strip()
    if command == "wait-for-loss":
        print(json.dumps({"lost": lost.wait(config["interval"] + 1.0), "locked": lock.locked()}),
              flush=True)
    locker.close()
    """
)

INTERVAL = 0.5


@pytest.fixture
def holder(server, driver, unique_name):
    """Start the holder process; yields ``(process, config, first report)``."""
    processes = []

    def start(exit_how):
        config = {
            "driver": driver,
            "connect": server.connect_kwargs(),
            "name": unique_name(),
            "other": unique_name(),
            "interval": INTERVAL,
            "exit": exit_how,
        }
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        line = process.stdout.readline()
        assert line, f"the holder died: {process.communicate(timeout=30)[1]}"
        return process, config, json.loads(line)

    yield start
    for process in processes:
        if process.poll() is None:
            process.communicate("\n", timeout=30)
        else:
            process.communicate(timeout=30)


def _finish(process, command=""):
    out, err = process.communicate(command + "\n", timeout=30)
    assert process.returncode == 0, err
    return json.loads(out) if out.strip() else None


@pytest.mark.parametrize("exit_how", ["sys.exit", "os._exit"])
def test_child_does_not_touch_the_parents_lock(holder, sql, exit_how):
    process, config, report = holder(exit_how)
    child = report["child"]
    assert report["exit_code"] == 0
    # In the child the inherited lock is not held, and was not lost either.
    assert child["locked"] is False
    assert child["lost"] is False
    assert child["connection"] is None
    assert child.get("release_error") == "LockNotHeldError"
    # The child may take another lock through the same Locker, on a connection of its own.
    assert child["other_acquired"] is True
    assert child["other_connection"] not in (None, report["connection"])

    # After the child ended and was reaped, the parent still holds its lock on its session...
    assert report["locked"] is True
    assert sql("SELECT IS_USED_LOCK(%s)", (config["name"],)) == [(report["connection"],)]
    assert sql("SELECT IS_USED_LOCK(%s)", (config["other"],)) == [(None,)]
    # ...and its keepalive still watches it: ending the session is noticed in time.
    sql("KILL CONNECTION %s", (report["connection"],))
    assert _finish(process, "wait-for-loss") == {"lost": True, "locked": False}


def test_parent_releases_normally_after_the_child_exited(holder, sql):
    process, config, report = holder("sys.exit")
    assert report["locked"] is True
    assert _finish(process) is None  # the holder closes its Locker, which releases the lock
    assert sql("SELECT IS_USED_LOCK(%s)", (config["name"],)) == [(None,)]
