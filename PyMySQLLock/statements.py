"""Every statement PyMySQLLock sends, and what each answer means, without any I/O.

The blocking code (threads and DB-API drivers) and the asyncio code (:mod:`PyMySQLLock.aio`)
send the same statements and must draw the same conclusions from the same answers: a row of
``GET_LOCK``, an error code, a listing row. Both keep only the waiting and the sending; the
meaning lives here, once, and is unit-tested over answers recorded from MariaDB 10.11 and
MySQL 8 without a server.

An answer is the first row of a statement (a tuple, or ``None`` when the statement returned no
row) or, when the server refused the statement, its error code and message.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from .errors import (
    AcquireInterruptedError,
    DeadlockError,
    LockError,
    LockListingUnavailableError,
    PermissionDeniedError,
    UnsupportedServerError,
)
from .names import strip_namespace
from .server import MARIADB, MYSQL, PROBE_SQL, UNSUPPORTED_CAUSES, ServerInfo
from .timeouts import chunk_seconds
from .values import value

__all__ = [
    "ABANDONED",
    "ABANDONED_PERFORMANCE",
    "COMMIT",
    "CONNECTION_LOST_CODES",
    "DEADLOCK_CODES",
    "GET_LOCK",
    "HOLDER",
    "INTERRUPTED_CODES",
    "KILL_CONNECTION",
    "KILL_DENIED",
    "KILL_QUERY",
    "MDL_INSTRUMENT",
    "METADATA_LOCK_INFO",
    "NOT_STILL_HELD",
    "NO_SUCH_THREAD",
    "PERFORMANCE_READY",
    "PERFORMANCE_SCHEMA",
    "PROBE",
    "RELEASE_LOCK",
    "ROLLBACK",
    "START_TRANSACTION",
    "STILL_HELD",
    "WAIT_TIMEOUT_CODES",
    "Abandoned",
    "Acquire",
    "DetailRow",
    "Listing",
    "LockInfo",
    "Release",
    "Row",
    "abandoned_answer",
    "abandoned_query",
    "acquire_answer",
    "acquire_failure",
    "admin_error",
    "connection_lost",
    "holder_answer",
    "keeps_session",
    "kill_failure",
    "listed_details",
    "listed_names",
    "listing_candidates",
    "listing_missing",
    "lock_infos",
    "no_listing_error",
    "performance_schema_problem",
    "release_answer",
    "server_info",
    "still_held",
    "visible_names",
    "wait_chunks",
]

#: The first row of an answer, or ``None`` when the statement returned no row.
Row = Optional[Sequence[Any]]

# -- the statements -------------------------------------------------------------------------

#: Take the lock ``(name, seconds)``: 1 granted, 0 not within the wait, NULL interrupted.
GET_LOCK = "SELECT GET_LOCK(%s, %s)"
#: Let go of the lock ``(name,)``: 1 released, 0 held by another session, NULL held by nobody.
RELEASE_LOCK = "SELECT RELEASE_LOCK(%s)"
#: The keepalive's proof ``(name,)``. One statement, so that a proxy evaluates both sides on
#: the same backend session.
STILL_HELD = "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()"
#: Who holds ``(name,)``: the holder's ``CONNECTION_ID()``, NULL when free.
HOLDER = "SELECT IS_USED_LOCK(%s)"
#: End the statement running on session ``(id,)`` (a waiting ``GET_LOCK``).
KILL_QUERY = "KILL QUERY %s"
#: End session ``(id,)``, and with it every lock it holds.
KILL_CONNECTION = "KILL CONNECTION %s"
#: Asked once per Locker to tell the server's flavour and topology; see :mod:`.server`.
PROBE = PROBE_SQL
#: The bounds of ``lock.transaction()``: a transaction on the holding session, committed only
#: while that session (and so the lock) lives; see :mod:`.holding`.
START_TRANSACTION = "START TRANSACTION"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

# -- error codes: the one table -------------------------------------------------------------

#: Both deadlock codes of GET_LOCK: MySQL 3058 (ER_USER_LOCK_DEADLOCK), MariaDB 1213.
DEADLOCK_CODES = frozenset({3058, 1213})
#: A wait ended by the server: 1317 ``KILL QUERY`` (MySQL), 3024 ``max_execution_time``
#: (MySQL), 1969 ``max_statement_time`` (MariaDB).
INTERRUPTED_CODES = frozenset({1317, 3024, 1969})
#: ER_LOCK_WAIT_TIMEOUT. Both servers turn GET_LOCK's own timeout into the answer 0, but a
#: proxy or a clone of the protocol may report the expired wait as this error: the lock was
#: not granted and the session is fine, exactly as with 0.
WAIT_TIMEOUT_CODES = frozenset({1205})
#: ER_NO_SUCH_THREAD: the session to kill is already gone.
NO_SUCH_THREAD = 1094
#: ER_KILL_DENIED_ERROR: this account may not kill that session.
KILL_DENIED = 1095
#: Codes that mean the connection, and therefore its session and its lock, is gone:
#: 2006 server has gone away, 2013 lost connection during query, 2055 lost connection (with
#: system error), 1927 (MariaDB) connection was killed, 4031 (MySQL 8.0.24+) disconnected by
#: the server because of inactivity, 1053 server shutdown in progress.
CONNECTION_LOST_CODES = frozenset({2006, 2013, 2055, 1927, 4031, 1053})


def connection_lost(code: int | None) -> bool:
    """Tell whether a driver error with this code leaves the connection unusable.

    Server errors are numbered 1000-1999 and from 3000 up; anything else (no number, -1, the
    client library's own 2000-2999) says the client lost track of the session.

    :param code: the error's number, if the driver gave one.
    :returns: ``True`` when the connection must be thrown away.
    """
    return code is None or code < 1000 or 2000 <= code < 3000 or code in CONNECTION_LOST_CODES


def _first(row: Row) -> Any:
    return row[0] if row else None


# -- acquire --------------------------------------------------------------------------------


class Acquire(enum.Enum):
    """What one ``GET_LOCK`` wait ended with, when it did not end the acquire with an error."""

    #: The session holds the lock.
    GRANTED = "granted"
    #: Another session held it for the whole wait: wait again while time remains.
    BUSY = "busy"


def acquire_answer(name: str, row: Row) -> Acquire | LockError:
    """Interpret the row ``GET_LOCK`` answered.

    :param name: the lock's name, for messages.
    :param row: the answer's first row.
    :returns: :attr:`Acquire.GRANTED` for 1, :attr:`Acquire.BUSY` for 0, or the error that
        ends the acquire: NULL is MariaDB's answer to ``KILL QUERY`` or a statement time limit
        on the waiting session (the connection itself is fine).
    """
    value = _first(row)
    if value == 1:
        return Acquire.GRANTED
    if value is None:
        return AcquireInterruptedError(f"the server interrupted the wait for lock {name!r}")
    if type(value) is int and value == 0:
        return Acquire.BUSY
    # Never guess: any other answer cannot prove the lock free, and it may be held on this
    # session, so the session must go (see keeps_session), and the lock with it.
    return LockError(f"unexpected answer {value!r} to GET_LOCK of {name!r}")


def keeps_session(outcome: Acquire | LockError) -> bool:
    """Tell whether a session may serve again after :func:`acquire_answer` did not grant.

    (After :func:`acquire_failure` it always may: a server error leaves the session fine.)

    :param outcome: what :func:`acquire_answer` returned.
    :returns: ``True`` when the session certainly holds nothing: a wait that ended without the
        lock, or one the server interrupted (NULL). ``False`` for an answer GET_LOCK never
        gives, and for a grant (the session then holds the lock).
    """
    return outcome is Acquire.BUSY or isinstance(outcome, AcquireInterruptedError)


def acquire_failure(name: str, code: int | None, message: str) -> Acquire | LockError:
    """Interpret a server error answered to ``GET_LOCK`` (the connection is fine).

    :param name: the lock's name, for messages.
    :param code: the server's error number, if known.
    :param message: the driver's message.
    :returns: :attr:`Acquire.BUSY` for an expired wait reported as an error, else the error
        that ``acquire()`` raises, with :attr:`~PyMySQLLock.LockError.server_code` set.
    """
    if code in WAIT_TIMEOUT_CODES:
        return Acquire.BUSY
    detail = f"acquiring lock {name!r}: server error {code}: {message}"
    error: LockError
    if code in DEADLOCK_CODES:
        error = DeadlockError(f"deadlock {detail}")
    elif code in INTERRUPTED_CODES:
        error = AcquireInterruptedError(f"interrupted {detail}")
    elif code is not None and code in UNSUPPORTED_CAUSES:
        error = UnsupportedServerError(f"{UNSUPPORTED_CAUSES[code]} ({detail})")
    else:
        error = LockError(detail)
    error.server_code = code
    return error


def wait_chunks(read_timeout: float, server: ServerInfo) -> tuple[float, float]:
    """Plan the longest server-side wait of one ``GET_LOCK``.

    A wait must end, and its answer arrive, before the connection's read timeout fires, or a
    long wait would look like a dead server; and it may not exceed what the server honours.

    :param read_timeout: seconds a read may block on the lock's connection.
    :param server: the server's facts.
    :returns: ``(max_chunk, full_chunk)``: the bound to pass to
        :func:`~PyMySQLLock.timeouts.chunk_seconds`, and the timeout sent when at least that
        much time remains (whole seconds when at least one: an int is cheaper to escape).
    """
    max_chunk = min(max(read_timeout - 1.5, read_timeout / 2), server.max_wait_seconds)
    full = chunk_seconds(max_chunk, max_chunk, server.fractional_timeouts)
    return max_chunk, (math.floor(full) if full >= 1 else full)


# -- release and the keepalive's proof ------------------------------------------------------


class Release(enum.Enum):
    """What ``RELEASE_LOCK`` answered."""

    #: 1: the session held the lock and let go of it; it now holds nothing.
    RELEASED = "released"
    #: 0: another session holds it, so this one had lost it.
    HELD_ELSEWHERE = "held elsewhere"
    #: NULL: nobody holds it, so this session had lost it.
    NOT_HELD = "not held"

    @property
    def lost_reason(self) -> str | None:
        """Why the lock counts as lost at release, or ``None`` when it was released."""
        if self is Release.RELEASED:
            return None
        return "the session no longer held it at release"


def release_answer(row: Row) -> Release:
    """Interpret the row ``RELEASE_LOCK`` answered.

    :param row: the answer's first row.
    :returns: the outcome; only :attr:`Release.RELEASED` leaves a session fit for reuse.
    """
    value = _first(row)
    if value == 1:
        return Release.RELEASED
    if value == 0:
        return Release.HELD_ELSEWHERE
    return Release.NOT_HELD


#: Why a lock whose :data:`STILL_HELD` check failed counts as lost.
NOT_STILL_HELD = "the server reports it free or held by another session"


def still_held(row: Row) -> bool:
    """Interpret the answer to :data:`STILL_HELD`.

    :param row: the answer's first row.
    :returns: ``True`` only for 1 (the lock's holder is the asking session); 0 (another
        holder) and NULL (free) both mean lost.
    """
    return bool(_first(row) == 1)


# -- administration -------------------------------------------------------------------------


def holder_answer(row: Row) -> int | None:
    """Interpret the answer to :data:`HOLDER`.

    :param row: the answer's first row.
    :returns: the holder's connection id, or ``None`` when the lock is free.
    """
    value = _first(row)
    return None if value is None else int(value)


def admin_error(code: int | None, message: str) -> LockError:
    """The error an administrative statement (listing, ``KILL``, ``IS_USED_LOCK``) raises.

    :param code: the server's error number.
    :param message: the driver's message.
    """
    error: LockError
    if code == KILL_DENIED:
        error = PermissionDeniedError(
            f"{message} (killing another account's session needs "
            "CONNECTION_ADMIN or SUPER on MySQL, CONNECTION ADMIN or SUPER on MariaDB)"
        )
    else:
        error = LockError(f"server error {code}: {message}")
    error.server_code = code
    return error


def kill_failure(code: int | None, message: str) -> LockError | None:
    """Interpret a server error answered to ``KILL``.

    :returns: ``None`` when the session was already gone (the goal is reached), else the
        error to raise.
    """
    return None if code == NO_SUCH_THREAD else admin_error(code, message)


# -- waits of closed sessions ---------------------------------------------------------------

#: What a ``GET_LOCK`` looks like in the process list's ``INFO``: the statement as sent.
_GET_LOCK_INFO = GET_LOCK.split("%s", 1)[0]
#: See :func:`abandoned_query`; the ids are one comma-separated parameter.
ABANDONED = (
    "SELECT ID, LOCATE(%s, INFO) = 1 FROM information_schema.PROCESSLIST "
    "WHERE FIND_IN_SET(ID, %s) AND USER = SUBSTRING_INDEX(USER(), '@', 1)"
)
#: The same question where ``information_schema.PROCESSLIST`` is deprecated: MySQL 8.0.35
#: warns at each use (aiomysql turns that into a Python warning). Its Performance Schema twin
#: has the same columns, and is empty when ``performance_schema`` is off: nothing is killed.
ABANDONED_PERFORMANCE = ABANDONED.replace(
    "information_schema.PROCESSLIST", "performance_schema.processlist"
)
#: The first MySQL release whose ``information_schema.PROCESSLIST`` warns.
_PROCESSLIST_DEPRECATED = (8, 0, 35)


def abandoned_query(ids: Sequence[int], server: ServerInfo | None) -> tuple[str, tuple[Any, ...]]:
    """Ask which of the sessions ``ids`` are still open, and whether each runs a ``GET_LOCK``.

    The answer has one ``(ID, running)`` row per open session. Only sessions of this account
    are listed, and only one running that statement will be killed: after a server restart,
    the id of a closed session may name somebody else's.

    :param server: the server's facts, which choose the process list to read.
    :returns: the statement and its parameters.
    """
    deprecated = (
        server is not None and server.flavor == MYSQL and server.version >= _PROCESSLIST_DEPRECATED
    )
    sql = ABANDONED_PERFORMANCE if deprecated else ABANDONED
    return sql, (_GET_LOCK_INFO, ",".join(str(int(each)) for each in ids))


@value
class Abandoned:
    """What the process list says of closed sessions whose ``GET_LOCK`` may still run.

    :param kill: the ids of those still running a ``GET_LOCK``: ``KILL CONNECTION`` ends the
        wait, and frees the lock if the server granted it meanwhile.
    :param open: the ids of those still open but not (or not yet, or no longer) in a
        ``GET_LOCK``: the statement may still be on its way, so look again soon.
    """

    kill: tuple[int, ...]
    open: tuple[int, ...]


def abandoned_answer(rows: Iterable[Sequence[Any]]) -> Abandoned:
    """Read the rows of :func:`abandoned_query`; an id without a row has ended: nothing to do."""
    kill: list[int] = []
    still_open: list[int] = []
    for connection_id, running in rows:
        (kill if running else still_open).append(int(connection_id))
    return Abandoned(tuple(kill), tuple(still_open))


# -- the server -----------------------------------------------------------------------------


def server_info(announced: str, rows: Iterable[Sequence[Any]]) -> ServerInfo:
    """Recognise the server from its handshake and its answer to :data:`PROBE`.

    :param announced: the version string of the handshake.
    :param rows: the ``(Variable_name, Value)`` rows, or none when the probe was refused.
    """
    variables = {str(name).lower(): str(value) for name, value in rows}
    return ServerInfo.from_version_string(announced, variables)


# -- listing --------------------------------------------------------------------------------

#: ``(server name, holder's connection id, user, host, milliseconds held)``.
DetailRow = tuple[str, Optional[int], Any, Any, Any]


@value
class LockInfo:
    """A lock held on the server, as :meth:`~PyMySQLLock.Locker.list_locks` reports it.

    :param name: the name as users see it (namespace removed; hashed names as stored).
    :param server_name: the name as the server stores it.
    :param connection_id: the holder's session id (``CONNECTION_ID()``, the ``KILL`` target).
    :param user: the holder's account user, when the server shows it to this account.
    :param host: the holder's client host, when shown.
    :param held_for: seconds since the lock was granted (MariaDB only; ``None`` elsewhere).

    .. versionadded:: 1.0
    """

    name: str
    server_name: str
    connection_id: int | None
    user: str | None = None
    host: str | None = None
    held_for: float | None = None


@value
class Listing:
    """One way of listing locks: a query for names and queries for holders' details.

    :param label: a short name for messages.
    :param names_sql: the query whose rows are ``(name,)``.
    :param details_sql: queries whose rows are ``(name, connection id, user, host, held ms)``,
        tried in order (older servers lack some columns).
    :param present_sql: a query that fails when this listing does not exist, or ``None`` when
        :data:`PERFORMANCE_READY` decides instead.
    """

    label: str
    names_sql: str
    details_sql: tuple[str, ...]
    present_sql: str | None = None


_MLI_NAMES = (
    # The lock name is in TABLE_SCHEMA for user locks; LOCK_MODE and LOCK_DURATION vary
    # between MariaDB releases, so only the type is filtered.
    "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.METADATA_LOCK_INFO "
    "WHERE LOCK_TYPE = 'User lock'"
)
METADATA_LOCK_INFO = Listing(
    "information_schema.METADATA_LOCK_INFO",
    _MLI_NAMES,
    (
        # PROCESSLIST shows other accounts' sessions only with the PROCESS privilege, hence
        # the outer join; LOCK_TIME_MS is missing before MariaDB 10.11.
        (
            "SELECT m.TABLE_SCHEMA, m.THREAD_ID, p.USER, p.HOST, m.LOCK_TIME_MS "
            "FROM information_schema.METADATA_LOCK_INFO m "
            "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID "
            "WHERE m.LOCK_TYPE = 'User lock'"
        ),
        (
            "SELECT m.TABLE_SCHEMA, m.THREAD_ID, p.USER, p.HOST, NULL "
            "FROM information_schema.METADATA_LOCK_INFO m "
            "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID "
            "WHERE m.LOCK_TYPE = 'User lock'"
        ),
    ),
    present_sql=_MLI_NAMES + " LIMIT 0",
)
PERFORMANCE_SCHEMA = Listing(
    "performance_schema.metadata_locks",
    "SELECT DISTINCT OBJECT_NAME FROM performance_schema.metadata_locks "
    "WHERE OBJECT_TYPE = 'USER LEVEL LOCK' AND LOCK_STATUS = 'GRANTED'",
    (
        # OWNER_THREAD_ID is the performance_schema thread id, not the connection id.
        (
            "SELECT ml.OBJECT_NAME, t.PROCESSLIST_ID, t.PROCESSLIST_USER, t.PROCESSLIST_HOST, NULL "
            "FROM performance_schema.metadata_locks ml "
            "JOIN performance_schema.threads t ON t.THREAD_ID = ml.OWNER_THREAD_ID "
            "WHERE ml.OBJECT_TYPE = 'USER LEVEL LOCK' AND ml.LOCK_STATUS = 'GRANTED'"
        ),
    ),
)
#: Whether ``performance_schema`` can list locks: ``(@@performance_schema, instrument on)``.
PERFORMANCE_READY = (
    "SELECT @@performance_schema, (SELECT ENABLED FROM performance_schema.setup_instruments "
    "WHERE NAME = 'wait/lock/metadata/sql/mdl')"
)
#: What an administrator runs to enable the instrument (shown in messages, never sent).
MDL_INSTRUMENT = (
    "UPDATE performance_schema.setup_instruments SET ENABLED = 'YES' "
    "WHERE NAME = 'wait/lock/metadata/sql/mdl'"
)


def listing_candidates(server: ServerInfo) -> tuple[Listing, ...]:
    """:returns: the listings to try on ``server``, best first."""
    if server.flavor == MARIADB:
        return (METADATA_LOCK_INFO, PERFORMANCE_SCHEMA)
    return (PERFORMANCE_SCHEMA,)


def listing_missing(listing: Listing, message: str) -> str:
    """Why ``listing`` is unusable, when probing it failed with the error ``message``."""
    if listing is METADATA_LOCK_INFO:
        return (
            f"METADATA_LOCK_INFO is missing ({message}); run "
            "INSTALL SONAME 'metadata_lock_info' (needs INSERT on mysql.plugin)"
        )
    return f"performance_schema is not readable ({message})"


def performance_schema_problem(row: Row) -> str | None:
    """Interpret the answer to :data:`PERFORMANCE_READY`.

    :returns: why ``performance_schema`` cannot list locks, or ``None`` when it can.
    """
    enabled, instrument = (row[0], row[1]) if row else (0, None)
    if not enabled or str(enabled).upper() in ("0", "OFF"):
        return "the server runs with performance_schema=OFF"
    if str(instrument).upper() != "YES":
        return (
            "the metadata lock instrument is disabled (locks taken before enabling it are not "
            f"listed): {MDL_INSTRUMENT}"
        )
    return None


def no_listing_error(server: ServerInfo, problems: Sequence[str]) -> LockListingUnavailableError:
    """The error raised when no listing works; ``problems`` say how to enable one."""
    return LockListingUnavailableError(
        f"{server.label} offers no way to list locks: " + "; ".join(problems)
    )


def _text(value: object) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def listed_names(rows: Iterable[Sequence[Any]]) -> list[str]:
    """:returns: the server names in the rows of a :attr:`Listing.names_sql`."""
    return [_text(row[0]) for row in rows if row[0] is not None]


def listed_details(rows: Iterable[Sequence[Any]]) -> list[DetailRow]:
    """:returns: the rows of a :attr:`Listing.details_sql`, names as text and ids as int."""
    return [
        (_text(name), None if cid is None else int(cid), user, host, held)
        for name, cid, user, host, held in rows
        if name is not None
    ]


def visible_names(names: Iterable[str], namespace: str | None) -> list[str]:
    """The names :meth:`~PyMySQLLock.Locker.get_all_locks` returns, each once.

    :param names: server names, as listed.
    :param namespace: the Locker's namespace; other namespaces' locks are left out.
    """
    shown = (strip_namespace(name, namespace) for name in names)
    return list(dict.fromkeys(name for name in shown if name is not None))


def lock_infos(rows: Iterable[DetailRow], namespace: str | None) -> list[LockInfo]:
    """The records :meth:`~PyMySQLLock.Locker.list_locks` returns, one per lock.

    :param rows: detail rows from :func:`listed_details`.
    :param namespace: the Locker's namespace; other namespaces' locks are left out.
    """
    found: dict[str, LockInfo] = {}
    for stored, connection_id, user, host, held_ms in rows:
        shown = strip_namespace(stored, namespace)
        if shown is not None and stored not in found:
            found[stored] = LockInfo(
                shown,
                stored,
                connection_id,
                None if user is None else str(user),
                None if host is None else str(host),
                None if held_ms is None else float(held_ms) / 1000,
            )
    return list(found.values())
