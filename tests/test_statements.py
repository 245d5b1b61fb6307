"""The meaning of every answer, over answers recorded from MariaDB 10.11 and MySQL 8 (no server).

The recorded rows and error messages are those of shared/reference/mysql-semantics.md
(appendix A for MariaDB 10.11.19, section 1 for MySQL 8's source-level behaviour).
"""

from __future__ import annotations

import pickle

import pytest

from PyMySQLLock import statements
from PyMySQLLock.errors import (
    AcquireInterruptedError,
    DeadlockError,
    LockError,
    LockListingUnavailableError,
    PermissionDeniedError,
    UnsupportedServerError,
)
from PyMySQLLock.server import MARIADB, MYSQL, TIDB, ServerInfo
from PyMySQLLock.statements import Acquire, Release

MARIADB_10_11 = ServerInfo.from_version_string("5.5.5-10.11.19-MariaDB-0+deb12u1")
MYSQL_8 = ServerInfo.from_version_string("8.4.3")
TIDB_7 = ServerInfo.from_version_string("8.0.11-TiDB-v7.5.0")


# -- GET_LOCK ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ((1,), Acquire.GRANTED),  # both servers; also a recursive acquire
        ((0,), Acquire.BUSY),  # held elsewhere for the whole wait
    ],
)
def test_get_lock_rows(row: tuple[object, ...], expected: Acquire) -> None:
    assert statements.acquire_answer("job", row) is expected


@pytest.mark.parametrize("row", [(None,), None, ()])
def test_get_lock_null_is_an_interrupted_wait(row: tuple[object, ...] | None) -> None:
    # MariaDB: KILL QUERY or max_statement_time on the waiter answers NULL without an error.
    outcome = statements.acquire_answer("job", row)
    assert type(outcome) is AcquireInterruptedError
    assert "'job'" in str(outcome)


@pytest.mark.parametrize("value", [2, -1, "1", 0.0, False, b"0"])
def test_get_lock_unexpected_value_is_never_taken_for_granted(value: object) -> None:
    outcome = statements.acquire_answer("job", (value,))
    assert type(outcome) is LockError
    assert f"unexpected answer {value!r}" in str(outcome)
    # The lock might be held on that session: it must be closed, not pooled.
    assert not statements.keeps_session(outcome)


def test_which_answers_keep_the_session() -> None:
    assert statements.keeps_session(statements.acquire_answer("job", (0,)))
    assert statements.keeps_session(statements.acquire_answer("job", (None,)))
    assert not statements.keeps_session(statements.acquire_answer("job", (1,)))


@pytest.mark.parametrize(
    ("code", "message", "error_class"),
    [
        (1213, "Deadlock found when trying to get lock; try restarting transaction", DeadlockError),
        (
            3058,
            (
                "Deadlock found when trying to get user-level lock; try rolling back "
                "transaction/releasing locks and restarting lock acquisition."
            ),
            DeadlockError,
        ),
        (1317, "Query execution was interrupted", AcquireInterruptedError),
        (
            3024,
            "Query execution was interrupted, maximum statement execution time exceeded",
            AcquireInterruptedError,
        ),
        (
            1969,
            "Query execution was interrupted (max_statement_time exceeded)",
            AcquireInterruptedError,
        ),
        (
            1235,
            "This version of MariaDB doesn't yet support 'GET_LOCK in cluster (WSREP_ON=ON)'",
            UnsupportedServerError,
        ),
        (1836, "Running in read-only mode", UnsupportedServerError),
        (1059, "Identifier name 'aaaa' is too long", LockError),
        (4079, "Illegal parameter data type int for operation 'get_lock'", LockError),
    ],
)
def test_get_lock_errors(code: int, message: str, error_class: type[LockError]) -> None:
    outcome = statements.acquire_failure("job", code, message)
    assert type(outcome) is error_class
    assert isinstance(outcome, LockError)
    assert outcome.server_code == code
    assert message in str(outcome)
    assert "'job'" in str(outcome)


def test_get_lock_wait_timeout_error_means_not_granted() -> None:
    # 1205 ER_LOCK_WAIT_TIMEOUT: the wait expired without the lock; the session is fine.
    outcome = statements.acquire_failure(
        "job", 1205, "Lock wait timeout exceeded; try restarting transaction"
    )
    assert outcome is Acquire.BUSY


def test_unsupported_server_message_says_what_to_do() -> None:
    outcome = statements.acquire_failure("job", 1836, "Running in read-only mode")
    assert "writer endpoint" in str(outcome)


@pytest.mark.parametrize(
    ("code", "lost"),
    [
        (2006, True),  # MySQL server has gone away (a killed idle holder's next statement)
        (2013, True),  # Lost connection to server during query (KILL of a waiter)
        (2055, True),
        (1927, True),  # MariaDB: connection was killed
        (4031, True),  # MySQL: disconnected for inactivity
        (1053, True),  # shutdown in progress
        (None, True),
        (-1, True),
        (0, True),
        (2000, True),
        (1213, False),
        (1317, False),
        (1205, False),
        (3058, False),
        (1095, False),
    ],
)
def test_connection_lost_codes(code: int | None, lost: bool) -> None:
    assert statements.connection_lost(code) is lost


@pytest.mark.parametrize(
    ("read_timeout", "info", "expected"),
    [
        (10.0, MARIADB_10_11, (8.5, 8)),
        (10.0, MYSQL_8, (8.5, 8)),
        (2.0, MARIADB_10_11, (1.0, 1)),
        (1.0, MARIADB_10_11, (0.5, 0.5)),
        (1.0, MYSQL_8, (0.5, 0)),  # MySQL rounds fractions: a sub-second chunk is a try
        (7200.0, TIDB_7, (3600.0, 3600)),  # TiDB clamps a wait at one hour
    ],
)
def test_wait_chunks(read_timeout: float, info: ServerInfo, expected: tuple[float, float]) -> None:
    assert statements.wait_chunks(read_timeout, info) == expected


# -- RELEASE_LOCK and the keepalive proof ------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ((1,), Release.RELEASED),
        ((0,), Release.HELD_ELSEWHERE),  # 'L' held by A, released by B
        ((None,), Release.NOT_HELD),  # release_lock('nope')
        (None, Release.NOT_HELD),
    ],
)
def test_release_rows(row: tuple[object, ...] | None, expected: Release) -> None:
    outcome = statements.release_answer(row)
    assert outcome is expected
    assert (outcome.lost_reason is None) is (expected is Release.RELEASED)


@pytest.mark.parametrize(
    ("row", "held"),
    [((1,), True), ((0,), False), ((None,), False), (None, False)],
)
def test_still_held(row: tuple[object, ...] | None, held: bool) -> None:
    # IS_USED_LOCK(name) = CONNECTION_ID(): 1 ours, 0 someone else's, NULL free.
    assert statements.still_held(row) is held


# -- administration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "holder"),
    [((24,), 24), ((None,), None), (None, None)],
)
def test_holder(row: tuple[object, ...] | None, holder: int | None) -> None:
    assert statements.holder_answer(row) == holder


def test_kill_of_a_gone_session_is_no_error() -> None:
    assert statements.kill_failure(1094, "Unknown thread id: 99") is None


def test_kill_denied_names_the_privilege() -> None:
    error = statements.kill_failure(1095, "You are not owner of thread 12")
    assert isinstance(error, PermissionDeniedError)
    assert error.server_code == 1095
    assert "CONNECTION_ADMIN" in str(error)


def test_other_admin_errors() -> None:
    error = statements.admin_error(1142, "SELECT command denied")
    assert type(error) is LockError
    assert error.server_code == 1142


# -- waits of closed sessions -----------------------------------------------------------------


def test_abandoned_query_asks_for_our_statement_and_the_ids() -> None:
    sql, params = statements.abandoned_query([17, 4, 2048], MARIADB_10_11)
    assert sql == statements.ABANDONED
    assert params == ("SELECT GET_LOCK(", "17,4,2048")
    assert statements.GET_LOCK.startswith(params[0])


@pytest.mark.parametrize(
    ("info", "table"),
    [
        (None, "information_schema.PROCESSLIST"),
        (MARIADB_10_11, "information_schema.PROCESSLIST"),
        (ServerInfo.from_version_string("8.0.34"), "information_schema.PROCESSLIST"),
        # MySQL 8.0.35 warns at each read of information_schema.PROCESSLIST.
        (ServerInfo.from_version_string("8.0.35"), "performance_schema.processlist"),
        (MYSQL_8, "performance_schema.processlist"),
    ],
)
def test_abandoned_query_reads_the_process_list_that_does_not_warn(
    info: ServerInfo | None, table: str
) -> None:
    sql, _ = statements.abandoned_query([1], info)
    assert f"FROM {table} " in sql


def test_abandoned_answer_kills_only_sessions_in_get_lock() -> None:
    # LOCATE(..., INFO) = 1 is 1 in GET_LOCK, 0 in another statement, NULL when idle.
    found = statements.abandoned_answer([(17, 1), (18, 0), (19, None)])
    assert found.kill == (17,)
    assert found.open == (18, 19)
    assert statements.abandoned_answer([]) == statements.Abandoned((), ())


# -- server detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("announced", "rows", "flavor", "version", "galera"),
    [
        ("5.5.5-10.11.19-MariaDB-0+deb12u1", [], MARIADB, (10, 11, 19), False),
        (
            "5.5.5-10.11.19-MariaDB",
            [("version", "10.11.19-MariaDB"), ("wsrep_on", "ON")],
            MARIADB,
            (10, 11, 19),
            True,
        ),
        (
            "8.4.3",
            [("version", "8.4.3"), ("version_comment", "MySQL Community Server - GPL")],
            MYSQL,
            (8, 4, 3),
            False,
        ),
        (
            "8.0.11-TiDB-v7.5.0",
            [("tidb_version", "Release Version: v7.5.0")],
            TIDB,
            (8, 0, 11),
            False,
        ),
        # Drivers may hand back bytes and upper-case names; rows are normalised.
        (
            "8.0.36",
            [(b"VERSION", b"8.0.36"), ("Aurora_version", "3.05.2")],
            MYSQL,
            (8, 0, 36),
            False,
        ),
    ],
)
def test_server_info(
    announced: str,
    rows: list[tuple[object, object]],
    flavor: str,
    version: tuple[int, int, int],
    galera: bool,
) -> None:
    server = statements.server_info(announced, rows)
    assert server.flavor == flavor
    assert server.version == version
    assert server.galera is galera


# -- listing --------------------------------------------------------------------------------


def test_listing_candidates() -> None:
    assert statements.listing_candidates(MARIADB_10_11) == (
        statements.METADATA_LOCK_INFO,
        statements.PERFORMANCE_SCHEMA,
    )
    assert statements.listing_candidates(MYSQL_8) == (statements.PERFORMANCE_SCHEMA,)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ((0, None), "performance_schema=OFF"),  # MariaDB default
        (("OFF", None), "performance_schema=OFF"),
        ((1, "NO"), "instrument is disabled"),  # MariaDB with PFS on: instrument off
        (None, "performance_schema=OFF"),
        ((1, "YES"), None),  # MySQL 8 default
    ],
)
def test_performance_schema_problem(row: tuple[object, ...] | None, problem: str | None) -> None:
    found = statements.performance_schema_problem(row)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_listing_missing_says_how_to_enable() -> None:
    message = "Unknown table 'metadata_lock_info' in information_schema"
    text = statements.listing_missing(statements.METADATA_LOCK_INFO, message)
    assert "INSTALL SONAME 'metadata_lock_info'" in text
    assert message in text
    text = statements.listing_missing(statements.PERFORMANCE_SCHEMA, "SELECT command denied")
    assert text == "performance_schema is not readable (SELECT command denied)"
    error = statements.no_listing_error(MARIADB_10_11, ["a", "b"])
    assert isinstance(error, LockListingUnavailableError)
    assert str(error) == "MariaDB 10.11.19 offers no way to list locks: a; b"


def test_listed_names() -> None:
    rows = [("app:job-1",), (b"other",), (None,), (b"\xff\xfe",)]
    assert statements.listed_names(rows) == ["app:job-1", "other", "\udcff\udcfe"]


def test_listed_details_and_lock_infos() -> None:
    # METADATA_LOCK_INFO (MariaDB 10.11): LOCK_TIME_MS 428; performance_schema: no age.
    rows = [
        ("app.job-1", 51, "root", "localhost", 428),
        (b"app.job-1", 51, "root", "localhost", 428),  # the same lock twice: listed once
        ("app.job-2", "52", None, None, None),
        ("other.job", 53, "root", "localhost", 1),
        (None, 54, "root", "localhost", 1),
    ]
    details = statements.listed_details(rows)
    assert details[2] == ("app.job-2", 52, None, None, None)
    assert len(details) == 4
    infos = statements.lock_infos(details, "app")
    assert infos == [
        statements.LockInfo("job-1", "app.job-1", 51, "root", "localhost", 0.428),
        statements.LockInfo("job-2", "app.job-2", 52, None, None, None),
    ]
    assert pickle.loads(pickle.dumps(infos[0])) == infos[0]  # noqa: S301 - our own bytes
    everything = statements.lock_infos(details, None)
    assert [info.name for info in everything] == ["app.job-1", "app.job-2", "other.job"]


def test_visible_names() -> None:
    names = ["app.a", "app.b", "app.a", "other.c", "loose"]
    assert statements.visible_names(names, "app") == ["a", "b"]
    assert statements.visible_names(names, None) == ["app.a", "app.b", "other.c", "loose"]


def test_listing_names_the_old_module_still_exports() -> None:
    from PyMySQLLock import LockInfo, listing

    assert listing.LockInfo is LockInfo is statements.LockInfo
    assert listing.METADATA_LOCK_INFO is statements.METADATA_LOCK_INFO
