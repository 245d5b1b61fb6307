"""PyMySQLLock 0.2.0's documented usage works unchanged (1.0 is a drop-in replacement)."""

from __future__ import annotations

import gc
import importlib
import sys
import threading
import time

import pytest

from PyMySQLLock import Lock, Locker

#: The conftest's grace for a closed connection to leave the server, and for the keepalive
#: thread to end after the last release.
DISCONNECT_GRACE = 5.0
THREAD_GRACE = 3.0


@pytest.fixture
def connect_function(driver):
    """The driver's own ``connect``, as 0.2.0 users pass it in ``mysql_lib_connector``."""
    return importlib.import_module(driver).connect


@pytest.fixture
def readme_locker(server):
    """``Locker(host=..., user=..., password=..., database=...)`` exactly as in the 0.2.0 README."""
    locker = Locker(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.database,
    )
    yield locker
    locker.close()


def _holder(sql, name):
    return sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]


def test_readme_usage(readme_locker, lock_name, sql):
    locker = readme_locker
    lock = locker.lock(lock_name)
    assert lock.acquire() is True
    assert lock.locked() is True
    assert _holder(sql, lock_name) is not None
    assert lock_name in locker.get_all_locks()
    lock.release()
    assert lock.locked() is False
    assert _holder(sql, lock_name) is None
    assert lock_name not in locker.get_all_locks()


def test_readme_acquire_with_timeout_and_refresh_interval(readme_locker, lock_name, sql):
    lock = readme_locker.lock(lock_name)
    assert lock.acquire(timeout=10, refresh_interval_secs=1) is True
    assert lock.locked()
    lock.release()
    assert lock.acquire(5) is True
    assert _holder(sql, lock_name) is not None
    lock.release()
    assert not lock.locked()


def test_acquire_returns_false_on_timeout(readme_locker, make_locker, lock_name):
    assert make_locker().lock(lock_name).acquire(0) is True
    lock = readme_locker.lock(lock_name)
    assert lock.acquire(timeout=1) is False
    assert lock.locked() is False


def test_get_all_locks_returns_a_list_of_names(readme_locker, unique_name):
    names = [unique_name(), unique_name()]
    locks = [readme_locker.lock(name) for name in names]
    for lock in locks:
        assert lock.acquire() is True
    listed = readme_locker.get_all_locks()
    assert isinstance(listed, list)
    assert set(names) <= set(listed)
    for lock in locks:
        lock.release()


def test_default_driver_is_pymysql_then_connector_then_mysqldb(server, monkeypatch):
    expected = ["pymysql", "mysql.connector", "MySQLdb"]
    for missing in range(len(expected)):
        with Locker(**server.connect_kwargs()) as locker:
            assert locker.driver.name == expected[missing]
        monkeypatch.setitem(sys.modules, expected[missing], None)


def test_mysql_lib_connector_picks_the_driver(
    server, driver, connect_function, lock_name, sql, make_locker
):
    locker = make_locker(mysql_lib_connector=connect_function)
    assert locker.driver.name == driver
    lock = locker.lock(lock_name)
    assert lock.acquire(timeout=10, refresh_interval_secs=1) is True
    assert _holder(sql, lock_name) == lock.connection_id
    lock.release()


def test_mysql_lib_connector_is_called_for_connections(server, driver, lock_name, make_locker):
    real_connect = importlib.import_module(driver).connect
    calls = []

    def counting_connect(*args, **kwargs):
        calls.append(kwargs.get("host"))
        return real_connect(*args, **kwargs)

    counting_connect.__module__ = real_connect.__module__
    locker = make_locker(mysql_lib_connector=counting_connect)
    assert calls == [server.host]
    lock = locker.lock(lock_name)
    assert lock.acquire() is True
    lock.release()
    assert len(calls) == 1  # the constructor's connection served the acquire


class RecordingLock(Lock):
    """A Lock subclass as a 0.2.0 user might write it: extra state, overridden methods."""

    def __init__(self, locker, name, **kwargs):
        super().__init__(locker, name, **kwargs)
        self.history = []

    def acquire(self, *args, **kwargs):
        acquired = super().acquire(*args, **kwargs)
        self.history.append(("acquire", acquired))
        return acquired

    def release(self):
        super().release()
        self.history.append(("release", None))


class TwoArgumentLock(Lock):
    """A Lock subclass with 0.2.0's constructor signature, ``(locker, name)``."""

    def __init__(self, locker, name):
        super().__init__(locker, name)
        self.made_by_subclass = True


def test_lock_class_hook(server, driver, lock_name, sql):
    class RecordingLocker(Locker):
        lock_class = RecordingLock

    with RecordingLocker(driver=driver, **server.connect_kwargs()) as locker:
        lock = locker.lock(lock_name)
        assert isinstance(lock, RecordingLock)
        assert lock.acquire() is True
        assert _holder(sql, lock_name) == lock.connection_id
        lock.release()
        assert lock.history == [("acquire", True), ("release", None)]


def test_lock_class_with_the_0_2_0_constructor_signature(server, driver, lock_name):
    class OldStyleLocker(Locker):
        lock_class = TwoArgumentLock

    with OldStyleLocker(driver=driver, **server.connect_kwargs()) as locker:
        lock = locker.lock(lock_name)
        assert isinstance(lock, TwoArgumentLock)
        assert lock.made_by_subclass
        assert lock.acquire(5) is True
        lock.release()


def test_connect_failure_is_still_an_exception(server, driver):
    # 0.2.0 raised a bare Exception; code catching Exception keeps working.
    with pytest.raises(Exception, match="Could not connect to db"):
        Locker(driver=driver, **{**server.connect_kwargs(), "password": "not-the-password"})


def test_locker_dropped_without_close_frees_its_connections(
    server, driver, lock_name, server_sessions
):
    # 0.2.0 had no close(): code written for it drops its Locker after use.
    baseline = set(server_sessions())
    keepalives_before = set(threading.enumerate())
    locker = Locker(driver=driver, **server.connect_kwargs())
    lock = locker.lock(lock_name)
    assert lock.acquire() is True
    threading.Event().wait(0.2)  # the work done under the lock
    lock.release()
    del lock, locker
    deadline = time.monotonic() + THREAD_GRACE + DISCONNECT_GRACE
    while True:
        gc.collect()
        left = set(server_sessions()) - baseline
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"sessions of the dropped Locker still open: {sorted(left)}"
    for thread in set(threading.enumerate()) - keepalives_before:
        thread.join(THREAD_GRACE)
