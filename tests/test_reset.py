"""A reset or change of user on a lock's own connection frees the lock, and the library says so.

``COM_RESET_CONNECTION`` (a pool's "reset on return", a framework's cleanup hook) and
``COM_CHANGE_USER`` keep the session (same ``CONNECTION_ID()``, same socket, no error) but
release its ``GET_LOCK`` locks on MySQL and MariaDB alike (see shared/reference
mysql-semantics.md section 4). Nothing fails on the client, so only the keepalive's ownership
check (``IS_USED_LOCK(name) = CONNECTION_ID()``) can notice: these tests show that it does, at
its next run, and that the freed lock is never reported held while another session holds it.

The library never hands its lock connections out, so the tests reach one through the lock's
private ``_session`` (``.raw`` is the driver connection, ``.mutex`` serialises its users): that
is how foreign code sharing the connection would do it, and it is the one thing under test. The
mutex is taken as any code sharing the connection would have to, to keep the keepalive off the
socket during the command.
"""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from PyMySQLLock import LockLostError

#: The refresh interval of the locks under test; the spec's bound is the interval + 1 s.
INTERVAL = 0.5
#: ``COM_RESET_CONNECTION`` (MySQL 5.7+, MariaDB 10.2+); PyMySQL has no constant for it.
COM_RESET_CONNECTION = 0x1F


class LostReport:
    """An ``on_lost`` callback that records when and how often it was called."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0
        self.at: float | None = None

    def __call__(self, lock: object) -> None:
        self.count += 1
        self.at = time.monotonic()
        self.event.set()


def _mysqldb_reset_connection(raw) -> None:
    """``mysql_reset_connection()`` of the C client, which mysqlclient does not wrap."""
    import MySQLdb._mysql

    api = ctypes.PyDLL(None)  # a private handle: no shared ctypes prototypes are changed
    get_name = api.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = api.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    capsule = raw._get_native_connection()
    handle = get_pointer(capsule, get_name(capsule))
    reset = ctypes.CDLL(MySQLdb._mysql.__file__).mysql_reset_connection
    reset.restype, reset.argtypes = ctypes.c_int, [ctypes.c_void_p]
    assert reset(handle) == 0, raw.error()


def reset_connection(driver: str, raw) -> None:
    """Send ``COM_RESET_CONNECTION`` on ``raw`` with the driver's own means."""
    if driver == "pymysql":
        raw._execute_command(COM_RESET_CONNECTION, b"")
        raw._read_ok_packet()
    elif driver == "mysql.connector":
        raw.cmd_reset_connection()
    else:
        _mysqldb_reset_connection(raw)


def change_user(driver: str, raw, server) -> None:
    """Send ``COM_CHANGE_USER`` (to the same account) on ``raw``."""
    if driver == "MySQLdb":
        raw.change_user(server.user, server.password, server.database)
    else:
        raw.cmd_change_user(
            username=server.user, password=server.password, database=server.database
        )


def _holder(sql, name: str) -> int | None:
    value = sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
    return None if value is None else int(value)


def _session_exists(sql, connection_id: int) -> bool:
    rows = sql("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s", (connection_id,))
    return len(rows) == 1


def _assert_reported_lost(lock, report: LostReport, since: float) -> None:
    bound = INTERVAL + 1
    assert report.event.wait(max(0.0, since + bound - time.monotonic())), (
        f"not reported lost within {bound} s of the reset"
    )
    assert report.at is not None
    assert report.at - since <= bound
    assert report.count == 1
    assert lock.lost is True
    assert lock.locked() is False
    assert lock.connection_id is None
    with pytest.raises(LockLostError):
        lock.ensure_held()


def test_reset_connection_frees_the_lock_and_it_is_reported_lost(
    driver, make_locker, lock_name, sql
):
    report = LostReport()
    lock = make_locker().lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=report)
    assert lock.acquire(0) is True
    connection_id = lock.connection_id
    assert _holder(sql, lock_name) == connection_id

    session = lock._session  # private on purpose: see the module docstring
    with session.mutex:
        reset_connection(driver, session.raw)
        reset_at = time.monotonic()
        assert _session_exists(sql, connection_id)
        # The session survives the reset, its lock does not: another session takes it at once.
        rival = make_locker().lock(lock_name)
        assert rival.acquire(0) is True
    assert _holder(sql, lock_name) == rival.connection_id

    # The check finds another session holding it.
    _assert_reported_lost(lock, report, reset_at)
    assert _holder(sql, lock_name) == rival.connection_id
    lock.release()  # only cleans up
    rival.release()
    assert lock.acquire(0) is True
    assert _holder(sql, lock_name) == lock.connection_id
    lock.release()
    assert report.count == 1


@pytest.mark.parametrize("driver", ["MySQLdb", "mysql.connector"], ids=["mysqldb", "connector"])
def test_change_user_frees_the_lock_and_it_is_reported_lost(
    driver, server, make_locker, lock_name, sql
):
    report = LostReport()
    lock = make_locker().lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=report)
    assert lock.acquire(0) is True
    connection_id = lock.connection_id

    session = lock._session  # private on purpose: see the module docstring
    with session.mutex:
        change_user(driver, session.raw, server)
        changed_at = time.monotonic()
        # Same session, still connected, without its lock.
        assert _session_exists(sql, connection_id)
        assert _holder(sql, lock_name) is None
    # The check finds the lock free.
    _assert_reported_lost(lock, report, changed_at)
    assert _holder(sql, lock_name) is None
    rival = make_locker().lock(lock_name)
    assert rival.acquire(0) is True
    assert _holder(sql, lock_name) == rival.connection_id
    assert not lock.locked()
    rival.release()
