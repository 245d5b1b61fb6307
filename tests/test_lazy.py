"""Lazy at two levels: Locker(lazy=True) is safe to create at import time (the first use
connects), and the package imports its modules on first use, so that a short process such as
``pymysqllock run NAME -- true`` (run by cron, again and again) loads only what it needs."""

from __future__ import annotations

import ast
import socket
import time

import pytest
from conftest import fresh_interpreter

import PyMySQLLock
from PyMySQLLock import InvalidArgumentTypeError, LockConnectionError, Locker

#: Modules that ``import PyMySQLLock`` must not import: the package's top level loads them on
#: first use of one of their names.
LAZY_MODULES = (
    "PyMySQLLock.election",
    "PyMySQLLock.semaphore",
    "PyMySQLLock.lock",
    "PyMySQLLock.locker",
    "PyMySQLLock.listing",
    "PyMySQLLock.loss",
)
#: Modules that ``pymysqllock run NAME -- true`` must not import itself (a driver may).
NOT_FOR_RUN = (
    "PyMySQLLock.election",
    "PyMySQLLock.semaphore",
    "PyMySQLLock.demo",
    "PyMySQLLock.testing",
    "PyMySQLLock.contrib",
    "PyMySQLLock.aio",
    "PyMySQLLock.optionfile",
    "ssl",
    "hashlib",
    "json",
    "random",
    "shutil",
    "getpass",
    # The value classes are made without dataclasses (PyMySQLLock.values), which imports
    # inspect, ast, dis and tokenize; the Locker imports inspect only to check a decorated
    # function.
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    # Only the drivers that need it import it (mysqlclient does not).
    "socket",
    # The library's logger imports logging only for a record someone could see (a warning,
    # or any once logging is imported): a run that has nothing to say never imports it.
    "logging",
    "traceback",
    "tokenize",
)


def _closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hung_port():
    """A port whose listener never accepts: TCP connects, the server greeting never comes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_lazy_locker_sends_nothing_until_first_use(
    make_locker, server_status, server_traffic, lock_name
):
    with server_traffic() as traffic:
        locker = make_locker(lazy=True)
    assert traffic.connections == 0
    assert traffic.selects == 0
    with locker.lock(lock_name, timeout=5):
        assert locker.is_locked(lock_name)
    assert locker.server.flavor in ("mariadb", "mysql")


def test_lazy_locker_of_a_down_server_fails_on_first_use(server, driver, lock_name):
    options = {**server.connect_kwargs(), "port": _closed_port()}
    started = time.monotonic()
    locker = Locker(driver=driver, lazy=True, **options)
    assert time.monotonic() - started < 1.0  # generous: no network was touched
    try:
        with pytest.raises(LockConnectionError, match="Could not connect to db"):
            locker.lock(lock_name).acquire(0)
        with pytest.raises(LockConnectionError):
            _ = locker.server
    finally:
        locker.close()


def test_lazy_locker_of_a_hung_server_fails_within_the_ping_timeout(
    server, driver, hung_port, lock_name
):
    options = {**server.connect_kwargs(), "host": "127.0.0.1", "port": hung_port}
    locker = Locker(driver=driver, lazy=True, ping_timeout=1, **options)
    try:
        started = time.monotonic()
        with pytest.raises(LockConnectionError):
            locker.is_locked(lock_name)
        assert time.monotonic() - started < 30  # bounded, not the driver's endless default
    finally:
        locker.close()


def test_lazy_must_be_a_bool(server):
    with pytest.raises(InvalidArgumentTypeError, match="lazy"):
        Locker(lazy="yes", **server.connect_kwargs())


def _new_modules(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; it prints a list of module names (repr, not JSON:
    the json module is one of those counted).

    :returns: that list.
    """
    result = fresh_interpreter(code)
    found: list[str] = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_package_imports_none_of_the_lazy_modules():
    loaded = _new_modules(
        """
        import sys
        import PyMySQLLock
        print(sorted(m for m in sys.modules if m.startswith("PyMySQLLock")))
        """
    )
    assert loaded == ["PyMySQLLock", "PyMySQLLock.errors", "PyMySQLLock.version"]


def test_a_lazy_name_loads_only_its_own_module():
    loaded = _new_modules(
        """
        import sys
        from PyMySQLLock import LossReason
        print(sorted(m for m in sys.modules if m.startswith("PyMySQLLock")))
        """
    )
    assert "PyMySQLLock.loss" in loaded
    assert not {"PyMySQLLock.locker", "PyMySQLLock.election"} & set(loaded)


def test_every_public_name_is_the_object_of_its_module():
    from PyMySQLLock import election, listing, lock, locker, loss, semaphore

    homes = {
        "Election": election,
        "Term": election,
        "LockInfo": listing,
        "Lock": lock,
        "Locker": locker,
        "LossCause": loss,
        "LossReason": loss,
        "Semaphore": semaphore,
    }
    for name in PyMySQLLock.__all__:
        value = getattr(PyMySQLLock, name)
        if name in homes:
            assert value is getattr(homes[name], name)
    assert set(PyMySQLLock.__all__) <= set(dir(PyMySQLLock))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = PyMySQLLock.NoSuchName


def test_cli_run_imports_only_what_it_needs(server, driver, lock_name):
    """The driver is imported and connected first, so only what the command line itself
    imports is counted."""
    loaded = _new_modules(
        f"""
        import importlib, sys
        importlib.import_module({driver!r}).connect(**{server.connect_kwargs()!r}).close()
        before = set(sys.modules)
        from PyMySQLLock import cli
        argv = ["run", "--no-defaults", "--url", {server.url!r}, "--driver", {driver!r}]
        status = cli.main([*argv, {lock_name!r}, "--", "true"])
        assert status == 0, status
        print(sorted(set(sys.modules) - before))
        """
    )
    assert "PyMySQLLock.locker" in loaded  # it did the work
    assert not [name for name in loaded if name.startswith(NOT_FOR_RUN)]


def test_the_console_script_imports_the_command_line_with_the_collector_off():
    """Collections during the imports were a noticeable share of a cron wrapper's run; the
    entry point holds them off, then freezes what was imported and turns the collector on."""
    found = _new_modules(
        """
        import gc, os, sys

        package = os.sep + "PyMySQLLock" + os.sep

        def during_an_import():
            # An automatic collection runs in the frame that allocated: inside a module body
            # while that module is being imported. The package's own __init__ comes before
            # the entry point can do anything.
            if "PyMySQLLock.__main__" not in sys.modules:
                return None
            frame = sys._getframe(2)
            while frame is not None:
                code = frame.f_code
                if code.co_name == "<module>" and package in code.co_filename:
                    return code.co_filename
                frame = frame.f_back
            return None

        importing = []
        gc.callbacks.append(
            lambda phase, info: phase == "start" and importing.append(during_an_import())
        )
        from PyMySQLLock.__main__ import main

        sys.argv = ["pymysqllock", "--version"]
        assert main() == 0
        assert "PyMySQLLock.locker" in sys.modules  # the command line and the library came
        print([name for name in importing if name] + [gc.isenabled(), gc.get_freeze_count() > 0])
        """
    )
    assert found == [True, True]


def test_the_console_script_is_the_entry_point_that_holds_off_the_collector():
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].split()
    assert scripts == ["pymysqllock", "=", "PyMySQLLock.__main__:main"]
