"""Locker.from_engine() and Locker.from_url(URL) against the test server, with real engines."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy", reason="SQLAlchemy comes with the test extra")

from sqlalchemy.engine import URL, make_url  # noqa: E402
from test_tls import (  # noqa: E402 - the TLS server fixture and its helpers
    _cipher_of_a_lock_connection,
    _native_verifying_options,
    tls,  # noqa: F401 - a fixture
)

from PyMySQLLock import (  # noqa: E402
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockConnectionError,
    Locker,
)
from PyMySQLLock.aio import AsyncLocker  # noqa: E402

DIALECTS = {
    "pymysql": "mysql+pymysql",
    "mysql.connector": "mysql+mysqlconnector",
    "MySQLdb": "mysql+mysqldb",
    "aiomysql": "mysql+aiomysql",
    "asyncmy": "mysql+asyncmy",
}
#: A password SQLAlchemy must escape in a URL and masks in str(url).
SECRET = "p@ss:w/rd %?#" + secrets.token_hex(3)


def _url(server, driver, **changes):
    parts = {
        "username": server.user,
        "password": server.password or None,
        "host": server.host,
        "port": server.port,
        "database": server.database,
        **changes,
    }
    return URL.create(DIALECTS[driver], **parts)


@pytest.fixture
def engine(server, driver):
    made = sqlalchemy.create_engine(_url(server, driver))
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def secret_account(server):
    user = f"sa_{secrets.token_hex(3)}"
    server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, SECRET))
    server.sql(f"GRANT ALL PRIVILEGES ON `{server.database}`.* TO %s@'%%'", (user,))
    yield user
    server.sql("DROP USER IF EXISTS %s@'%%'", (user,))


def test_from_engine_locks_on_a_connection_of_its_own(engine, driver, lock_name):
    with Locker.from_engine(engine) as locker:
        assert locker.driver.name == driver
        assert engine.pool.checkedout() == 0
        with locker.lock(lock_name, timeout=5) as lock:
            with engine.connect() as connection:
                holder = connection.exec_driver_sql(
                    "SELECT IS_USED_LOCK(%s), CONNECTION_ID()", (lock.server_name,)
                ).one()
            assert holder[0] == lock.connection_id != holder[1]


def test_from_engine_keeps_the_password_intact(server, driver, secret_account, lock_name):
    url = _url(server, driver, username=secret_account, password=SECRET)
    assert SECRET not in str(url)  # what a user would have passed to from_url() before
    engine = sqlalchemy.create_engine(url)
    try:
        with Locker.from_engine(engine) as locker, locker.lock(lock_name, timeout=5):
            assert locker.holder(lock_name) is not None
    finally:
        engine.dispose()


def test_from_url_takes_a_sqlalchemy_url_object(server, driver, secret_account, lock_name):
    url = _url(server, driver, username=secret_account, password=SECRET)
    with Locker.from_url(url, namespace="sa") as locker, locker.lock(lock_name, timeout=5):
        assert locker.driver.name == driver
        assert locker.namespace == "sa"
        assert locker.is_locked(lock_name)


def test_from_url_object_with_mariadb_scheme(server, lock_name):
    url = make_url(_url(server, "pymysql").render_as_string(hide_password=False))
    url = url.set(drivername="mariadb+pymysql")
    with Locker.from_url(url) as locker:
        assert locker.driver.name == "pymysql"
        assert locker.server.flavor in ("mariadb", "mysql")


def test_engine_connect_args_carry_over(server, driver, lock_name):
    engine = sqlalchemy.create_engine(
        _url(server, driver), connect_args={"init_command": "SET @pymysqllock_probe = 42"}
    )
    try:
        with Locker.from_engine(engine) as locker:
            assert locker._admin("SELECT @pymysqllock_probe", ()) == [(42,)]
    finally:
        engine.dispose()


def test_engine_tls_settings_carry_over(tls, driver, unique_name):  # noqa: F811 - fixture
    """The engine's TLS connect_args reach the Locker's connections: encrypted with the right
    CA, refused with a CA that did not sign the server's certificate."""
    server = tls.server()
    url = URL.create(
        DIALECTS[driver],
        username="root",
        host="127.0.0.1",
        port=server.port,
        database=server.database,
    )
    engine = sqlalchemy.create_engine(url, connect_args=_native_verifying_options(driver, tls.ca))
    try:
        with Locker.from_engine(engine, pool_size=1) as locker:
            assert _cipher_of_a_lock_connection(locker, unique_name())
    finally:
        engine.dispose()
    wrong = _native_verifying_options(driver, tls.wrong_ca)
    wrong.update({"ssl_mode": "VERIFY_CA"} if driver == "MySQLdb" else {"ssl_verify_cert": True})
    engine = sqlalchemy.create_engine(url, connect_args=wrong)
    try:
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            engine.connect().close()
        with pytest.raises(LockConnectionError):
            Locker.from_engine(engine).close()
    finally:
        engine.dispose()


def test_keyword_arguments_win_over_the_engine(engine, server, driver):
    with Locker.from_engine(engine, lazy=True, pool_size=1) as locker:
        assert locker.pool_size == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "is for sqlite, not MySQL or MariaDB"),
        ("mysql+cymysql://u@127.0.0.1/d", r"mysql\+cymysql dialect"),
        ("mysql+aiomysql://u@127.0.0.1/d", "asyncio"),
        ("mysql+asyncmy://u@127.0.0.1/d", "asyncio"),
    ],
)
def test_unsupported_dialects_are_refused_by_name(url, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Locker.from_url(make_url(url))


@pytest.mark.asyncio
async def test_async_locker_from_a_sqlalchemy_url_object(
    server, async_driver, secret_account, lock_name
):
    url = _url(server, async_driver, username=secret_account, password=SECRET)
    locker = AsyncLocker.from_url(url, namespace="sa")
    try:
        assert locker.driver.name == async_driver
        async with locker.lock(lock_name, timeout=5) as lock:
            assert await locker.is_locked(lock_name)
            assert lock.server_name == f"sa.{lock_name}"  # the namespace came with the call
    finally:
        await locker.close()


@pytest.mark.asyncio
async def test_async_locker_from_engine_carries_connect_args_over(server, async_driver, lock_name):
    """The Engine that an AsyncEngine wraps (sync_engine): the arguments are read from it
    without an event loop, and an AsyncEngine would need greenlet here for nothing."""
    # The init command also changes the character set, which the library sets back.
    command = "SET @pymysqllock_probe = 42, character_set_client = latin1"
    engine = sqlalchemy.create_engine(
        _url(server, async_driver), connect_args={"init_command": command}
    )
    locker = AsyncLocker.from_engine(engine, pool_size=1)
    try:
        assert (locker.driver.name, locker.pool_size) == (async_driver, 1)
        async with locker.lock(lock_name, timeout=5) as lock, lock.cursor() as cursor:
            await cursor.execute("SELECT @pymysqllock_probe, @@character_set_client")
            assert tuple(await cursor.fetchone()) == (42, "utf8mb4")
    finally:
        await locker.close()
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+pymysql://u@127.0.0.1/d", "blocking one, and an AsyncLocker"),
        ("mysql+cymysql://u@127.0.0.1/d", r"mysql\+cymysql dialect"),
        ("sqlite://", "is for sqlite"),
    ],
)
def test_an_async_locker_refuses_other_dialects_by_name(url, message):
    with pytest.raises(InvalidArgumentError, match=message):
        AsyncLocker.from_url(make_url(url))


def test_an_engine_of_another_database_is_refused():
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        with pytest.raises(InvalidArgumentError, match="sqlite"):
            Locker.from_engine(engine)
    finally:
        engine.dispose()


def test_not_an_engine_is_refused():
    with pytest.raises(InvalidArgumentTypeError, match="Engine"):
        Locker.from_engine("mysql://u@h/d")


def test_import_pymysqllock_imports_no_framework():
    code = (
        "import sys, PyMySQLLock, PyMySQLLock.cli\n"
        "loaded = [m for m in ('sqlalchemy', 'django', 'celery', 'kombu') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
