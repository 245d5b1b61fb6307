"""Inputs at the edges: namespaces, option files, the command line, decorators, self-waits.

* A namespace may not contain the separator, so distinct (namespace, name) pairs are distinct
  locks.
* Option files that are not regular files (a FIFO, ``/dev/zero``) or too large are refused at
  once, also through ``!include``.
* The command line can name any lock (one starting with ``-`` after ``--``) and escapes
  unprintable characters in every name, account and host it prints.
* ``synchronized`` refuses functions whose body would run after the call (coroutines, async
  generators, generators) when decorating.
* A thread that holds a name and asks the same Locker for it again through another Lock, with
  an endless timeout, is refused at once instead of waiting on itself.
* PyMySQLLock 0.2.0's ``connection_factory`` module still imports and works, deprecated.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import CLI

from PyMySQLLock import (
    DeadlockError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockConnectionError,
    Locker,
    cli,
    optionfile,
)
from PyMySQLLock.aio import AsyncLocker
from PyMySQLLock.names import server_name, validate_namespace

# --------------------------------------------------------------------------- namespaces


def test_the_separator_is_reserved_in_namespaces(server, driver):
    with pytest.raises(InvalidArgumentError, match="separator"):
        validate_namespace("billing.eu")
    with pytest.raises(InvalidArgumentError, match="separator"):
        Locker(driver=driver, namespace="billing.eu", **server.connect_kwargs())
    # What the reservation protects: these two pairs would otherwise be one server name.
    assert server_name("eu.invoices", "billing") == "billing.eu.invoices"


def test_a_url_passed_to_the_constructor_points_to_from_url(server, driver):
    with pytest.raises(InvalidArgumentError, match=r"use Locker\.from_url"):
        Locker(server.url, driver=driver)


def test_a_url_passed_to_the_async_constructor_points_to_from_url(server, async_driver):
    with pytest.raises(InvalidArgumentError, match=r"use AsyncLocker\.from_url"):
        AsyncLocker(server.url, driver=async_driver)
    with pytest.raises(InvalidArgumentTypeError, match="keyword arguments only"):
        AsyncLocker(server.host, driver=async_driver)


# --------------------------------------------------------------------------- asyncio arguments

#: What an AsyncLocker must refuse before connecting, as Locker does (tests/test_hostile.py and
#: test_connect_options.py check the blocking drivers), with the error naming the argument.
BAD_ASYNC_ARGUMENTS = [
    ("read_timeout", -1, InvalidArgumentError),
    ("read_timeout", "x", InvalidArgumentTypeError),
    ("read_timeout", 1e10, InvalidArgumentError),
    ("read_timeout", math.nan, InvalidArgumentError),
    ("connect_timeout", 0, InvalidArgumentError),
    ("connect_timeout", True, InvalidArgumentTypeError),
    ("ping_timeout", 0, InvalidArgumentError),
    ("ping_timeout", math.inf, InvalidArgumentError),
    ("ping_timeout", "x", InvalidArgumentTypeError),
    ("pool_size", -1, InvalidArgumentError),
    ("pool_size", 1.5, InvalidArgumentTypeError),
    ("pool_size", True, InvalidArgumentTypeError),
    ("port", 0, InvalidArgumentError),
    ("port", "3306", InvalidArgumentTypeError),
    ("charset", "bogus", InvalidArgumentError),
    ("charset", 8, InvalidArgumentTypeError),
    ("defer_connect", True, InvalidArgumentError),
    ("namespace", "billing.eu", InvalidArgumentError),
]
BAD_INTERVALS = [
    (1e10, InvalidArgumentError),
    (1e-9, InvalidArgumentError),
    (0, InvalidArgumentError),
    (-1, InvalidArgumentError),
    (math.nan, InvalidArgumentError),
    (math.inf, InvalidArgumentError),
    ("x", InvalidArgumentTypeError),
]


@pytest.mark.parametrize(("option", "value", "error"), BAD_ASYNC_ARGUMENTS)
def test_async_locker_arguments_are_checked_before_connecting(
    server, async_driver, server_traffic, option, value, error
):
    with server_traffic() as traffic, pytest.raises(error, match=option):
        AsyncLocker(driver=async_driver, **{**server.connect_kwargs(), option: value})
    assert traffic.connections == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(("value", "error"), BAD_INTERVALS)
async def test_async_refresh_intervals_out_of_bounds_are_refused(
    make_async_locker, lock_name, value, error
):
    locker = make_async_locker()
    with pytest.raises(error, match="refresh_interval_secs"):
        locker.lock(lock_name, refresh_interval_secs=value)
    lock = locker.lock(lock_name)
    with pytest.raises(error, match="refresh_interval_secs"):
        await lock.acquire(0, refresh_interval_secs=value)
    assert not lock.locked()
    assert await locker.holder(lock_name) is None


# --------------------------------------------------------------------------- option files


def _include(tmp_path, target):
    path = tmp_path / "my.cnf"
    path.write_text(f"[client]\nuser=app\n!include {target}\n")
    return path


def test_an_option_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.cnf"
    os.mkfifo(fifo)
    for path in (fifo, _include(tmp_path, fifo)):
        started = time.monotonic()
        with pytest.raises(optionfile.OptionFileError, match="not a regular file"):
            optionfile.read_files([path], required=[path])
        assert time.monotonic() - started < 10


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_as_option_file_is_refused(tmp_path):
    for path in (_include(tmp_path, "/dev/zero"),):
        with pytest.raises(optionfile.OptionFileError, match="not a regular file"):
            optionfile.read_files([path], required=[path])
    with pytest.raises(optionfile.OptionFileError, match="not a regular file"):
        optionfile.read_files(["/dev/zero"], required=["/dev/zero"])


def test_a_huge_option_file_is_refused(tmp_path):
    huge = tmp_path / "huge.cnf"
    huge.write_text("[client]\n" + "# filler\n" * (optionfile.MAX_FILE_BYTES // 9 + 10))
    for path in (huge, _include(tmp_path, huge)):
        with pytest.raises(optionfile.OptionFileError, match="larger than"):
            optionfile.read_files([path], required=[path])


@pytest.fixture
def driver_option_files(tmp_path):
    """Option files a driver would hang on or read without end, directly or through includes."""
    fifo = tmp_path / "fifo.cnf"
    os.mkfifo(fifo)
    files = [str(fifo), "/dev/zero"]
    for number, target in enumerate((fifo, "/dev/zero", tmp_path / "conf.d")):
        including = tmp_path / f"including-{number}.cnf"
        word = "!includedir" if number == 2 else "!include"
        including.write_text(f"[client]\n{word} {target}\n")
        files.append(str(including))
    (tmp_path / "conf.d").mkdir()
    os.mkfifo(tmp_path / "conf.d" / "hang.cnf")
    return files


def _good_option_file(tmp_path, server, include=True):
    extra = tmp_path / "extra.cnf"
    extra.write_text("[client]\n# nothing more\n")
    good = tmp_path / "good.cnf"
    good.write_text(f"[client]\nuser={server.user}\n" + (f"!include {extra}\n" if include else ""))
    return str(good)


def test_driver_option_files_that_never_end_are_refused(
    server, driver, driver_option_files, server_traffic, tmp_path, lock_name
):
    keys = ["read_default_file"] + (["option_files"] if driver == "mysql.connector" else [])
    with server_traffic() as traffic:
        for key in keys:
            for path in driver_option_files:
                with pytest.raises(optionfile.OptionFileError, match=key):
                    Locker(driver=driver, **server.connect_kwargs(), **{key: path})
    assert traffic.connections == 0
    # A regular file, including another, still reaches the driver.
    good = _good_option_file(tmp_path, server)
    locker = Locker(driver=driver, **server.connect_kwargs(), read_default_file=good)
    with locker, locker.lock(lock_name, timeout=0):
        assert locker.is_locked(lock_name)


@pytest.mark.asyncio
async def test_async_driver_option_files_that_never_end_are_refused(
    server, async_driver, driver_option_files, make_async_locker, tmp_path, lock_name
):
    for path in driver_option_files:
        with pytest.raises(optionfile.OptionFileError, match="read_default_file"):
            AsyncLocker(driver=async_driver, **server.connect_kwargs(), read_default_file=path)
    locker = make_async_locker(read_default_file=_good_option_file(tmp_path, server, False))
    async with locker.lock(lock_name, timeout=0):
        assert await locker.is_locked(lock_name)
    including = _good_option_file(tmp_path, server)
    if async_driver == "aiomysql":
        # Its parser takes no '!include': refused, naming the option, before connecting.
        with pytest.raises(InvalidArgumentError, match="read_default_file"):
            make_async_locker(read_default_file=including)
    else:
        async with make_async_locker(read_default_file=including) as locker:
            assert await locker.lock(lock_name).acquire(0)


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("argv", "name", "command"),
    [
        (["status", "--", "-x"], "-x", None),
        (["release", "--force", "--", "--x"], "--x", None),
        (["run", "-n", "--", "-x", "--", "true", "-v"], "-x", ["true", "-v"]),
        (["run", "job", "--", "ls", "--", "-l"], "job", ["ls", "--", "-l"]),
        (["status", "plain"], "plain", None),
    ],
)
def test_the_command_line_can_name_any_lock(argv, name, command):
    args = cli.parse_args(argv)
    assert args.name == name
    assert getattr(args, "command", None) == command


@pytest.fixture
def control_account(server):
    """An account whose name has a terminal escape sequence, dropped after the test."""
    user = f"esc\x1b[31m{os.urandom(2).hex()}\x07"
    server.sql("CREATE USER %s@'%%' IDENTIFIED BY 'pw'", (user,))
    yield user
    server.sql("DROP USER %s@'%%'", (user,))


def test_command_line_output_escapes_names_users_and_hosts(
    server, control_account, lock_name, driver
):
    # A name the parser could take for an option, too: it is named after --.
    name = "-" + lock_name + "\x1b]0;title\x07"
    env = {"HOME": "/nonexistent", "PATH": os.environ.get("PATH", ""), cli.URL_ENV: server.url}
    kwargs = {**server.connect_kwargs(), "user": control_account, "password": "pw"}
    kwargs.pop("database")
    with Locker(driver=driver, **kwargs) as locker, locker.lock(name, timeout=0):
        outputs = []
        for args in (["list"], ["status", "--", name], ["run", "-n", "--", name, "--", "true"]):
            done = subprocess.run(
                [*CLI, args[0], "--driver", driver, *args[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == (0 if args[0] == "list" else 1), done.stderr
            outputs.append(done.stdout + done.stderr)
    listed = outputs[0]
    assert lock_name in listed
    assert "esc\\x1b[31m" in listed  # the account, escaped
    assert "held by connection" in outputs[1]
    for output in outputs:
        assert "\x1b" not in output
        assert "\x07" not in output


# --------------------------------------------------------------------------- synchronized


async def _coroutine() -> None:
    return None


async def _async_generator():
    yield 1


def _generator():
    yield 1


@pytest.mark.parametrize(
    ("function", "advice"),
    [
        (_coroutine, "PyMySQLLock.aio.AsyncLocker.synchronized"),
        (_async_generator, "PyMySQLLock.aio.AsyncLocker.synchronized"),
        (_generator, "with locker.lock(name)"),
    ],
)
def test_synchronized_refuses_bodies_that_run_after_the_call(locker, lock_name, function, advice):
    decorate = locker.synchronized(lock_name)
    with pytest.raises(InvalidArgumentTypeError, match="synchronized cannot decorate") as raised:
        decorate(function)
    assert isinstance(raised.value, TypeError)
    assert advice in str(raised.value)


def _plain() -> None:
    return None


@pytest.mark.parametrize(
    ("function", "advice"),
    [
        (_async_generator, "async with locker.lock(name)"),
        (_generator, "async with locker.lock(name)"),
        (_plain, "PyMySQLLock.Locker.synchronized"),
    ],
)
def test_async_synchronized_refuses_all_but_coroutine_functions(
    server, async_driver, lock_name, function, advice
):
    locker = AsyncLocker(driver=async_driver, **server.connect_kwargs())  # sends nothing
    decorate = locker.synchronized(lock_name)
    with pytest.raises(InvalidArgumentTypeError, match="needs a coroutine function") as raised:
        decorate(function)
    assert isinstance(raised.value, TypeError)
    assert advice in str(raised.value)


#: What type checkers must see: on_busy="skip" may return None, the other modes what the
#: function returns.
_TYPED_USE = """
from typing import Optional

from typing_extensions import assert_type

from PyMySQLLock import Locker
from PyMySQLLock.aio import AsyncLocker


def blocking(locker: Locker) -> None:
    @locker.synchronized("n", on_busy="skip")
    def skipped() -> int:
        return 1

    @locker.synchronized("n", on_busy="raise")
    def raised() -> int:
        return 1

    assert_type(skipped(), Optional[int])
    assert_type(raised(), int)


async def asynchronous(locker: AsyncLocker) -> None:
    @locker.synchronized("n", on_busy="skip")
    async def skipped() -> int:
        return 1

    @locker.synchronized("n")
    async def waited() -> int:
        return 1

    assert_type(await skipped(), Optional[int])
    assert_type(await waited(), int)
"""


def test_synchronized_skip_is_typed_as_possibly_none(tmp_path):
    (tmp_path / "typed_use.py").write_text(_TYPED_USE)
    root = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "typed_use.py"],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": root},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- self-wait


def test_waiting_forever_on_a_name_this_thread_holds_is_refused_at_once(locker, lock_name, spawn):
    holding = locker.lock(lock_name)
    assert holding.acquire(0)
    again = locker.lock(lock_name)
    started = time.monotonic()
    with pytest.raises(DeadlockError, match="held by this thread"):
        again.acquire()
    with pytest.raises(DeadlockError), again:
        pass
    assert time.monotonic() - started < 5
    # A finite wait times out as in 0.2.0, and another thread still waits normally.
    assert again.acquire(timeout=0.2) is False
    assert spawn(locker.lock(lock_name).acquire, 0.2).result() is False
    holding.release()
    assert again.acquire() is True
    again.release()


def test_a_recursive_synchronized_call_is_refused_not_hung(locker, lock_name):
    depth = []

    @locker.synchronized(lock_name)
    def job() -> None:
        depth.append(1)
        if len(depth) == 1:
            job()

    with pytest.raises(DeadlockError):
        job()
    assert locker.holder(lock_name) is None


def test_a_minimum_hold_is_waited_for_by_the_thread_that_ran_the_job(locker, lock_name):
    # The keepalive thread releases a lock that hold_at_least keeps after the job returned:
    # waiting for it ends then, so it is no self-wait.
    runs = []

    @locker.synchronized(lock_name, hold_at_least=0.3)
    def job() -> int:
        runs.append(1)
        return len(runs)

    assert job() == 1
    assert job() == 2


def test_another_thread_holding_the_name_is_waited_for(locker, lock_name, spawn):
    released = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with locker.lock(lock_name):
            held.set()
            released.wait(30)

    worker = spawn(hold)
    assert held.wait(30)
    waiter = spawn(locker.lock(lock_name).acquire, 30)
    released.set()
    worker.result()
    assert waiter.result() is True


# --------------------------------------------------------------------------- 0.2.0 shim


def test_the_deprecated_connection_factory_still_connects(server, driver):
    from PyMySQLLock import connection_factory

    connect = {
        "pymysql": "pymysql",
        "MySQLdb": "MySQLdb",
        "mysql.connector": "mysql.connector",
    }[driver]
    module = __import__(connect, fromlist=["connect"])
    with pytest.warns(DeprecationWarning, match="deprecated"):
        factory = connection_factory.ConnectionFactory(
            mysql_lib_connector=module.connect, **server.connect_kwargs()
        )
    raw = factory.new()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
        assert tuple(cursor.fetchone()) == (1,)
        cursor.close()
    finally:
        raw.close()
    with pytest.warns(DeprecationWarning, match="deprecated"):
        wrong = connection_factory.ConnectionFactory(
            mysql_lib_connector=module.connect, **{**server.connect_kwargs(), "password": "no"}
        )
    with pytest.raises(LockConnectionError, match="Could not connect to db"):
        wrong.new()
