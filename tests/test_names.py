"""Lock names: validation, names stored verbatim, hashed long or unsafe names, namespaces."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest

from PyMySQLLock import InvalidArgumentError, InvalidArgumentTypeError, LockError

#: Names both servers store unchanged are at most this long.
MAX_VERBATIM = 64

_NAMESPACE_NUMBERS = itertools.count(1)

# Run in another interpreter: tries the name once, and lists the locks while holding it.
OTHER_PROCESS = textwrap.dedent(
    """
    import json, sys
    from PyMySQLLock import Locker

    config = json.loads(sys.argv[1])
    with Locker(driver=config["driver"], **config["connect"]) as locker:
        lock = locker.lock(config["name"])
        acquired = lock.acquire(0)
        listed = locker.get_all_locks() if acquired else []
        if acquired:
            lock.release()
    print(json.dumps({"acquired": acquired, "listed": listed}))
    """
)


def _in_other_process(server, driver, name):
    config = {"driver": driver, "connect": server.connect_kwargs(), "name": name}
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _namespace(tag):
    """A namespace no other test uses (at most 20 characters)."""
    return f"ns{next(_NAMESPACE_NUMBERS)}{tag}"


def _holder(sql, stored_name):
    return sql("SELECT IS_USED_LOCK(%s)", (stored_name,))[0][0]


def _stored_form(locker, lock):
    """Acquire ``lock`` and return the one name that appeared in the server's listing."""
    before = set(locker.get_all_locks())
    assert lock.acquire(0) is True
    new = set(locker.get_all_locks()) - before
    assert len(new) == 1, f"acquiring one lock listed {sorted(new)}"
    return new.pop()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "error", "builtin"),
    [
        pytest.param("", InvalidArgumentError, ValueError, id="empty"),
        pytest.param(123, InvalidArgumentTypeError, TypeError, id="int"),
        pytest.param(b"name", InvalidArgumentTypeError, TypeError, id="bytes"),
        pytest.param(None, InvalidArgumentTypeError, TypeError, id="None"),
    ],
)
def test_invalid_name_raises_before_anything_is_sent(locker, server_traffic, name, error, builtin):
    with server_traffic() as traffic, pytest.raises(error) as info:
        locker.lock(name)
    assert isinstance(info.value, builtin)
    assert isinstance(info.value, LockError)
    assert traffic.connections == 0
    assert traffic.selects == 0


# --------------------------------------------------------------------------- verbatim names


def test_64_characters_are_stored_verbatim(locker, lock_name, sql):
    name = lock_name.ljust(MAX_VERBATIM, "x")
    lock = locker.lock(name)
    assert _stored_form(locker, lock) == name
    assert _holder(sql, name) == lock.connection_id
    lock.release()
    assert name not in locker.get_all_locks()


@pytest.mark.parametrize("suffix", ["é", "中文", "café-中文-ß-Ω"])
def test_non_ascii_names_are_stored_verbatim(locker, make_locker, lock_name, sql, suffix):
    name = f"{lock_name}-{suffix}"
    lock = locker.lock(name)
    assert _stored_form(locker, lock) == name
    assert _holder(sql, name) == lock.connection_id
    assert make_locker().lock(name).acquire(0) is False
    lock.release()


SQL_METACHARACTERS = [
    pytest.param("'", id="quote"),
    pytest.param('"', id="double-quote"),
    pytest.param("\\", id="backslash"),
    pytest.param("%", id="percent"),
    pytest.param("_", id="underscore"),
    pytest.param("`", id="backtick"),
    pytest.param("'); DROP TABLE x; --", id="injection"),
    pytest.param("\\'; DROP TABLE x; --", id="escaped-injection"),
]


@pytest.fixture
def table_x(server, sql):
    """A table ``x`` in the test database, for names that try to drop it."""
    table = f"`{server.database}`.`x`"
    sql(f"CREATE TABLE IF NOT EXISTS {table} (id INT)")
    yield lambda: sql(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = 'x'",
        (server.database,),
    )[0][0]
    sql(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.parametrize("meta", SQL_METACHARACTERS)
def test_sql_metacharacters_round_trip(locker, make_locker, lock_name, sql, table_x, meta):
    prefix = lock_name[:40]  # still unique: the number comes first
    name = f"{prefix}{meta}"
    lock = locker.lock(name)
    assert _stored_form(locker, lock) == name
    assert _holder(sql, name) == lock.connection_id
    assert make_locker().lock(name).acquire(0) is False
    # A lock whose name is a LIKE pattern matching ours is another lock.
    assert make_locker().lock(f"{prefix}%").acquire(0) is (meta != "%")
    lock.release()
    assert name not in locker.get_all_locks()
    assert table_x() == 1


# --------------------------------------------------------------------------- hashed names


@pytest.mark.parametrize("length", [65, 1000])
def test_long_names_are_hashed_deterministically(
    server, locker, make_locker, driver, lock_name, sql, length
):
    name = lock_name.ljust(length, "y")
    lock = locker.lock(name)
    stored = _stored_form(locker, lock)
    assert stored != name
    assert len(stored) <= MAX_VERBATIM
    assert _holder(sql, stored) == lock.connection_id
    # Another Locker, and another process, map the name to the same lock.
    assert make_locker().lock(name).acquire(0) is False
    assert _in_other_process(server, driver, name) == {"acquired": False, "listed": []}
    lock.release()
    assert _in_other_process(server, driver, name)["listed"].count(stored) == 1
    other = make_locker().lock(name)
    assert _stored_form(locker, other) == stored
    other.release()


def test_names_longer_than_64_differing_only_at_the_end_are_different_locks(
    locker, make_locker, lock_name
):
    base = lock_name.ljust(100, "z")
    first, second = locker.lock(base + "1"), make_locker().lock(base + "2")
    assert first.acquire(0) is True
    assert second.acquire(0) is True
    first.release()
    second.release()


@pytest.mark.parametrize("suffix", ["🔒", "a😀b", "𝄞"])
def test_names_with_4_byte_characters_are_hashed(locker, make_locker, lock_name, sql, suffix):
    name = f"{lock_name}-{suffix}"
    lock = locker.lock(name)
    stored = _stored_form(locker, lock)
    assert stored != name
    assert len(stored) <= MAX_VERBATIM
    assert all(ord(char) <= 0xFFFF for char in stored)
    assert _holder(sql, stored) == lock.connection_id
    assert make_locker().lock(name).acquire(0) is False
    lock.release()


@pytest.mark.parametrize("suffix", ["\x00", "\x00tail", "mid\x00dle"], ids=["end", "tail", "mid"])
def test_names_with_nul_are_hashed(locker, make_locker, lock_name, sql, table_x, suffix):
    name = f"{lock_name}{suffix}"
    lock = locker.lock(name)
    stored = _stored_form(locker, lock)
    assert "\x00" not in stored
    assert len(stored) <= MAX_VERBATIM
    assert _holder(sql, stored) == lock.connection_id
    assert make_locker().lock(name).acquire(0) is False
    # The server would cut the name at the NUL; the text before it is another lock.
    before_nul = name.split("\x00", maxsplit=1)[0]
    assert make_locker().lock(before_nul).acquire(0) is True
    lock.release()
    assert table_x() == 1


def test_names_differing_after_a_nul_are_different_locks(locker, make_locker, lock_name):
    first = locker.lock(f"{lock_name}\x00a")
    second = make_locker().lock(f"{lock_name}\x00b")
    assert first.acquire(0) is True
    assert second.acquire(0) is True
    first.release()
    second.release()


# --------------------------------------------------------------------------- namespaces


def test_namespaces_isolate_equal_names(make_locker):
    locker_a = make_locker(namespace=_namespace("a"))
    locker_b = make_locker(namespace=_namespace("b"))
    job_a, job_b = locker_a.lock("job"), locker_b.lock("job")
    assert job_a.acquire(0) is True
    assert job_b.acquire(0) is True
    job_a.release()
    job_b.release()


def test_one_namespace_in_two_lockers_contends(make_locker):
    namespace = _namespace("c")
    first = make_locker(namespace=namespace).lock("job")
    second = make_locker(namespace=namespace).lock("job")
    assert first.acquire(0) is True
    assert second.acquire(0) is False
    first.release()
    assert second.acquire(0) is True
    second.release()


def test_namespace_is_a_prefix_seen_by_the_server(make_locker, sql):
    namespace = _namespace("p")
    lock = make_locker(namespace=namespace).lock("job")
    assert lock.acquire(0) is True
    assert _holder(sql, f"{namespace}.job") == lock.connection_id
    assert _holder(sql, "job") != lock.connection_id
    lock.release()


def test_get_all_locks_with_a_namespace_lists_only_its_names(locker, make_locker, lock_name):
    ns_a, ns_b = _namespace("a"), _namespace("b")
    locker_a = make_locker(namespace=ns_a)
    locker_b = make_locker(namespace=ns_b)
    held = [
        locker_a.lock("job"),
        locker_a.lock("other-job"),
        locker_b.lock("job"),
        locker.lock(lock_name),
    ]
    for lock in held:
        assert lock.acquire(0) is True
    listed_a = locker_a.get_all_locks()
    assert sorted(listed_a) == ["job", "other-job"]
    assert locker_b.get_all_locks() == ["job"]
    everything = locker.get_all_locks()
    for expected in (f"{ns_a}.job", f"{ns_a}.other-job", f"{ns_b}.job", lock_name):
        assert everything.count(expected) == 1
    for lock in held:
        lock.release()
    assert locker_a.get_all_locks() == []


def test_namespace_listing_treats_wildcards_literally(make_locker):
    base = _namespace("w")
    literal = make_locker(namespace=f"{base}_")
    lookalike = make_locker(namespace=f"{base}x")
    lock = lookalike.lock("job")
    assert lock.acquire(0) is True
    assert literal.get_all_locks() == []
    assert lookalike.get_all_locks() == ["job"]
    lock.release()


def test_long_name_in_a_namespace_is_hashed_and_listed(make_locker, lock_name):
    namespace = _namespace("h")
    namespaced = make_locker(namespace=namespace)
    name = lock_name.ljust(200, "q")
    lock = namespaced.lock(name)
    stored = _stored_form(namespaced, lock)
    assert stored != name
    assert len(namespace) + 1 + len(stored) <= MAX_VERBATIM
    assert make_locker(namespace=namespace).lock(name).acquire(0) is False
    assert make_locker(namespace=_namespace("o")).lock(name).acquire(0) is True
    lock.release()
