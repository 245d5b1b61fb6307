"""Locker(lazy=True): safe to create at import time; the first use connects."""

from __future__ import annotations

import socket
import time

import pytest

from PyMySQLLock import InvalidArgumentTypeError, LockConnectionError, Locker


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
