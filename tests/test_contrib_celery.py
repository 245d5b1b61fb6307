"""LockedTask with real Celery workers (filesystem broker: no broker server needed).

Each worker consumes a queue of its own (named after it): kombu's filesystem transport is not
safe for two consumers of one queue, and sending each task to a chosen worker makes the two
workers contend for the same key for certain.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("celery", reason="Celery comes with the test extra")

from PyMySQLLock import InvalidArgumentError, Locker

TESTS = Path(__file__).resolve().parent
WORKER_START_SECONDS = 60.0


def _poll(condition, timeout, what):
    """Wait for another process's doing (no event crosses processes); fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout} s")
        time.sleep(0.05)


class Workers:
    """Celery worker processes on one filesystem broker, as an account of their own."""

    def __init__(self, base: Path, env: dict[str, str]) -> None:
        self.base = base
        self.env = env
        self.processes: list[subprocess.Popen] = []

    def start(self, label: str) -> subprocess.Popen:
        log = self.base / f"{label}.log"
        command = [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker"]
        command += ["--pool=solo", "-n", f"{label}@%h", "-Q", label]
        command += ["-l", "info", f"--logfile={log}"]
        command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        process = subprocess.Popen(
            command,
            cwd=TESTS,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        _poll(
            lambda: (log.exists() and "ready." in log.read_text()) or process.poll() is not None,
            WORKER_START_SECONDS,
            f"worker {label} ready",
        )
        assert process.poll() is None, log.read_text()
        return process

    def journal(self) -> list[tuple[str, str, int, float]]:
        path = self.base / "journal.txt"
        if not path.exists():
            return []
        lines = [line.split() for line in path.read_text().splitlines() if line]
        return [(event, key, int(pid), float(at)) for event, key, pid, at in lines]

    def events(self, event: str, key: str) -> list[tuple[str, str, int, float]]:
        return [row for row in self.journal() if row[0] == event and row[1] == key]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture(scope="module")
def account(server):
    """The workers' own account: their idle pooled sessions outlive single tests."""
    user = f"celery_{secrets.token_hex(3)}"
    password = secrets.token_hex(8)
    server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
    server.sql(f"GRANT ALL PRIVILEGES ON `{server.database}`.* TO %s@'%%'", (user,))
    server.sql("GRANT PROCESS ON *.* TO %s@'%%'", (user,))
    yield {**server.connect_kwargs(), "user": user, "password": password}
    server.sql("DROP USER IF EXISTS %s@'%%'", (user,))


@pytest.fixture(scope="module")
def celery_env(account, tmp_path_factory):
    base = tmp_path_factory.mktemp("celery")
    (base / "queue").mkdir()
    (base / "processed").mkdir()
    env = {
        **os.environ,
        "PYMYSQLLOCK_CELERY_DIR": str(base),
        "PYMYSQLLOCK_CELERY_CONNECT": json.dumps(account),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return base, env


@pytest.fixture(scope="module")
def tasks(celery_env):
    """The task module, imported here too, to send tasks (its lazy Locker never connects)."""
    _, env = celery_env
    saved = {key: os.environ.get(key) for key in env if key.startswith("PYMYSQLLOCK_CELERY")}
    os.environ.update({key: env[key] for key in saved})
    module = importlib.import_module("celery_tasks")
    yield module
    sys.modules.pop("celery_tasks", None)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def workers(celery_env, tasks):
    base, env = celery_env
    made = Workers(base, env)
    try:
        made.start("w1")
        made.start("w2")
        yield made
    finally:
        made.stop()


def _held(server, name):
    rows = server.sql("SELECT IS_USED_LOCK(%s)", (name,))
    return rows[0][0]


def test_two_workers_never_run_the_same_key_at_once(workers, tasks):
    key, other = f"k{secrets.token_hex(3)}", f"o{secrets.token_hex(3)}"
    for queue in ("w1", "w2", "w1", "w2"):
        tasks.work.apply_async((key, 0.3), queue=queue)
    tasks.work.apply_async((other, 0.3), queue="w1")
    _poll(lambda: len(workers.events("end", key)) == 4, 60, "4 runs of the key ended")
    _poll(lambda: len(workers.events("end", other)) == 1, 60, "the other key's run ended")
    runs = sorted(
        zip(
            (row[3] for row in workers.events("start", key)),
            (row[3] for row in workers.events("end", key)),
        )
    )
    for (_, end), (next_start, _) in zip(runs, runs[1:]):
        assert next_start >= end, f"two runs of {key} overlapped: {runs}"
    assert len({row[2] for row in workers.events("start", key)}) == 2  # both workers ran it


def test_a_killed_worker_does_not_block_the_next_run(workers, tasks, server):
    key = f"kill{secrets.token_hex(3)}"
    name = f"{tasks.hold.name}:{key}"
    tasks.hold.apply_async((key, 600), queue="w1")
    _, _, pid, _ = _poll(lambda: workers.events("holding", key), 60, "the task started")[0]
    victim = next(p for p in workers.processes if p.pid == pid)
    assert _held(server, name) is not None
    os.kill(pid, signal.SIGKILL)
    victim.wait(30)
    # The server frees the lock as soon as it sees the dead worker's connection close.
    _poll(lambda: _held(server, name) is None, 10, "the lock freed after SIGKILL")
    tasks.hold.apply_async((key, 0), queue="w2")
    runs = _poll(lambda: len(workers.events("holding", key)) == 2, 60, "the next run ran")
    assert runs
    assert {row[2] for row in workers.events("holding", key)} != {pid}


def test_skip_returns_at_once_while_another_process_holds_the_key(account, tasks, lock_name):
    def ran():
        journal = tasks.JOURNAL.read_text() if tasks.JOURNAL.exists() else ""
        return [line for line in journal.splitlines() if line.split()[:2] == ["once", lock_name]]

    name = f"{tasks.once.name}:{lock_name}"
    try:
        with Locker(**account) as other_process:
            with other_process.lock(name, timeout=0):
                assert tasks.once(lock_name) is None  # a direct call is locked too: skipped
                assert ran() == []
            tasks.once(lock_name)
            assert len(ran()) == 1
            assert not other_process.is_locked(name)
    finally:
        tasks.locker.close()


def test_options_are_checked_when_the_task_is_made(tasks):
    from PyMySQLLock.contrib.celery import LockedTask

    def job():
        return None

    with pytest.raises(InvalidArgumentError, match="lock_on_busy"):
        _ = tasks.app.task(base=LockedTask, lock_on_busy="later", name="bad")(job).name


def test_a_minimum_hold_makes_a_repeated_run_skip(account, tasks, lock_name):
    from PyMySQLLock.contrib.celery import LockedTask

    runs = []
    with Locker(**account) as worker_locker, Locker(**account) as observer:

        def nightly():
            runs.append(1)
            return "ran"

        task = tasks.app.task(
            base=LockedTask, locker=worker_locker, lock_hold_at_least=600, name=lock_name
        )(nightly)
        assert task() == "ran"  # returns at once; the lock stays held
        assert observer.is_locked(lock_name)
        assert task() is None  # the repeated trigger is skipped
        assert runs == [1]
    # Closing the worker's Locker ended the hold.
    with Locker(**account) as after:
        assert not after.is_locked(lock_name)
    with pytest.raises(InvalidArgumentError, match="lock_hold_at_least"):
        _ = tasks.app.task(base=LockedTask, lock_hold_at_least=-1, name="bad-hold")(nightly).name
