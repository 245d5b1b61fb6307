"""The administrative API: Locker.from_url, holder, is_locked, list_locks, force_release,
Lock.cancel and Locker.synchronized.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import threading
import urllib.parse

import pytest

from PyMySQLLock import (
    AcquireCancelledError,
    AcquireInterruptedError,
    InvalidArgumentError,
    LockConnectionError,
    Locker,
    LockTimeoutError,
    PermissionDeniedError,
)

#: A password with every character that a URL or an SQL string literal treats specially.
SPECIAL_PASSWORD = "p@ss:w/rd%\"'"

# A process that holds a lock until it learns that it lost it (or its stdin closes); it prints
# "held <connection id>" once it holds the lock, then "lost" or "stdin closed".
HOLDER_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    from PyMySQLLock import Locker

    lost = threading.Event()
    locker = Locker.from_url(os.environ["HOLDER_URL"])
    lock = locker.lock(sys.argv[1], refresh_interval_secs=0.1, on_lost=lambda _: lost.set())
    lock.acquire()
    print("held", lock.connection_id, flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), lost.set()), daemon=True).start()
    lost.wait(60)
    print("lost" if lock.lost else "stdin closed", flush=True)
    locker.close()
    """
)


def _url(server, *, user=None, password=None, scheme="mysql", database=True, query=""):
    """A URL for the session server, with the password percent-encoded."""
    user = server.user if user is None else user
    password = server.password if password is None else password
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    path = f"/{server.database}" if database else ""
    return f"{scheme}://{auth}@{server.host}:{server.port}{path}{query}"


@pytest.fixture
def make_account(server):
    """``make_account(password, grant_database=True)``: a new account, dropped after the test.

    :returns: the user name. The account may use the session database when
        ``grant_database``, and has no other privilege.
    """
    made = []

    def make(password, *, grant_database=True):
        user = f"adm_{secrets.token_hex(4)}"
        server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        made.append(user)
        if grant_database:
            server.sql(f"GRANT SELECT ON `{server.database}`.* TO %s@'%%'", (user,))
        return user

    yield make
    for user in made:
        server.sql("DROP USER %s@'%%'", (user,))


@pytest.fixture
def holder_process(server):
    """``holder_process(name)``: another process that holds ``name``; returns (process, id)."""
    started = []

    def start(name):
        env = {**os.environ, "HOLDER_URL": server.url}
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        started.append(process)
        word, connection_id = process.stdout.readline().split()
        assert word == "held"
        return process, int(connection_id)

    yield start
    for process in started:
        process.stdin.close()
        process.wait(30)
        process.stdout.close()


def _holder_id(sql, name):
    return sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]


# --------------------------------------------------------------------------- from_url


def test_from_url_connects_and_locks(server, lock_name, sql):
    with Locker.from_url(server.url) as locker:
        lock = locker.lock(lock_name)
        assert lock.acquire(0)
        assert _holder_id(sql, lock_name) == lock.connection_id
        lock.release()


def test_from_url_decodes_a_password_with_special_characters(server, make_account, lock_name):
    user = make_account(SPECIAL_PASSWORD)
    with Locker.from_url(_url(server, user=user, password=SPECIAL_PASSWORD)) as locker:
        with locker.lock(lock_name, timeout=0) as lock:
            assert locker.holder(lock_name) == lock.connection_id
        assert locker.holder(lock_name) is None


def test_from_url_wrong_password_error_does_not_show_it(server, make_account):
    user = make_account(SPECIAL_PASSWORD)
    wrong = SPECIAL_PASSWORD + "-wrong"
    with pytest.raises(LockConnectionError) as caught:
        Locker.from_url(_url(server, user=user, password=wrong))
    assert wrong not in str(caught.value)
    assert urllib.parse.quote(wrong, safe="") not in str(caught.value)


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("mysql+pymysql", "pymysql"),
        ("mysql+mysqlconnector", "mysql.connector"),
        ("mysql+mysqldb", "MySQLdb"),
        ("mariadb+pymysql", "pymysql"),
    ],
)
def test_from_url_scheme_picks_the_driver(server, lock_name, scheme, expected):
    with Locker.from_url(_url(server, scheme=scheme)) as locker:
        assert locker.driver.name == expected
        with locker.lock(lock_name, timeout=0):
            assert locker.is_locked(lock_name)


def test_from_url_keyword_arguments_win_over_the_url(server):
    with Locker.from_url(_url(server, scheme="mysql+pymysql"), driver="MySQLdb") as locker:
        assert locker.driver.name == "MySQLdb"


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "mysql+mysqlconnector", "mysql+mysqldb"])
def test_from_url_unix_socket(server, lock_name, scheme):
    socket_path = getattr(server, "socket", None)
    if socket_path is None:
        pytest.skip("the session server is not a throwaway server with a known socket")
    query = "?" + urllib.parse.urlencode({"unix_socket": socket_path})
    url = f"{scheme}://{server.user}@localhost/{server.database}{query}"
    with Locker.from_url(url) as locker, locker.lock(lock_name, timeout=0):
        (info,) = [i for i in locker.list_locks() if i.name == lock_name]
        # A socket client shows as host "localhost" in the process list, a TCP one as an IP.
        assert info.host == "localhost"


# --------------------------------------------------------------------------- holder, is_locked


def test_holder_and_is_locked(locker, make_locker, lock_name):
    assert locker.holder(lock_name) is None
    assert locker.is_locked(lock_name) is False
    held = make_locker().lock(lock_name)
    held.acquire(0)
    assert locker.holder(lock_name) == held.connection_id
    assert locker.is_locked(lock_name) is True
    held.release()
    assert locker.holder(lock_name) is None
    assert locker.is_locked(lock_name) is False


def test_holder_with_namespace_sees_only_its_namespace(make_locker, lock_name):
    plain = make_locker()
    spaced = make_locker(namespace="adm")
    with plain.lock(lock_name, timeout=0) as lock:
        assert spaced.holder(lock_name) is None
        assert plain.holder(lock_name) == lock.connection_id
    with spaced.lock(lock_name, timeout=0) as lock:
        assert plain.holder(f"adm.{lock_name}") == lock.connection_id


# --------------------------------------------------------------------------- list_locks


def test_list_locks_reports_holders(server, locker, make_locker, unique_name):
    names = [unique_name(), unique_name()]
    holders = [make_locker().lock(name) for name in names]
    for lock in holders:
        lock.acquire(0)
    found = {info.name: info for info in locker.list_locks() if info.name in names}
    assert set(found) == set(names)
    for lock in holders:
        info = found[lock.name]
        assert info.server_name == lock.name
        assert info.connection_id == lock.connection_id
        assert info.user == server.user
        assert info.host is not None
        assert info.host.split(":")[0] in (server.host, "localhost")
        if server.flavor == "mariadb":
            assert info.held_for is not None
            assert info.held_for >= 0
        else:
            assert info.held_for is None
    for lock in holders:
        lock.release()
    remaining = {info.name for info in locker.list_locks()}
    assert not remaining & set(names)


def test_list_locks_with_namespace(make_locker, unique_name):
    outside, inside = unique_name(), unique_name()
    spaced = make_locker(namespace="adm")
    with make_locker().lock(outside, timeout=0), spaced.lock(inside, timeout=0):
        infos = spaced.list_locks()
        assert [info.name for info in infos if info.name in (inside, outside)] == [inside]
        (info,) = [i for i in infos if i.name == inside]
        assert info.server_name == f"adm.{inside}"


# --------------------------------------------------------------------------- force_release


def test_force_release_frees_a_lock_held_by_another_process(locker, holder_process, lock_name, sql):
    process, connection_id = holder_process(lock_name)
    assert locker.holder(lock_name) == connection_id
    assert locker.force_release(lock_name) is True
    assert _holder_id(sql, lock_name) is None
    # The holder learns of the loss through its keepalive.
    assert process.stdout.readline().strip() == "lost"
    lock = locker.lock(lock_name)
    assert lock.acquire(0)
    lock.release()


def test_force_release_of_a_free_lock_returns_false(locker, lock_name):
    assert locker.force_release(lock_name) is False


def test_force_release_of_a_holder_gone_before_the_kill_is_true(locker, lock_name, monkeypatch):
    # The holder's session ended between the read and the KILL: the server answers
    # ER_NO_SUCH_THREAD, which means the goal is reached, not an error.
    answers = iter([4_000_000_000, None])  # an id no session has, then the free lock
    monkeypatch.setattr(locker, "holder", lambda name: next(answers))
    assert locker.force_release(lock_name) is True


def test_force_release_without_privilege_raises_permission_denied(
    server, make_locker, make_account, lock_name
):
    password = secrets.token_hex(8)
    user = make_account(password, grant_database=False)
    holder = make_locker().lock(lock_name)
    holder.acquire(0)
    with Locker.from_url(_url(server, user=user, password=password, database=False)) as weak:
        assert weak.holder(lock_name) == holder.connection_id
        with pytest.raises(PermissionDeniedError) as caught:
            weak.force_release(lock_name)
        assert isinstance(caught.value, PermissionError)
        assert weak.holder(lock_name) == holder.connection_id
    assert holder.locked()
    holder.release()


# --------------------------------------------------------------------------- cancel


def test_cancel_ends_a_waiting_acquire(locker, make_locker, lock_name, spawn, lock_waiters):
    holder = make_locker().lock(lock_name)
    holder.acquire(0)
    waiter = locker.lock(lock_name)
    worker = spawn(waiter.acquire)
    lock_waiters(lock_name)
    assert waiter.cancel() is True
    error = worker.exception(timeout=10)
    assert isinstance(error, AcquireCancelledError)
    assert isinstance(error, AcquireInterruptedError)
    assert not waiter.locked()
    assert holder.locked()
    # Nothing of the cancelled wait lingers: the lock is free once the holder lets go.
    holder.release()
    assert locker.holder(lock_name) is None
    assert waiter.acquire(0)
    waiter.release()


def test_cancel_without_a_waiting_acquire_returns_false(locker, lock_name):
    lock = locker.lock(lock_name)
    assert lock.cancel() is False
    lock.acquire(0)
    assert lock.cancel() is False
    assert lock.locked()
    lock.release()
    assert lock.cancel() is False


# --------------------------------------------------------------------------- synchronized


def test_synchronized_wait_serializes_calls(
    locker, make_locker, lock_name, spawn, lock_waiters, sql
):
    inside = threading.Event()
    let_go = threading.Event()
    entered = []

    @locker.synchronized(lock_name)
    def first():
        entered.append("first")
        inside.set()
        assert let_go.wait(30)
        return "first done"

    @make_locker().synchronized(lock_name, on_busy="wait")
    def second():
        entered.append("second")
        return "second done"

    first_call = spawn(first)
    assert inside.wait(10)
    second_call = spawn(second)
    lock_waiters(lock_name)
    assert entered == ["first"]
    let_go.set()
    assert first_call.result() == "first done"
    assert second_call.result() == "second done"
    assert entered == ["first", "second"]
    assert _holder_id(sql, lock_name) is None


def test_synchronized_skip_returns_none_while_busy(locker, make_locker, lock_name):
    calls = []

    @locker.synchronized(lock_name, on_busy="skip")
    def job(value):
        calls.append(value)
        return value * 2

    with make_locker().lock(lock_name, timeout=0):
        assert job(1) is None
    assert job(2) == 4
    assert calls == [2]
    assert locker.holder(lock_name) is None


def test_synchronized_raise_raises_lock_timeout_while_busy(locker, make_locker, lock_name):
    @locker.synchronized(lock_name, on_busy="raise")
    def job():
        raise AssertionError("must not run while the lock is busy")

    with make_locker().lock(lock_name, timeout=0), pytest.raises(LockTimeoutError):
        job()


def test_synchronized_releases_when_the_function_raises(locker, lock_name):
    @locker.synchronized(lock_name)
    def job():
        assert locker.is_locked(lock_name)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        job()
    assert locker.holder(lock_name) is None


def test_synchronized_keeps_the_function_metadata(locker, lock_name):
    @locker.synchronized(lock_name)
    def documented():
        """Say hello."""

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Say hello."


def test_synchronized_rejects_an_unknown_on_busy(locker, lock_name):
    with pytest.raises(InvalidArgumentError):
        locker.synchronized(lock_name, on_busy="later")
