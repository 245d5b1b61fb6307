"""The user's connect options cannot change what the library's own statements mean.

* One name is one lock under any ``charset``, ``collation`` or ``init_command``: a name held
  through a Locker opened with ``charset="latin1"`` is the same lock as the name held through a
  default Locker, through root's connection and through the ``mysql`` command-line client.
* Row-format and session options an application passes with its existing connect settings
  (cursor classes, ``conv``, ``raw``, ``use_unicode``, ``binary_prefix``, ``autocommit``,
  ``init_command``, ``sql_mode``, client flags) leave every public call working, with the lock
  held exactly while the API says so: acquire, holder, is_locked, the listings, release, loss
  detection and force_release.
* The same for the asyncio drivers (aiomysql, asyncmy) and :class:`~PyMySQLLock.aio.AsyncLocker`;
  there ``sql_mode`` is sent by the library as a parameter (both drivers paste it into
  ``SET sql_mode=`` unquoted, so a list of modes failed every connection), before the user's
  ``init_command`` as the drivers would.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from typing import Any

import aiomysql.cursors
import asyncmy.cursors
import mysql.connector
import MySQLdb.cursors
import pymysql.constants.CLIENT
import pymysql.cursors
import pytest
from mysql.connector.constants import ClientFlag
from mysql.connector.conversion import MySQLConverter

from PyMySQLLock import (
    DriverNotInstalledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockConnectionError,
    Locker,
    LockError,
)
from PyMySQLLock.connectoptions import rejected_arguments

#: Non-ASCII names of one, two and three UTF-8 bytes per character, with a quote and a backslash
#: that the drivers must escape (also under NO_BACKSLASH_ESCAPES).
SUFFIXES = ("-café'\\x", "-Привет", "-日本語")
CHARSETS = ("latin1", "utf8mb3", "utf8mb4", "binary", "ascii")
SESSION_OPTIONS: dict[str, Any] = {
    "charset": {"charset": "latin1"},
    "collation": {"charset": "latin1", "collation": "latin1_bin"},
    "autocommit": {"autocommit": False},
    "init_command": {"init_command": "SET NAMES latin1"},
    "sql_mode": {"sql_mode": "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,PIPES_AS_CONCAT"},
    "use_unicode": {"use_unicode": False},
}


class _StringConverter(MySQLConverter):  # type: ignore[misc]
    """A converter class an application might use: every value comes back as text."""

    def row_to_python(self, row: Any, fields: Any) -> tuple[Any, ...]:
        return tuple(None if value is None else bytes(value).decode() for value in row)


DRIVER_OPTIONS: dict[str, dict[str, Any]] = {
    "pymysql": {
        "DictCursor": {"cursorclass": pymysql.cursors.DictCursor},
        "SSDictCursor": {"cursorclass": pymysql.cursors.SSDictCursor},
        "conv": {"conv": {}},
        "binary_prefix": {"binary_prefix": True},
        "client_flag": {
            "client_flag": pymysql.constants.CLIENT.MULTI_STATEMENTS
            | pymysql.constants.CLIENT.FOUND_ROWS
            | pymysql.constants.CLIENT.INTERACTIVE
            | pymysql.constants.CLIENT.IGNORE_SPACE
        },
    },
    "MySQLdb": {
        "DictCursor": {"cursorclass": MySQLdb.cursors.DictCursor},
        "SSCursor": {"cursorclass": MySQLdb.cursors.SSCursor},
        "conv": {"conv": {}},
        "binary_prefix": {"binary_prefix": True},
        "client_flag": {"client_flag": 2 | 1024 | 256},
    },
    "mysql.connector": {
        "raw": {"raw": True},
        "converter_class": {"converter_class": _StringConverter},
        "buffered": {"buffered": True},
        "warnings": {"get_warnings": True, "raise_on_warnings": True},
        "client_flags": {
            "client_flags": [ClientFlag.FOUND_ROWS, ClientFlag.INTERACTIVE, ClientFlag.IGNORE_SPACE]
        },
    },
}

ASYNC_DRIVER_OPTIONS: dict[str, dict[str, Any]] = {
    "aiomysql": {
        "DictCursor": {"cursorclass": aiomysql.cursors.DictCursor},
        "SSDictCursor": {"cursorclass": aiomysql.cursors.SSDictCursor},
        "conv": {"conv": {}},
        "client_flag": {"client_flag": 2 | 1024 | 256 | 65536},
    },
    "asyncmy": {
        "DictCursor": {"cursor_cls": asyncmy.cursors.DictCursor},
        "conv": {"conv": {}},
        "binary_prefix": {"binary_prefix": True},
        "client_flag": {"client_flag": 2 | 1024 | 256},
    },
}


def _option_cases(table: dict[str, dict[str, Any]] = DRIVER_OPTIONS) -> list[Any]:
    cases = []
    for driver, own in table.items():
        for label, options in {**SESSION_OPTIONS, **own}.items():
            cases.append(pytest.param(driver, options, id=f"{driver}-{label}"))
    return cases


def _holder(sql: Any, name: str) -> int | None:
    value = sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
    return None if value is None else int(value)


@pytest.fixture
def optioned(server, request):
    """``optioned(driver, **options)``: Lockers closed after the test (the driver varies)."""
    made: list[Locker] = []

    def make(driver: str, **options: Any) -> Locker:
        new = Locker(driver=driver, **{**server.connect_kwargs(), **options})
        made.append(new)
        return new

    yield make
    for each in made:
        each.close()


@pytest.mark.parametrize(("driver_name", "options"), _option_cases())
def test_every_public_call_ignores_the_users_row_and_session_options(
    optioned, sql, lock_name, driver_name, options
):
    name = lock_name + SUFFIXES[0]
    locker = optioned(driver_name, pool_size=1, **options)
    plain = optioned(driver_name)
    lost = threading.Event()
    lock = locker.lock(name, refresh_interval_secs=0.05, on_lost=lambda _lock: lost.set())

    assert lock.acquire(timeout=1) is True
    assert _holder(sql, name) == lock.connection_id
    assert locker.holder(name) == lock.connection_id
    assert locker.is_locked(name) is True
    assert name in locker.get_all_locks()
    infos = [info for info in locker.list_locks() if info.name == name]
    assert [info.connection_id for info in infos] == [lock.connection_id]
    assert plain.lock(name).acquire(0) is False
    lock.release()
    assert _holder(sql, name) is None
    assert locker.holder(name) is None
    assert locker.is_locked(name) is False

    # Loss detection: the keepalive's check reads its answer in the library's format too.
    assert lock.acquire(0) is True
    sql("KILL %s", (lock.connection_id,))
    assert lost.wait(20), "the killed session's lock was not reported lost"
    assert lock.lost
    lock.release()

    other = plain.lock(name)
    assert other.acquire(0) is True
    assert locker.force_release(name) is True
    assert _holder(sql, name) is None
    other.release()  # reports the loss; cleans up


@pytest.mark.parametrize("charset", CHARSETS)
def test_one_name_is_one_lock_under_any_charset(optioned, sql, driver, unique_name, charset):
    locker = optioned(driver, charset=charset)
    plain = optioned(driver)
    for suffix in SUFFIXES:
        name = unique_name() + suffix
        lock = locker.lock(name)
        assert lock.acquire(0) is True
        try:
            # Root's utf8mb4 connection sees the same name, so does a default Locker.
            assert _holder(sql, name) == lock.connection_id
            assert plain.lock(name).acquire(0) is False
            assert plain.holder(name) == lock.connection_id
            assert name in locker.get_all_locks()
        finally:
            lock.release()


def _mysql_client(server: Any) -> subprocess.Popen[str]:
    """The ``mysql`` command-line client with its defaults, reading statements from a pipe."""
    binary = shutil.which("mariadb") or shutil.which("mysql")
    if binary is None:
        pytest.skip("needs the mysql or mariadb command-line client")
    return subprocess.Popen(
        [
            *(binary, "--no-defaults", "--batch", "--skip-column-names", "--unbuffered"),
            *(f"--host={server.host}", f"--port={server.port}", f"--user={server.user}"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def _ask(client: subprocess.Popen[str], statement: str) -> str:
    assert client.stdin is not None
    assert client.stdout is not None
    client.stdin.write(statement + ";\n")
    client.stdin.flush()
    return client.stdout.readline().strip()


def test_a_name_is_the_same_lock_for_the_mysql_command_line_client(
    optioned, server, driver, unique_name
):
    client = _mysql_client(server)
    try:
        for charset in ("latin1", "utf8mb4"):
            locker = optioned(driver, charset=charset)
            name = unique_name() + SUFFIXES[0].replace("'", "").replace("\\", "")
            with locker.lock(name, timeout=0) as lock:
                assert _ask(client, f"SELECT IS_USED_LOCK('{name}')") == str(lock.connection_id)
            assert _ask(client, f"SELECT GET_LOCK('{name}', 0)") == "1"
            assert locker.lock(name).acquire(0) is False
            assert locker.is_locked(name) is True
            assert _ask(client, f"SELECT RELEASE_LOCK('{name}')") == "1"
    finally:
        assert client.stdin is not None
        client.stdin.close()
        client.wait(timeout=30)
        for stream in (client.stdout, client.stderr):
            if stream is not None:
                stream.close()


#: An sql_mode that would run a second statement if pasted into SQL unescaped (mysqlclient and
#: both asyncio drivers did that, and mysqlclient allows several statements per query).
INJECTED_SQL_MODE = "ANSI'; SET @pymysqllock_injected = 1; --"


def test_sql_mode_means_the_same_with_every_driver(optioned, server, sql, driver, lock_name):
    modes = "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"
    locker = optioned(driver, sql_mode=modes)
    with locker.lock(lock_name + SUFFIXES[0], timeout=0) as lock, lock.cursor() as cursor:
        cursor.execute("SELECT @@session.sql_mode")
        assert set(modes.split(",")) <= set(cursor.fetchone()[0].split(","))
    later = optioned(driver, sql_mode=modes, init_command="SET sql_mode='ANSI'")
    with later.lock(lock_name, timeout=0) as lock, lock.cursor() as cursor:
        cursor.execute("SELECT @@session.sql_mode")
        assert "NO_BACKSLASH_ESCAPES" not in cursor.fetchone()[0]
    for wrong in (["ANSI"], 5):
        with pytest.raises(InvalidArgumentTypeError, match="sql_mode"):
            Locker(driver=driver, **server.connect_kwargs(), sql_mode=wrong)
    with pytest.raises(LockConnectionError, match="sql_mode"):
        Locker(driver=driver, **server.connect_kwargs(), sql_mode=INJECTED_SQL_MODE)


def test_connector_cursor_options_are_refused_by_name(server, server_traffic):
    # dictionary and named_tuple belong to the connector's cursor(), not to connect().
    with server_traffic() as traffic:
        for option in ("dictionary", "named_tuple"):
            with pytest.raises(InvalidArgumentTypeError, match=option):
                Locker(driver="mysql.connector", **server.connect_kwargs(), **{option: True})
    assert traffic.connections == 0


def test_use_pure_false_works_or_says_the_c_extension_is_missing(server, lock_name):
    options = {**server.connect_kwargs(), "use_pure": False}
    if mysql.connector.HAVE_CEXT:
        with Locker(driver="mysql.connector", **options) as locker:
            assert locker.lock(lock_name).acquire(0)
        return
    # Without the C extension, the connector's connect() raises a bare ImportError.
    with pytest.raises(DriverNotInstalledError, match="C Extension") as raised:
        Locker(driver="mysql.connector", **options)
    assert not isinstance(raised.value.__cause__, LockError)


def test_a_driver_import_error_at_connect_is_a_library_error():
    error = rejected_arguments("mysql.connector", ImportError("no C extension"), {})
    assert isinstance(error, DriverNotInstalledError)
    assert isinstance(error, ImportError)


def test_timeouts_for_the_driver_are_checked_for_every_driver(server, driver, server_traffic):
    names = {
        "pymysql": ("read_timeout", "write_timeout", "connect_timeout"),
        "MySQLdb": ("read_timeout", "write_timeout", "connect_timeout"),
        "mysql.connector": ("read_timeout", "connection_timeout", "connect_timeout"),
    }[driver]
    with server_traffic() as traffic:
        for option in names:
            for value, error in ((-1, InvalidArgumentError), (0, InvalidArgumentError)):
                with pytest.raises(error, match=option):
                    Locker(driver=driver, **server.connect_kwargs(), **{option: value})
            for value in ("x", b"1", [], True):
                with pytest.raises(InvalidArgumentTypeError, match=option):
                    Locker(driver=driver, **server.connect_kwargs(), **{option: value})
    assert traffic.connections == 0


def test_fractional_driver_timeouts_work_on_every_driver(optioned, lock_name, driver):
    option = "connection_timeout" if driver == "mysql.connector" else "connect_timeout"
    locker = optioned(driver, read_timeout=2.5, **{option: 0.5})
    with locker.lock(lock_name, timeout=0):
        assert locker.is_locked(lock_name)


# --------------------------------------------------------------------------- asyncio drivers


@pytest.mark.asyncio
@pytest.mark.timeout(120)
# Naming async_driver here overrides the fixture: each driver with its own options.
@pytest.mark.parametrize(("async_driver", "options"), _option_cases(ASYNC_DRIVER_OPTIONS))
async def test_every_async_call_ignores_the_users_row_and_session_options(
    make_async_locker, sql, lock_name, options
):
    name = lock_name + SUFFIXES[0]
    locker = make_async_locker(pool_size=1, **options)
    plain = make_async_locker()
    lost = asyncio.Event()
    lock = locker.lock(name, refresh_interval_secs=0.05, on_lost=lambda _lock: lost.set())

    assert await lock.acquire(timeout=1) is True
    assert await asyncio.to_thread(_holder, sql, name) == lock.connection_id
    assert await locker.holder(name) == lock.connection_id
    assert await locker.is_locked(name) is True
    assert name in await locker.get_all_locks()
    infos = [info for info in await locker.list_locks() if info.name == name]
    assert [info.connection_id for info in infos] == [lock.connection_id]
    assert await plain.lock(name).acquire(0) is False
    await lock.release()
    assert await asyncio.to_thread(_holder, sql, name) is None
    assert await locker.holder(name) is None
    assert await locker.is_locked(name) is False

    # Loss detection: the keepalive's check reads its answer in the library's format too.
    assert await lock.acquire(0) is True
    await asyncio.to_thread(sql, "KILL %s", (lock.connection_id,))
    await asyncio.wait_for(lost.wait(), 20)
    assert lock.lost
    await lock.release()  # reports the loss; cleans up

    other = plain.lock(name)
    assert await other.acquire(0) is True
    assert await locker.force_release(name) is True
    assert await asyncio.to_thread(_holder, sql, name) is None
    await other.release()  # reports the loss; cleans up


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("charset", CHARSETS)
async def test_one_name_is_one_async_lock_under_any_charset(
    make_async_locker, sql, unique_name, charset
):
    locker = make_async_locker(charset=charset)
    plain = make_async_locker()
    for suffix in SUFFIXES:
        name = unique_name() + suffix
        lock = locker.lock(name)
        assert await lock.acquire(0) is True
        try:
            assert await asyncio.to_thread(_holder, sql, name) == lock.connection_id
            assert await plain.lock(name).acquire(0) is False
            assert await plain.holder(name) == lock.connection_id
            assert name in await locker.get_all_locks()
        finally:
            await lock.release()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_async_sql_mode_list_is_in_force_before_the_init_command(
    make_async_locker, lock_name
):
    modes = "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"
    locker = make_async_locker(sql_mode=modes)
    async with locker.lock(lock_name + SUFFIXES[0], timeout=0) as lock, lock.cursor() as cursor:
        await cursor.execute("SELECT @@session.sql_mode")
        assert set(modes.split(",")) <= set((await cursor.fetchone())[0].split(","))
    # The drivers run init_command after sql_mode: one that sets the mode has the last word.
    later = make_async_locker(sql_mode=modes, init_command="SET sql_mode='ANSI'")
    async with later.lock(lock_name, timeout=0) as lock, lock.cursor() as cursor:
        await cursor.execute("SELECT @@session.sql_mode")
        assert "NO_BACKSLASH_ESCAPES" not in (await cursor.fetchone())[0]
    with pytest.raises(InvalidArgumentTypeError, match="sql_mode"):
        make_async_locker(sql_mode=["ANSI"])
    # A quote ends nothing: the whole value reaches the server as one (invalid) mode.
    injected = make_async_locker(sql_mode=INJECTED_SQL_MODE)
    with pytest.raises(LockConnectionError, match="sql_mode"):
        await injected.connect()
