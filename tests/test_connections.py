"""Connections: reuse, no leaks, connection failures, drivers, and the Locker's own lifecycle."""

from __future__ import annotations

import importlib
import math
import random
import socket
import subprocess
import sys
import textwrap
import time
import traceback

import pytest

from PyMySQLLock import (
    DriverNotInstalledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockAlreadyHeldError,
    LockConnectionError,
    Locker,
    LockError,
    LockNotHeldError,
)
from PyMySQLLock.drivers import DRIVERS

#: The pip extra that installs each driver.
EXTRAS = {entry.name: entry.extra for entry in DRIVERS}
WRONG_PASSWORD = "Wr0ng-Pa55word-7f3e"


def _sessions_beyond(server_sessions, allowed, timeout=5.0):
    """Wait until the server lists no session but those in ``allowed``.

    Sessions of ``allowed`` may end meanwhile: one that an earlier test closed can still be
    listed when a baseline is read, and leave during the test.

    :returns: the sessions not in ``allowed`` still listed at the end (empty on success).
    """
    deadline = time.monotonic() + timeout
    while True:
        beyond = set(server_sessions()) - allowed
        if not beyond or time.monotonic() > deadline:
            return beyond
        time.sleep(0.02)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- reuse


def test_warm_locker_opens_no_connection(locker, lock_name, server_traffic):
    lock = locker.lock(lock_name)
    with server_traffic() as traffic:
        for _ in range(25):
            assert lock.acquire(0) is True
            lock.release()
    assert traffic.connections == 0


def test_pool_serves_several_locks_held_at_once(locker, unique_name, server_traffic):
    locks = [locker.lock(unique_name()) for _ in range(4)]
    for lock in locks:  # warms the pool up to four connections
        assert lock.acquire(0) is True
    for lock in locks:
        lock.release()
    with server_traffic() as traffic:
        for _ in range(10):
            for lock in locks:
                assert lock.acquire(0) is True
            for lock in reversed(locks):
                lock.release()
    assert traffic.connections == 0


def test_timed_out_acquire_gives_its_connection_back(
    locker, make_locker, lock_name, unique_name, server_traffic
):
    assert make_locker().lock(lock_name).acquire(0) is True
    busy = locker.lock(lock_name)
    free = locker.lock(unique_name())
    with server_traffic() as traffic:
        for _ in range(10):
            assert busy.acquire(0) is False
            assert busy.acquire(0.05) is False
        assert free.acquire(0) is True
        free.release()
    assert traffic.connections == 0


def test_interrupted_acquire_gives_its_connection_back(
    locker, make_locker, lock_name, unique_name, spawn, lock_waiters, sql, server_traffic
):
    assert make_locker().lock(lock_name).acquire(0) is True
    waiter = locker.lock(lock_name)
    worker = spawn(waiter.acquire, 30)
    (waiting_session,) = lock_waiters(lock_name)
    sql("KILL QUERY %s", (waiting_session,))
    assert worker.exception() is not None
    free = locker.lock(unique_name())
    with server_traffic() as traffic:
        assert free.acquire(0) is True
        free.release()
    assert traffic.connections == 0


def test_pool_size_zero_keeps_no_idle_connection(make_locker, lock_name, server_sessions):
    baseline = set(server_sessions())
    locker = make_locker(pool_size=0)
    lock = locker.lock(lock_name)
    assert lock.acquire(0) is True
    # The Locker's first connection (it learns the server on it) is closed, not kept; under
    # load the server may list it for a moment after the close.
    assert _sessions_beyond(server_sessions, baseline | {lock.connection_id}) == set()
    assert lock.connection_id in server_sessions()
    lock.release()
    assert _sessions_beyond(server_sessions, baseline) == set()


def test_thousands_of_mixed_operations_leave_nothing_behind(
    make_locker, unique_name, server_sessions
):
    baseline = set(server_sessions())
    pool_sizes = (2, 8)
    lockers = [make_locker(pool_size=size) for size in pool_sizes]
    names = [unique_name() for _ in range(6)]
    # locks[i][j]: Locker i's lock object for name j; the two Lockers contend on each name.
    locks = [[each.lock(name) for name in names] for each in lockers]
    rng = random.Random(20240229)
    counts = {"acquired": 0, "timed out": 0, "errors": 0}
    for _ in range(3000):
        side, which = rng.randrange(2), rng.randrange(len(names))
        lock, rival = locks[side][which], locks[1 - side][which]
        roll = rng.random()
        if roll < 0.45:
            if lock.locked():
                with pytest.raises(LockAlreadyHeldError):
                    lock.acquire(0)
                counts["errors"] += 1
            else:
                got = lock.acquire(0)
                assert got is (not rival.locked())
                counts["acquired" if got else "timed out"] += 1
        elif roll < 0.85:
            if lock.locked():
                lock.release()
            else:
                with pytest.raises(LockNotHeldError):
                    lock.release()
                counts["errors"] += 1
        elif roll < 0.95:
            with pytest.raises(InvalidArgumentError):
                lock.acquire(rng.choice([-2, -0.5, math.nan]))
            counts["errors"] += 1
        else:
            expected = lock.connection_id or rival.connection_id
            assert lockers[side].holder(names[which]) == expected
    assert min(counts.values()) > 100, counts
    # Each Locker has its held locks' sessions plus at most pool_size idle ones.
    held = sum(lock.locked() for row in locks for lock in row)
    assert len(set(server_sessions()) - baseline) <= held + sum(pool_sizes)
    for each in lockers:
        each.close()
    assert _sessions_beyond(server_sessions, baseline) == set()


# --------------------------------------------------------------------------- idle connections


@pytest.mark.parametrize("operation", ["acquire", "get_all_locks", "holder"])
def test_idle_connections_killed_on_the_server_are_replaced(
    make_locker, unique_name, sql, server_sessions, operation
):
    locker = make_locker()
    locks = [locker.lock(unique_name()) for _ in range(3)]
    for lock in locks:
        assert lock.acquire(0) is True
    pooled = {lock.connection_id for lock in locks}
    assert len(pooled) == len(locks)
    for lock in locks:
        lock.release()
    for connection_id in pooled:
        sql("KILL CONNECTION %s", (connection_id,))
    assert _sessions_beyond(server_sessions, set(server_sessions()) - pooled) == set()

    if operation == "acquire":
        for lock in locks:
            assert lock.acquire(0) is True
            assert lock.connection_id not in pooled
        for lock in locks:
            lock.release()
    elif operation == "get_all_locks":
        for _ in pooled:
            assert not {lock.name for lock in locks} & set(locker.get_all_locks())
    else:
        for lock in locks:
            assert locker.holder(lock.name) is None


# --------------------------------------------------------------------------- failures


def test_wrong_password_raises_connection_error_without_the_password(make_locker, driver):
    with pytest.raises(LockConnectionError) as info:
        make_locker(password=WRONG_PASSWORD)
    error = info.value
    assert isinstance(error, ConnectionError)
    assert isinstance(error, LockError)
    assert isinstance(error.__cause__, importlib.import_module(driver).Error)
    assert WRONG_PASSWORD not in str(error)
    assert WRONG_PASSWORD not in repr(error)
    assert WRONG_PASSWORD not in "".join(traceback.format_exception(error))


def test_unreachable_server_raises_connection_error(make_locker, driver):
    with pytest.raises(LockConnectionError) as info:
        make_locker(port=_free_port(), password=WRONG_PASSWORD)
    assert isinstance(info.value, ConnectionError)
    assert info.value.__cause__ is not None
    assert WRONG_PASSWORD not in str(info.value)


def test_unknown_driver_name_raises(server, server_traffic):
    with server_traffic() as traffic, pytest.raises(InvalidArgumentError) as info:
        Locker(driver="nosuchdriver", **server.connect_kwargs())
    assert isinstance(info.value, ValueError)
    assert "nosuchdriver" in str(info.value)
    assert traffic.connections == 0


def test_driver_of_the_wrong_type_raises(server):
    with pytest.raises(InvalidArgumentTypeError):
        Locker(driver=42, **server.connect_kwargs())


def test_missing_driver_raises_driver_not_installed_naming_the_extra(
    server, driver, monkeypatch, server_traffic
):
    monkeypatch.setitem(sys.modules, driver, None)
    with server_traffic() as traffic, pytest.raises(DriverNotInstalledError) as info:
        Locker(driver=driver, **server.connect_kwargs())
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, LockError)
    assert f"pip install PyMySQLLock[{EXTRAS[driver]}]" in str(info.value)
    assert traffic.connections == 0


def test_library_imports_without_any_driver():
    script = textwrap.dedent(
        """
        import sys
        for name in ("pymysql", "MySQLdb", "mysql", "mysql.connector"):
            sys.modules[name] = None
        import PyMySQLLock
        try:
            PyMySQLLock.Locker(host="127.0.0.1")
        except PyMySQLLock.DriverNotInstalledError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install PyMySQLLock[pymysql]" in done.stdout


# --------------------------------------------------------------------------- lifecycle


def test_locker_is_a_context_manager(server, driver, lock_name, sql, server_sessions):
    baseline = set(server_sessions())
    with Locker(driver=driver, **server.connect_kwargs()) as locker:
        assert not locker.closed
        lock = locker.lock(lock_name)
        assert lock.acquire(0) is True
    assert locker.closed
    assert not lock.locked()
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,)) == [(None,)]
    assert _sessions_beyond(server_sessions, baseline) == set()
    with pytest.raises(LockError):
        lock.acquire(0)


def test_locker_context_manager_closes_on_exception(server, driver, lock_name, sql):
    lockers = []

    def work():
        with Locker(driver=driver, **server.connect_kwargs()) as locker:
            lockers.append(locker)
            assert locker.lock(lock_name).acquire(0) is True
            raise KeyError(lock_name)

    with pytest.raises(KeyError):
        work()
    (locker,) = lockers
    assert locker.closed
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,)) == [(None,)]


def test_close_is_idempotent_and_releases_every_lock(locker, unique_name, sql):
    locks = [locker.lock(unique_name()) for _ in range(3)]
    for lock in locks:
        assert lock.acquire(0) is True
    locker.close()
    locker.close()
    for lock in locks:
        assert not lock.locked()
        assert sql("SELECT IS_USED_LOCK(%s)", (lock.name,)) == [(None,)]


def test_repr_of_a_locker_shows_no_password(server, driver):
    with Locker(driver=driver, **{**server.connect_kwargs(), "password": server.password}) as lk:
        shown = repr(lk)
    assert server.host in shown
    if server.password:
        assert server.password not in shown
