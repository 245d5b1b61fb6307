"""Listing the user locks held on a server, which each server exposes differently.

* MySQL 5.7+/8.x: ``performance_schema.metadata_locks`` (the MDL instrument is on by default in
  8.0, off in 5.7).
* MariaDB: ``information_schema.METADATA_LOCK_INFO`` when the ``metadata_lock_info`` plugin is
  installed, else ``performance_schema.metadata_locks`` when the server runs with
  ``performance_schema=ON`` and the MDL instrument enabled.

Both tables show only granted locks in the forms used here, one row per name, and store at most
64 characters of a name (PyMySQLLock's names always fit). The queries and the meaning of their
rows are in :mod:`.statements`; this module runs them on a blocking session.
"""

from __future__ import annotations

from .connection import Session, StatementFailed
from .server import ServerInfo
from .statements import (
    METADATA_LOCK_INFO,
    PERFORMANCE_READY,
    PERFORMANCE_SCHEMA,
    DetailRow,
    Listing,
    LockInfo,
    listed_details,
    listed_names,
    listing_candidates,
    listing_missing,
    no_listing_error,
    performance_schema_problem,
)

__all__ = [
    "METADATA_LOCK_INFO",
    "PERFORMANCE_SCHEMA",
    "DetailRow",
    "LockInfo",
    "Strategy",
    "choose",
]

#: One way of listing locks (the queries are a :class:`~PyMySQLLock.statements.Listing`).
Strategy = Listing


def names(strategy: Listing, session: Session) -> list[str]:
    """:returns: the server names ``strategy`` lists (the caller holds the session's mutex)."""
    return listed_names(session.run_all(strategy.names_sql))


def details(strategy: Listing, session: Session) -> list[DetailRow]:
    """:returns: one ``(server name, id, user, host, held ms)`` per held lock."""
    for number, sql in enumerate(strategy.details_sql, 1):
        try:
            rows = session.run_all(sql)
        except StatementFailed:
            if number == len(strategy.details_sql):
                raise
            continue
        return listed_details(rows)
    return []  # pragma: no cover - details_sql is never empty


def choose(session: Session, server: ServerInfo) -> Listing:
    """Find the listing the server supports.

    :param session: a connection to use (the caller holds its mutex).
    :param server: the server's flavour.
    :returns: a working listing.
    :raises LockListingUnavailableError: when there is none; the message says how to enable
        one.
    """
    problems = []
    for candidate in listing_candidates(server):
        try:
            if candidate.present_sql is not None:
                session.run_all(candidate.present_sql)
                return candidate
            problem = performance_schema_problem(session.run(PERFORMANCE_READY))
        except StatementFailed as failure:
            problems.append(listing_missing(candidate, failure.message))
            continue
        if problem is None:
            return candidate
        problems.append(problem)
    raise no_listing_error(server, problems)
