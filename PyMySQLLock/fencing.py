"""Fenced locks: a token taken on the holding session right after ``GET_LOCK`` granted it.

``locker.lock(name, fencing=True)`` makes a :class:`FencedLock`. Its ``acquire()`` waits as any
lock does, then, before returning, increments the name's counter on the session that now holds
the lock (see :mod:`PyMySQLLock.fencing_sql`); :attr:`FencedLock.token` is the new value.
Because only a holder increments, and only while its session holds the lock, tokens grow
strictly in the order the lock was held: a holder that was paused past its loss can never take
a token after its successor did, as it could on any other connection.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from .connection import Session, SessionLost, StatementFailed
from .errors import AcquireCancelledError, LockConnectionError
from .fencing_sql import (
    ENGINE_QUERY,
    SERVER_CHECK,
    FenceStatements,
    check_engine,
    check_server,
    is_missing_table,
    statement_error,
    statements_for,
    token_from,
    validate_table,
)
from .lock import Lock, LockHost
from .log import logger

if TYPE_CHECKING:
    from .server import ServerInfo

__all__ = ["FenceTable", "FencedLock", "prepare_table"]


class FenceTable:
    """A Locker's counter table: its name, statements, and whether it is known to be usable.

    :param table: ``"table"`` or ``"database.table"``.
    :raises InvalidArgumentError: for a name that is not one or two plain identifiers.
    """

    def __init__(self, table: str) -> None:
        validate_table(table)
        self.name = table
        self._statements: FenceStatements | None = None
        #: Set once the server was checked and the table found or created; cleared when the
        #: table disappears, so that the next token creates it again.
        self.ready = False
        self._warned = threading.Event()

    def statements(self, server: ServerInfo) -> FenceStatements:
        """:returns: the statements for this server's flavour (built once)."""
        statements = self._statements
        if statements is None:
            statements = self._statements = statements_for(self.name, server)
        return statements

    def warn_once(self, warnings: list[str]) -> None:
        """Log the server's fencing warnings once per Locker."""
        if warnings and not self._warned.is_set():
            self._warned.set()
            for warning in warnings:
                logger.warning("fencing: %s", warning)


def prepare_table(fence: FenceTable, server: ServerInfo, session: Session) -> None:
    """Check the server and create the counter table if it is missing.

    Called with the session's mutex held, once per Locker (and again if the table vanished).

    :raises UnsupportedServerError: on a server where tokens could be wrong.
    :raises InvalidArgumentError: for a table of another engine, or no database to put it in.
    :raises PermissionDeniedError: when the account may not create it.
    :raises StatementFailed: for another server error (the caller translates it).
    """
    statements = fence.statements(server)
    try:
        rows = session.run_all(SERVER_CHECK)
    except StatementFailed:
        rows = []  # a proxy may refuse SHOW; a write to a read-only server still fails below
    fence.warn_once(check_server(server, {str(name): str(value) for name, value in rows}))
    found = session.run(ENGINE_QUERY, (statements.database, statements.table))
    if not check_engine(None if found is None else found[0], statements):
        try:
            session.run_all(statements.create)
        except StatementFailed as failure:
            raise statement_error(failure.code, failure.message, statements) from failure
        logger.info("fencing: created the counter table %s", statements.shown)
    fence.ready = True


def _take_token(fence: FenceTable, server: ServerInfo, session: Session, server_name: str) -> int:
    """Increment the counter of ``server_name`` on the session that holds it.

    :raises SessionLost: when the connection fails (the caller discards it).
    """
    statements = fence.statements(server)
    with session.mutex:
        for attempt in (1, 2):
            try:
                if not fence.ready:
                    prepare_table(fence, server, session)
                affected, insert_id = session.run_write(statements.increment, (server_name,))
            except StatementFailed as failure:
                if attempt == 1 and is_missing_table(failure.code):
                    fence.ready = False  # dropped since we last looked
                    continue
                raise statement_error(failure.code, failure.message, statements) from (
                    failure.__cause__
                )
            return token_from(affected, insert_id, statements)
    raise AssertionError("unreachable")  # pragma: no cover


class FencedHost(LockHost, Protocol):
    """What a :class:`FencedLock` needs from its Locker: a lock's needs, and the table."""

    _fence: FenceTable


class FencedLock(Lock):
    """A :class:`~PyMySQLLock.Lock` that takes a fencing token each time it is acquired.

    Made by ``locker.lock(name, fencing=True)``; takes the same arguments as
    :class:`~PyMySQLLock.Lock`.
    """

    _locker: FencedHost
    _token: int | None = None

    @property
    def token(self) -> int | None:
        """The fencing token of the latest acquire: larger than every earlier holder's.

        ``None`` before the first successful acquire. It stays readable after release (for
        logs); only a write that the protected resource checks against it is protected.
        """
        return self._token

    def _wait(self, seconds: float) -> Session | None:
        """Wait for the lock, then take a token on its session before anyone sees it held.

        When the token cannot be taken the lock is released (or its session closed) before
        the error is raised: an acquire never returns a lock without its token.
        """
        pool = self._pool
        self._token = None
        server = pool.ensure_server()
        # A Galera node is refused before anything is sent.
        check_server(server, {})
        session = super()._wait(seconds)
        if session is None:
            return None
        try:
            self._token = _take_token(self._locker._fence, server, session, self._server_name)
        except SessionLost as lost:
            pool.discard(session)
            raise LockConnectionError(
                f"lost the connection while taking the fencing token of lock {self._name!r}: {lost}"
            ) from lost.__cause__
        except BaseException as exc:
            self._give_back(session)
            if self._cancel_requested and not isinstance(exc, AcquireCancelledError):
                raise AcquireCancelledError(
                    f"acquire of lock {self._name!r} was cancelled"
                ) from exc
            raise
        return session

    def _give_back(self, session: Session) -> None:
        """Release a lock whose token could not be taken, before the acquire raises.

        ``RELEASE_LOCK`` frees it before the error reaches the caller, so that a retry or
        another process finds it free at once; closing the connection would free it only when
        the server has processed the disconnect. A session that cannot confirm the release is
        closed instead.
        """
        try:
            # A failure to release is not reported: the acquire's own error is the one to.
            released = self._release_grant(session)
        except BaseException:
            self._pool.discard(session)
            raise
        if released:
            self._pool.checkin(session)
        else:
            self._pool.discard(session)
