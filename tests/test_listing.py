"""Locker.get_all_locks(): through MariaDB's metadata_lock_info plugin or performance_schema."""

from __future__ import annotations

import time

import pytest

from PyMySQLLock import LockError, LockListingUnavailableError

UNINSTALL_PLUGIN = "UNINSTALL SONAME 'metadata_lock_info'"
INSTALL_PLUGIN = "INSTALL SONAME 'metadata_lock_info'"
ENABLE_MDL_INSTRUMENT = (
    "UPDATE performance_schema.setup_instruments SET ENABLED = 'YES' "
    "WHERE NAME = 'wait/lock/metadata/sql/mdl'"
)


@pytest.fixture
def mariadb(server):
    """Skip on MySQL: metadata_lock_info and a disabled MDL instrument are MariaDB's."""
    if server.flavor != "mariadb":
        pytest.skip("needs MariaDB (metadata_lock_info, MDL instrument off by default)")


def _wait_for_waiter(on_server, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not on_server.sql(
        "SELECT ID FROM information_schema.PROCESSLIST "
        "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
        (name,),
    ):
        assert time.monotonic() < deadline, f"nobody waits for {name!r}"
        time.sleep(0.01)


def test_lists_each_held_lock_once(locker, make_locker, unique_name, spawn, lock_waiters):
    names = [unique_name() for _ in range(3)]
    other = make_locker()
    held = [locker.lock(names[0]), locker.lock(names[1]), other.lock(names[2])]
    for lock in held:
        assert lock.acquire(0) is True
    # A session waiting for a held name must not make it appear twice.
    waiter = other.lock(names[0])
    waiting = spawn(waiter.acquire, 30)
    lock_waiters(names[0])

    listed = locker.get_all_locks()
    assert len(listed) == len(set(listed))
    for name in names:
        assert listed.count(name) == 1
    assert other.get_all_locks().count(names[0]) == 1

    held[1].release()
    assert names[1] not in locker.get_all_locks()
    held[0].release()
    assert waiting.result() is True
    assert locker.get_all_locks().count(names[0]) == 1
    waiter.release()
    held[2].release()
    listed = locker.get_all_locks()
    assert not set(names) & set(listed)


def test_listing_is_a_list_of_str(locker, lock_name):
    lock = locker.lock(lock_name)
    assert lock.acquire(0) is True
    listed = locker.get_all_locks()
    assert isinstance(listed, list)
    assert all(isinstance(name, str) for name in listed)
    lock.release()


@pytest.mark.mariadb_only
@pytest.mark.usefixtures("mariadb")
def test_without_the_plugin_listing_raises_and_says_how_to_enable(
    fresh_server, make_locker, lock_name
):
    locker = make_locker(on=fresh_server)
    lock = locker.lock(lock_name)
    assert lock.acquire(0) is True
    assert locker.get_all_locks() == [lock_name]

    fresh_server.sql(UNINSTALL_PLUGIN)
    # Both a Locker that listed before and a new one find out.
    for each in (locker, make_locker(on=fresh_server)):
        with pytest.raises(LockListingUnavailableError) as info:
            each.get_all_locks()
        assert isinstance(info.value, LockError)
        assert isinstance(info.value, RuntimeError)
        assert INSTALL_PLUGIN in str(info.value)

    fresh_server.sql(INSTALL_PLUGIN)
    assert locker.get_all_locks() == [lock_name]
    lock.release()


@pytest.mark.mariadb_only
@pytest.mark.usefixtures("mariadb")
def test_lists_through_performance_schema_once_the_instrument_is_enabled(
    server_factory, make_locker, lock_name, unique_name, spawn
):
    pfs_server = server_factory(performance_schema=True)
    pfs_server.sql(UNINSTALL_PLUGIN)
    locker = make_locker(on=pfs_server)
    with pytest.raises(LockListingUnavailableError) as info:
        locker.get_all_locks()
    assert "setup_instruments" in str(info.value)

    pfs_server.sql(ENABLE_MDL_INSTRUMENT)
    lock = locker.lock(lock_name)
    assert lock.acquire(0) is True
    other = make_locker(on=pfs_server)
    second = other.lock(unique_name())
    assert second.acquire(0) is True
    # A waiting session has a pending lock, which must not be listed as a second holder.
    waiter = other.lock(lock_name)
    waiting = spawn(waiter.acquire, 30)
    _wait_for_waiter(pfs_server, lock_name)

    listed = locker.get_all_locks()
    assert sorted(listed) == sorted([lock_name, second.name])
    lock.release()
    assert waiting.result() is True
    assert sorted(locker.get_all_locks()) == sorted([lock_name, second.name])
    waiter.release()
    assert locker.get_all_locks() == [second.name]
    second.release()
    assert locker.get_all_locks() == []
