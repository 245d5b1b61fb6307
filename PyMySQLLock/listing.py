"""Listing the user locks held on a server, which each server exposes differently.

* MySQL 5.7+/8.x: ``performance_schema.metadata_locks`` (the MDL instrument is on by default in
  8.0, off in 5.7).
* MariaDB: ``information_schema.METADATA_LOCK_INFO`` when the ``metadata_lock_info`` plugin is
  installed, else ``performance_schema.metadata_locks`` when the server runs with
  ``performance_schema=ON`` and the MDL instrument enabled.

Both tables show only granted locks in the forms used here, one row per name, and store at most
64 characters of a name (PyMySQLLock's names always fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .connection import Session, StatementFailed
from .errors import LockListingUnavailableError
from .server import MARIADB, ServerInfo

__all__ = [
    "METADATA_LOCK_INFO",
    "PERFORMANCE_SCHEMA",
    "DetailRow",
    "LockInfo",
    "Strategy",
    "choose",
]

#: ``(server name, holder's connection id, user, host, milliseconds held)``.
DetailRow = tuple[str, Optional[int], Any, Any, Any]


@dataclass(frozen=True)
class LockInfo:
    """A lock held on the server, as :meth:`~PyMySQLLock.Locker.list_locks` reports it.

    :param name: the name as users see it (namespace removed; hashed names as stored).
    :param server_name: the name as the server stores it.
    :param connection_id: the holder's session id (``CONNECTION_ID()``, the ``KILL`` target).
    :param user: the holder's account user, when the server shows it to this account.
    :param host: the holder's client host, when shown.
    :param held_for: seconds since the lock was granted (MariaDB only; ``None`` elsewhere).
    """

    name: str
    server_name: str
    connection_id: int | None
    user: str | None = None
    host: str | None = None
    held_for: float | None = None


class Strategy:
    """One way of listing locks: a query for names and one for holders' details.

    :param label: a short name for messages.
    :param sql: the query whose rows are ``(name,)``.
    :param details_sql: queries whose rows are ``(name, connection id, user, host, held ms)``,
        tried in order (older servers lack some columns).
    """

    def __init__(self, label: str, sql: str, details_sql: tuple[str, ...]) -> None:
        self.label = label
        self.sql = sql
        self.details_sql = details_sql

    def __repr__(self) -> str:
        return f"<listing via {self.label}>"

    def names(self, session: Session) -> list[str]:
        """:returns: the names the query lists (the caller holds the session's mutex)."""
        return [_text(row[0]) for row in session.run_all(self.sql) if row[0] is not None]

    def details(self, session: Session) -> list[tuple[str, int | None, Any, Any, Any]]:
        """:returns: one ``(server name, id, user, host, held ms)`` per held lock."""
        for number, sql in enumerate(self.details_sql, 1):
            try:
                rows = session.run_all(sql)
            except StatementFailed:
                if number == len(self.details_sql):
                    raise
                continue
            return [
                (_text(name), None if cid is None else int(cid), user, host, held)
                for name, cid, user, host, held in rows
                if name is not None
            ]
        return []  # pragma: no cover - details_sql is never empty


def _text(value: object) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


METADATA_LOCK_INFO = Strategy(
    "information_schema.METADATA_LOCK_INFO",
    # The lock name is in TABLE_SCHEMA for user locks; LOCK_MODE and LOCK_DURATION vary
    # between MariaDB releases, so only the type is filtered.
    "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.METADATA_LOCK_INFO "
    "WHERE LOCK_TYPE = 'User lock'",
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
)
PERFORMANCE_SCHEMA = Strategy(
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
_PFS_READY = (
    "SELECT @@performance_schema, (SELECT ENABLED FROM performance_schema.setup_instruments "
    "WHERE NAME = 'wait/lock/metadata/sql/mdl')"
)
_MDL_INSTRUMENT = (
    "UPDATE performance_schema.setup_instruments SET ENABLED = 'YES' "
    "WHERE NAME = 'wait/lock/metadata/sql/mdl'"
)


def _performance_schema_problem(session: Session) -> str | None:
    """:returns: why ``performance_schema`` cannot list locks, or ``None`` when it can."""
    try:
        row = session.run(_PFS_READY)
    except StatementFailed as failure:
        return f"performance_schema is not readable ({failure.message})"
    enabled, instrument = row if row else (0, None)
    if not enabled or str(enabled).upper() in ("0", "OFF"):
        return "the server runs with performance_schema=OFF"
    if str(instrument).upper() != "YES":
        return (
            "the metadata lock instrument is disabled (locks taken before enabling it are not "
            f"listed): {_MDL_INSTRUMENT}"
        )
    return None


def choose(session: Session, server: ServerInfo) -> Strategy:
    """Find the listing the server supports.

    :param session: a connection to use (the caller holds its mutex).
    :param server: the server's flavour.
    :returns: a working strategy.
    :raises LockListingUnavailableError: when there is none; the message says how to enable
        one.
    """
    problems = []
    if server.flavor == MARIADB:
        try:
            session.run_all(METADATA_LOCK_INFO.sql + " LIMIT 0")
        except StatementFailed as failure:
            problems.append(
                f"METADATA_LOCK_INFO is missing ({failure.message}); run "
                "INSTALL SONAME 'metadata_lock_info' (needs INSERT on mysql.plugin)"
            )
        else:
            return METADATA_LOCK_INFO
    problem = _performance_schema_problem(session)
    if problem is None:
        return PERFORMANCE_SCHEMA
    problems.append(problem)
    raise LockListingUnavailableError(
        f"{server.label} offers no way to list locks: " + "; ".join(problems)
    )
