"""Fencing tokens taken on the holding session, and the caller's statements on that session.

* ``fencing=True``: every acquire takes a token that is larger than every earlier holder's, from
  any Locker and driver; the counter table is created on first use, or ahead by
  ``create_fencing_table()``; a warm fenced cycle is exactly three statements.
* A holder whose session was killed cannot write through it, and its old token loses against
  the successor's in a guarded write.
* ``lock.cursor()`` / ``lock.transaction()``: statements on the holding session, serialized with
  a fast keepalive; a transaction open when the session is killed is rolled back; what a caller
  leaves in the session (variables, unread results) never reaches the next lock.
* Refusals: an account without the privileges, a read-only server, a bad table; the statement
  texts and the answer interpretation (pure code) are checked without a server.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from PyMySQLLock import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockError,
    LockLostError,
    LockNotHeldError,
    PermissionDeniedError,
    UnsupportedServerError,
    fencing_sql,
)
from PyMySQLLock.fencing_sql import (
    check_engine,
    check_server,
    statement_error,
    statements_for,
    token_from,
    validate_table,
)
from PyMySQLLock.server import ServerInfo

MARIADB = ServerInfo.from_version_string("5.5.5-10.11.19-MariaDB")
MYSQL = ServerInfo.from_version_string("8.4.3")
_TAG = secrets.token_hex(3)


def guarded_write(cursor: Any, table: str, body: str, token: int) -> bool:
    """The write the docs recommend: accepted only if no newer holder has written."""
    cursor.execute(
        f"UPDATE `{table}` SET body = %s, fence = %s WHERE id = 1 AND fence < %s",
        (body, token, token),
    )
    return bool(cursor.rowcount == 1)


# --------------------------------------------------------------------------- tokens


def test_tokens_grow_across_acquires_lockers_and_drivers(
    make_locker: Callable[..., Any], lock_name: str, table: str, server: Any, driver: str
) -> None:
    first = make_locker(fencing_table=table)
    others = [make_locker(fencing_table=table, driver=name) for name in ("pymysql", "MySQLdb")]
    seen = []
    for locker in [first, *others, first]:
        lock = locker.lock(lock_name, fencing=True)
        assert lock.token is None
        with lock:
            seen.append(lock.token)
        assert lock.token == seen[-1]  # still readable after release
    assert seen == list(range(1, len(seen) + 1))
    rows = server.sql(f"SELECT name, token FROM `{server.database}`.`{table}`")
    assert [(bytes(name).decode(), token) for name, token in rows] == [(lock_name, len(seen))]
    # A plain lock has no token, and its acquire does not touch the counter.
    with first.lock(lock_name) as plain:
        assert plain.token is None
    assert server.sql(f"SELECT token FROM `{server.database}`.`{table}`") == [(len(seen),)]


def test_tokens_follow_the_order_of_holding_under_contention(
    make_locker: Callable[..., Any], lock_name: str, table: str, spawn: Callable[..., Any]
) -> None:
    lockers = [make_locker(fencing_table=table) for _ in range(3)]
    order: list[int] = []

    def work(locker: Any) -> None:
        for _ in range(15):
            with locker.lock(lock_name, fencing=True, timeout=30) as lock:
                order.append(lock.token)  # inside the held section: the lock orders these

    workers = [spawn(work, locker) for locker in lockers]
    for worker in workers:
        worker.result(timeout=60)
    assert order == sorted(order)
    assert len(set(order)) == len(order) == 45


def test_create_fencing_table_ahead_and_qualified_names(
    make_locker: Callable[..., Any], lock_name: str, table: str, server: Any
) -> None:
    qualified = f"{server.database}.{table}"
    locker = make_locker(fencing_table=qualified)
    assert locker.fencing_table == qualified
    locker.create_fencing_table()
    locker.create_fencing_table()  # idempotent
    engine = server.sql(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (server.database, table),
    )
    assert engine == [("InnoDB",)]
    with locker.lock(lock_name, fencing=True) as lock:
        assert lock.token == 1


def test_a_dropped_table_is_created_again(
    make_locker: Callable[..., Any], lock_name: str, table: str, server: Any
) -> None:
    locker = make_locker(fencing_table=table)
    with locker.lock(lock_name, fencing=True) as lock:
        assert lock.token == 1
    server.sql(f"DROP TABLE `{server.database}`.`{table}`")
    with locker.lock(lock_name, fencing=True) as lock:
        assert lock.token == 1  # a new table starts again: the docs say never to drop it


def test_a_table_of_another_engine_is_refused_and_the_lock_freed(
    make_locker: Callable[..., Any], lock_name: str, table: str, server: Any
) -> None:
    server.sql(
        f"CREATE TABLE `{server.database}`.`{table}` "
        "(name VARBINARY(255) PRIMARY KEY, token BIGINT) ENGINE=MEMORY"
    )
    locker = make_locker(fencing_table=table)
    with pytest.raises(InvalidArgumentError, match="MEMORY"):
        locker.lock(lock_name, fencing=True).acquire(timeout=5)
    assert not locker.is_locked(lock_name)


def test_lock_class_and_fencing(
    make_locker: Callable[..., Any], lock_name: str, table: str
) -> None:
    from PyMySQLLock import Lock
    from PyMySQLLock.fencing import FencedLock

    class Plain(Lock):
        pass

    class Fenced(FencedLock):
        pass

    locker = make_locker(fencing_table=table)
    locker.lock_class = Plain
    with pytest.raises(InvalidArgumentError, match="FencedLock"):
        locker.lock(lock_name, fencing=True)
    locker.lock_class = Fenced
    with locker.lock(lock_name, fencing=True) as lock:
        assert type(lock) is Fenced
        assert lock.token == 1


def test_bad_arguments_are_refused_before_anything_is_sent(
    make_locker: Callable[..., Any], lock_name: str
) -> None:
    locker = make_locker()
    with pytest.raises(InvalidArgumentTypeError, match="fencing"):
        locker.lock(lock_name, fencing=1)
    with pytest.raises(InvalidArgumentError, match="fencing_table"):
        make_locker(fencing_table="x; DROP TABLE y")
    with pytest.raises(InvalidArgumentTypeError, match="fencing_table"):
        make_locker(fencing_table=b"t")


def test_warm_fenced_cycle_is_three_statements(
    make_locker: Callable[..., Any],
    lock_name: str,
    table: str,
    server_status: Callable[..., dict[str, int]],
) -> None:
    locker = make_locker(fencing_table=table)

    def cycle() -> None:
        with locker.lock(lock_name, fencing=True, refresh_interval_secs=3600) as lock:
            assert lock.token

    cycle()
    counters = ("Questions", "Com_select", "Com_insert", "Connections")

    def moved(work: Callable[[], object]) -> dict[str, int]:
        before = server_status(*counters)
        work()
        after = server_status(*counters)
        return {key: after[key] - before[key] for key in counters}

    for _ in range(4):  # another session's stray statement can only add: take the best
        reading = moved(lambda: None)  # what reading the counters itself adds
        measured = moved(lambda: [cycle() for _ in range(20)])
        own = {key: measured[key] - reading[key] for key in counters}
        # Per cycle exactly two SELECTs (GET_LOCK, RELEASE_LOCK) and one INSERT (the token),
        # no connection, and no statement of any other kind (a stray statement of another
        # session, seen once in a full suite run, is not one per cycle).
        exact = {key: own[key] for key in ("Com_select", "Com_insert", "Connections")}
        if exact == {"Com_select": 40, "Com_insert": 20, "Connections": 0} and (
            60 <= own["Questions"] < 80
        ):
            return
    pytest.fail(f"20 warm fenced cycles sent {own}")


# --------------------------------------------------------------------------- stale holders


def test_a_killed_holder_cannot_write_and_its_token_loses(
    make_locker: Callable[..., Any], lock_name: str, table: str, guarded: str, server: Any
) -> None:
    old_locker, new_locker = make_locker(fencing_table=table), make_locker(fencing_table=table)
    old = old_locker.lock(lock_name, fencing=True, refresh_interval_secs=3600)
    assert old.acquire(timeout=5)
    assert new_locker.force_release(lock_name)  # as if old had been paused past its loss
    with new_locker.lock(lock_name, fencing=True, timeout=5) as new:
        assert new.token > old.token
        with new.cursor() as cursor:
            assert guarded_write(cursor, guarded, "new", new.token)
        # The old holder wakes up: its own session is gone, so it cannot write through it...
        with pytest.raises(LockLostError), old.cursor() as cursor:
            guarded_write(cursor, guarded, "stale", old.token)
        assert old.lost
        # ...and its token is refused wherever else it would write.
        with contextlib.closing(_raw_connection(server)) as other:
            assert not guarded_write(other.cursor(), guarded, "stale", old.token)
    old.release()
    assert server.sql(f"SELECT body, fence FROM `{server.database}`.`{guarded}`") == [
        ("new", new.token)
    ]


def _raw_connection(server: Any) -> Any:
    import pymysql

    return pymysql.connect(autocommit=True, **server.connect_kwargs())


# --------------------------------------------------------------------------- caller statements


def test_cursor_runs_on_the_holding_session(locker: Any, lock_name: str) -> None:
    with locker.lock(lock_name) as lock, lock.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID(), IS_USED_LOCK(%s)", (lock.server_name,))
        assert tuple(cursor.fetchone()) == (lock.connection_id, lock.connection_id)


def test_cursor_needs_a_held_lock_and_does_not_nest(locker: Any, lock_name: str) -> None:
    lock = locker.lock(lock_name)
    with pytest.raises(LockNotHeldError):
        lock.cursor().__enter__()
    with lock, lock.cursor():
        with pytest.raises(LockError, match="already open"):
            lock.cursor().__enter__()
        with pytest.raises(LockError, match="inside a cursor"):
            lock.release()  # would wait for the block's own mutex forever
        assert lock.locked()
    with pytest.raises(LockNotHeldError):
        lock.transaction().__enter__()


def test_keepalive_and_caller_statements_never_interleave(
    locker: Any, lock_name: str, spawn: Callable[..., Any]
) -> None:
    lock = locker.lock(lock_name, refresh_interval_secs=0.01)
    stop = threading.Event()

    def caller(number: int) -> int:
        done = 0
        while not stop.is_set():
            with lock.cursor() as cursor:
                cursor.execute("SELECT %s, REPEAT('x', 5000)", (number * 100000 + done,))
                row = cursor.fetchone()
                assert row[0] == number * 100000 + done
                assert len(row[1]) == 5000
            done += 1
        return done

    with lock:
        workers = [spawn(caller, number) for number in range(1, 3)]
        time.sleep(1.5)  # the keepalive checks about every 10 ms meanwhile
        stop.set()
        counts = [worker.result(timeout=30) for worker in workers]
        assert lock.locked()
    assert not lock.lost
    assert all(count > 0 for count in counts)


def test_transaction_commits_while_held_and_rolls_back_on_error(
    locker: Any, lock_name: str, guarded: str, server: Any
) -> None:
    with locker.lock(lock_name) as lock:
        with lock.transaction() as cursor:
            cursor.execute(f"UPDATE `{guarded}` SET body = 'committed'")
        with pytest.raises(ZeroDivisionError):
            _update_then_raise(lock, guarded)
        assert lock.locked()
    assert server.sql(f"SELECT body FROM `{server.database}`.`{guarded}`") == [("committed",)]


def _update_then_raise(lock: Any, guarded: str) -> None:
    with lock.transaction() as cursor:
        cursor.execute(f"UPDATE `{guarded}` SET body = 'rolled back'")
        _ = 1 / 0


def _update_then_kill(lock: Any, guarded: str, admin: Any) -> None:
    with lock.transaction() as cursor:
        cursor.execute(f"UPDATE `{guarded}` SET body = 'uncommitted'")
        assert admin.force_release(lock.name)
        cursor.execute("SELECT 1")  # the first statement after the kill fails


def test_a_killed_session_rolls_back_the_open_transaction(
    make_locker: Callable[..., Any], lock_name: str, guarded: str, server: Any
) -> None:
    locker, admin = make_locker(), make_locker()
    lost = threading.Event()
    lock = locker.lock(lock_name, refresh_interval_secs=3600, on_lost=lambda _: lost.set())
    assert lock.acquire(timeout=5)
    with pytest.raises(LockLostError, match="rolled back"):
        _update_then_kill(lock, guarded, admin)
    assert lost.is_set()
    assert lock.lost
    assert not lock.locked()
    lock.release()  # only cleans up
    assert server.sql(f"SELECT body FROM `{server.database}`.`{guarded}`") == [("",)]


def test_caller_state_never_reaches_the_next_lock(locker: Any, lock_name: str) -> None:
    with locker.lock(lock_name) as lock:
        first = lock.connection_id
        with lock.cursor() as cursor:
            cursor.execute("SET @leftover = 42, SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
            cursor.execute("SELECT 1 UNION SELECT 2")  # rows left unread
        # The keepalive and the release still work on the session.
    with locker.lock(lock_name) as lock:
        assert lock.connection_id != first
        with lock.cursor() as cursor:
            cursor.execute("SELECT @leftover, @@session.sql_mode LIKE '%%NO_BACKSLASH%%'")
            assert tuple(cursor.fetchone()) == (None, 0)
        second = lock.connection_id
    with locker.lock(lock_name) as lock:  # without caller statements the session is pooled
        third = lock.connection_id
        assert third != second
    with locker.lock(lock_name) as lock:
        assert lock.connection_id == third


def test_unread_result_sets_are_read_before_the_keepalive_runs(
    locker: Any, lock_name: str, server: Any
) -> None:
    procedure = f"two_results_{_TAG}_{secrets.token_hex(3)}"
    server.sql(
        f"CREATE PROCEDURE `{server.database}`.`{procedure}`() BEGIN SELECT 1; SELECT 2, 3; END"
    )
    try:
        lock = locker.lock(lock_name, refresh_interval_secs=0.05)
        with lock:
            with lock.cursor() as cursor:
                cursor.execute(f"CALL `{procedure}`()")
            time.sleep(0.3)  # a few keepalive checks on the same connection
            assert lock.locked()
            with lock.cursor() as cursor:
                cursor.execute("SELECT 7")
                assert tuple(cursor.fetchone()) == (7,)
        assert not lock.lost
    finally:
        server.sql(f"DROP PROCEDURE IF EXISTS `{server.database}`.`{procedure}`")


# --------------------------------------------------------------------------- refusals


class _Account:
    def __init__(self, server: Any, grant: str | None) -> None:
        self.server = server
        self.user = f"fence_{_TAG}_{secrets.token_hex(2)}"
        self.password = secrets.token_hex(8)
        server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (self.user, self.password))
        if grant:
            server.sql(f"GRANT {grant} TO %s@'%%'", (self.user,))

    def kwargs(self) -> dict[str, Any]:
        return {
            **self.server.connect_kwargs(),
            "user": self.user,
            "password": self.password,
        }

    def drop(self) -> None:
        self.server.sql("DROP USER IF EXISTS %s@'%%'", (self.user,))


@pytest.fixture
def account(server: Any) -> Iterator[Callable[[str | None], _Account]]:
    made: list[_Account] = []

    def make(grant: str | None) -> _Account:
        made.append(_Account(server, grant))
        return made[-1]

    yield make
    for each in made:
        each.drop()


def test_an_account_without_privileges_is_told_what_it_needs(
    make_locker: Callable[..., Any],
    account: Callable[[str | None], _Account],
    lock_name: str,
    table: str,
    server: Any,
) -> None:
    reader = account(f"SELECT ON `{server.database}`.*")
    locker = make_locker(fencing_table=table, **reader.kwargs())
    with pytest.raises(PermissionDeniedError, match="fencing init") as caught:
        locker.lock(lock_name, fencing=True).acquire(timeout=5)
    assert caught.value.server_code in (1142, 1044)
    assert not locker.is_locked(lock_name)  # never a lock without its token
    # Created by an administrator, the table needs only INSERT and UPDATE.
    make_locker(fencing_table=table).create_fencing_table()
    server.sql(f"GRANT INSERT, UPDATE ON `{server.database}`.`{table}` TO %s@'%%'", (reader.user,))
    with make_locker(fencing_table=table, **reader.kwargs()).lock(
        lock_name, fencing=True, timeout=5
    ) as lock:
        assert lock.token == 1


def test_a_read_only_server_is_refused(
    make_locker: Callable[..., Any], lock_name: str, table: str, server: Any
) -> None:
    locker = make_locker(fencing_table=table)
    server.sql("SET GLOBAL read_only = ON")
    try:
        with pytest.raises(UnsupportedServerError, match="read_only=ON"):
            locker.lock(lock_name, fencing=True).acquire(timeout=5)
    finally:
        server.sql("SET GLOBAL read_only = OFF")
    assert not locker.is_locked(lock_name)
    with locker.lock(lock_name, fencing=True, timeout=5) as lock:  # checked again after that
        assert lock.token == 1


# --------------------------------------------------------------------------- pure code


@pytest.mark.parametrize(
    ("given", "parts"),
    [("t", (None, "t")), ("db.t_1$", ("db", "t_1$")), ("_" * 64, (None, "_" * 64))],
)
def test_table_names_that_are_accepted(given: str, parts: tuple[str | None, str]) -> None:
    assert validate_table(given) == parts


@pytest.mark.parametrize(
    "given", ["", "1t", "a.b.c", "t`", "t;", "a b", "t%s", "x" * 65, "db.", ".t", "é"]
)
def test_table_names_that_are_refused(given: str) -> None:
    with pytest.raises(InvalidArgumentError):
        validate_table(given)


def test_statements_key_rows_as_the_server_compares_lock_names() -> None:
    mariadb, mysql = statements_for("db.t", MARIADB), statements_for("t", MYSQL)
    assert mariadb.increment.startswith("INSERT INTO `db`.`t` (name, token) VALUES (%s, ")
    assert "LOWER(CONVERT(%s USING utf8mb3))" in mysql.increment  # MySQL lowercases names
    # The texts are the module's constants with only the quoted table name put in (the AST
    # check of tests/test_security.py relies on that).
    assert mariadb.create.replace("`db`.`t`", "{table}") == fencing_sql._CREATE
    assert mariadb.increment.replace("`db`.`t`", "{table}") == fencing_sql._INCREMENT_BYTES
    assert mysql.increment.replace("`t`", "{table}") == fencing_sql._INCREMENT_LOWERCASED
    for statements in (mariadb, mysql):
        assert "LAST_INSERT_ID(token + 1)" in statements.increment
        assert "ENGINE=InnoDB" in statements.create


def test_server_checks() -> None:
    assert check_server(MARIADB, {"read_only": "OFF", "wsrep_on": "OFF"}) == []
    refused = [
        {"wsrep_on": "ON"},
        {"read_only": "ON"},
        {"super_read_only": "ON"},
        {"innodb_read_only": "ON"},
        {"group_replication_single_primary_mode": "OFF", "group_replication_group_name": "g"},
    ]
    for variables in refused:
        with pytest.raises(UnsupportedServerError):
            check_server(MYSQL, variables)
    galera = ServerInfo.from_version_string("10.11.19-MariaDB", {"wsrep_on": "ON"})
    with pytest.raises(UnsupportedServerError, match="Galera"):
        check_server(galera, {})
    assert check_server(MYSQL, {"group_replication_single_primary_mode": "ON"}) == []
    assert "twice" in check_server(MYSQL, {"innodb_flush_log_at_trx_commit": "0"})[0]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1142, PermissionDeniedError),
        (1044, PermissionDeniedError),
        (1290, UnsupportedServerError),
        (1836, UnsupportedServerError),
        (1046, InvalidArgumentError),
        (1054, InvalidArgumentError),
        (1205, LockError),
    ],
)
def test_server_errors_are_translated(code: int, kind: type[LockError]) -> None:
    error = statement_error(code, "message", statements_for("t", MARIADB))
    assert type(error) is kind
    assert error.server_code == code


def test_answers_without_a_token_are_never_guessed() -> None:
    statements = statements_for("t", MARIADB)
    assert token_from(1, 1, statements) == 1
    assert token_from(2, 17, statements) == 17
    for affected, insert_id in [(0, 5), (2, 0), (None, 3), (1, None), (3, 4)]:
        with pytest.raises(LockError, match="no token"):
            token_from(affected, insert_id, statements)
    assert check_engine("InnoDB", statements)
    assert not check_engine(None, statements)
    with pytest.raises(InvalidArgumentError):
        check_engine("MyISAM", statements)


def test_cli_fencing_init_creates_the_table(
    server: Any, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from PyMySQLLock.cli import main

    assert main(["fencing", "init", "--url", server.url, "--table", table, "--no-defaults"]) == 0
    assert f"fencing table {table} is ready" in capsys.readouterr().out
    found = server.sql(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (server.database, table),
    )
    assert found == [("InnoDB",)]
    assert main(["fencing", "init", "--url", server.url, "--table", "bad;name"]) == 2
