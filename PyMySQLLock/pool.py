"""The connections of one Locker: opening, pooling, lending, and running statements on them.

A session that holds no lock waits here for the next acquire or administrative call; a session
that holds a lock belongs to its :class:`~PyMySQLLock.Lock` until released, and comes back
through :meth:`SessionPool.checkin` (healthy, holding nothing) or :meth:`SessionPool.discard`.
The pool also learns the server's facts from the first connection, and owns the one loop that
runs a statement on an idle session: retry once on a session that died while pooled
(:func:`~PyMySQLLock.connection.died_in_pool`), translate a server error through the one table
of :mod:`~PyMySQLLock.statements`. Neither :class:`~PyMySQLLock.Lock` nor
:class:`~PyMySQLLock.Locker` opens or closes a connection by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

from . import statements
from .connection import Session, SessionLost, StatementFailed, died_in_pool, keeps_idle
from .connectoptions import describe_target, redact_secrets, rejected_arguments
from .drivers import DriverAdapter
from .errors import LockConnectionError, LockError
from .log import logger
from .server import PROBE_SQL, ServerInfo
from .timeouts import chunk_seconds

__all__ = ["SessionPool"]

T = TypeVar("T")

# Driver connections a forked child inherited but could not make harmless (unknown socket):
# they are kept alive so that garbage collection never sends COM_QUIT on the parent's socket.
_FORK_ORPHANS: list[Any] = []


class SessionPool:
    """Idle sessions, sessions in use, and how to open more.

    Thread-safe: acquirers, releasers, the keepalive and ``close()`` share it.

    :param adapter: the driver adapter.
    :param args: positional ``connect()`` arguments.
    :param kwargs: keyword ``connect()`` arguments.
    :param read_timeout: seconds any answer may take before its connection counts as lost.
    :param size: how many idle sessions to keep.
    """

    def __init__(
        self,
        adapter: DriverAdapter,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        read_timeout: float,
        size: int,
    ) -> None:
        self.adapter = adapter
        self.size = size
        self.read_timeout = read_timeout
        #: The server's facts, learned from the first connection.
        self.server: ServerInfo | None = None
        #: Why check-outs are refused (closed, or the keepalive died); ``None`` while open.
        self.refusal: str | None = None
        #: Once closed, nothing goes back to the pool.
        self.closed = False
        self._args = args
        self._kwargs = kwargs
        # The longest server-side wait and its usual value, planned by _probe() with the
        # server's facts (statements.wait_chunks), which wait_chunk() makes sure of first.
        self._max_chunk = self._full_chunk = 0.0
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._idle: list[Session] = []
        self._in_use: set[Session] = set()

    # -- lending ------------------------------------------------------------------------------

    def checkout(self, fresh: bool = False) -> tuple[Session, bool]:
        """Take an idle session, or open one.

        :param fresh: open a new one even if one is idle.
        :returns: the session and whether it came from the pool.
        :raises LockError: if the pool refuses (see ``refusal``).
        :raises LockConnectionError: if the server cannot be reached.
        """
        with self._mutex:
            if self.refusal is not None:
                raise LockError(self.refusal)
            if self._idle and not fresh:
                session = self._idle.pop()
                self._in_use.add(session)
                return session, True
        session = self._connect()
        with self._mutex:
            if self.refusal is not None:
                session.close()
                raise LockError(self.refusal)
            self._in_use.add(session)
        return session, False

    def checkin(self, session: Session) -> None:
        """Give back a healthy session whose server session holds no lock."""
        with self._mutex:
            self._in_use.discard(session)
            if keeps_idle(
                closed=self.closed,
                broken=session.broken,
                caller_used=session.caller_used,
                idle=len(self._idle),
                size=self.size,
            ):
                self._idle.append(session)
                return
        session.close()

    def discard(self, session: Session) -> None:
        """Close a session that must not be reused (with every lock on it)."""
        with self._mutex:
            self._in_use.discard(session)
        session.close()

    def discard_if_in_use(self, session: Session) -> None:
        """Close ``session`` unless it already went back to the pool or was closed.

        For clean-up after an interrupt, which may land after the session was handed back.
        """
        with self._mutex:
            if session not in self._in_use:
                return
            self._in_use.discard(session)
        session.close()

    def abort(self, session: Session) -> None:
        """Cut a checked-out session that another thread may be using (see Session.abort).

        Under the pool's mutex: a session still checked out has not been closed by its user
        (who takes it out of the sessions in use first), so its descriptor is still its own.
        """
        with self._mutex:
            if session in self._in_use:
                session.abort()

    # -- running statements -------------------------------------------------------------------

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` on an idle session, under its mutex, and give it back.

        A pooled session that fails at once was already dead in the pool (server restart,
        ``wait_timeout``): it is closed and the work retried once on a new session.

        :raises LockConnectionError: if the connection fails.
        :raises LockError: for a server error (with ``server_code`` set).
        """
        session, reused = self.checkout()
        while True:
            started = time.monotonic()
            try:
                with session.mutex:
                    result = work(session)
            except SessionLost as lost:
                retry = self.replace_lost(session, reused, started)
                if retry is not None:
                    session, reused = retry
                    continue
                raise LockConnectionError(f"lost the connection: {lost}") from lost.__cause__
            except StatementFailed as failure:
                self.checkin(session)
                raise statements.admin_error(failure.code, failure.message) from failure.__cause__
            except BaseException:
                self.discard(session)
                raise
            self.checkin(session)
            return result

    def replace_lost(
        self, session: Session, reused: bool, started: float
    ) -> tuple[Session, bool] | None:
        """Close a session whose statement failed with the connection lost; maybe replace it.

        The one retry rule of the library (see :meth:`run` and ``Lock.acquire``).

        :param reused: the session came from the pool.
        :param started: when the failed statement was sent (monotonic seconds).
        :returns: a new session to retry the statement on, when the lost one had died while
            pooled (:func:`~PyMySQLLock.connection.died_in_pool`); else ``None``.
        """
        self.discard(session)
        return self.checkout(fresh=True) if died_in_pool(reused, started) else None

    def run_all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement on an idle session; :returns: its rows. See :meth:`run`."""
        return self.run(lambda session: session.run_all(sql, params))

    def kill(self, statement: str, connection_id: int) -> None:
        """Run ``statement`` (``KILL QUERY`` or ``KILL CONNECTION``) on session ``connection_id``.

        A session already gone is the goal reached (see ``statements.kill_failure``).
        """
        try:
            self.run_all(statement, (int(connection_id),))
        except LockError as exc:
            if statements.kill_failure(exc.server_code, str(exc)) is not None:
                raise

    def kill_query_soon(self, connection_id: int) -> threading.Thread:
        """Send ``KILL QUERY`` from a short-lived thread, so that a hung server delays no one.

        :returns: the thread (it ends within the read timeout; failures are only logged).
        """

        def kill() -> None:
            try:
                self.kill(statements.KILL_QUERY, connection_id)
            except Exception as exc:  # noqa: BLE001 - the caller has other means
                logger.debug("KILL QUERY %s failed: %s", connection_id, exc)

        thread = threading.Thread(target=kill, name="PyMySQLLock-cancel", daemon=True)
        thread.start()
        return thread

    def wait_chunk(self, remaining: float) -> float:
        """How long the next server-side wait of an acquire may be.

        :param remaining: seconds left until the acquire's deadline.
        :returns: see ``PyMySQLLock.timeouts.chunk_seconds``.
        """
        server = self.ensure_server()  # known after any check-out; else it plans the chunks
        if remaining >= self._max_chunk:
            return self._full_chunk  # the usual case, worked out once
        return chunk_seconds(remaining, self._max_chunk, server.fractional_timeouts)

    # -- the server ---------------------------------------------------------------------------

    def ensure_server(self) -> ServerInfo:
        """Connect once if no connection was made yet; :returns: the server's facts."""
        server = self.server
        if server is None:  # a lazy Locker that has not connected yet
            self.checkin(self.checkout()[0])
            server = self.server
            if server is None:  # pragma: no cover - _connect() always sets it
                raise LockError("the server is not known yet")
        return server

    def _connect(self) -> Session:
        try:
            raw = self.adapter.connect(self._args, self._kwargs, self.read_timeout)
        except Exception as exc:
            if isinstance(exc, OSError) or self.adapter.is_driver_error(exc):
                # "Could not connect to db" is PyMySQLLock 0.2.0's wording, which code and
                # tests written for it look for.
                raise LockConnectionError(
                    f"Could not connect to db: the MySQL server at {self.target()} with "
                    f"{self.adapter.name}: {self.redact(exc)}"
                ) from exc
            rejected = rejected_arguments(self.adapter.name, exc, self._kwargs)
            if rejected is None:
                raise
            raise rejected from exc
        session = Session(self.adapter, raw)
        if self.server is None:
            self.server = self._probe(session)
        return session

    def _probe(self, session: Session) -> ServerInfo:
        """Learn the server's flavour and topology once, on the first connection."""
        announced = self.adapter.server_version(session.raw)
        try:
            rows = session.run_all(PROBE_SQL)
        except StatementFailed:
            rows = []  # a proxy may refuse SHOW; the handshake still tells the flavour
        except SessionLost as lost:
            session.close()
            raise LockConnectionError(f"lost the connection to the server: {lost}") from (
                lost.__cause__
            )
        server = statements.server_info(announced, rows)
        logger.debug("connected to %s (%s)", server.label, announced)
        for warning in server.warnings():
            logger.warning("%s: %s", server.label, warning)
        self._max_chunk, self._full_chunk = statements.wait_chunks(self.read_timeout, server)
        return server

    # -- closing ------------------------------------------------------------------------------

    def refuse(self, reason: str, closing: bool = False) -> None:
        """Refuse every later check-out with ``reason``.

        :param closing: also stop pooling: sessions given back from now on are closed.
        """
        with self._mutex:
            if closing:
                self.closed = True
            self.refusal = reason

    def abort_in_use(self) -> None:
        """Cut every session checked out by other threads (an acquire, an admin call).

        Their users then fail at once and close them (nothing is pooled once closed).
        """
        with self._mutex:
            for session in self._in_use:
                session.abort()

    def close_idle(self) -> None:
        """Close every idle session.

        One at a time, each dropped from the pool only once closed: a call cut short leaves
        the rest (and the one it was closing) to the next call.
        """
        while True:
            with self._mutex:
                if not self._idle:
                    return
                session = self._idle[-1]
            session.close()
            with self._mutex:
                if session in self._idle:
                    self._idle.remove(session)

    def close_all_now(self) -> None:
        """Close every session without ceremony (a Locker dropped without ``close()``)."""
        for session in [*self._idle, *self._in_use]:
            session.close()

    def forget_parent(self) -> None:
        """In a forked child: make the parent's sessions harmless and start empty."""
        for session in [*self._idle, *self._in_use]:
            if not self.adapter.detach_after_fork(session.raw):
                _FORK_ORPHANS.append(session.raw)
        self._reset()

    # -- messages -----------------------------------------------------------------------------

    def target(self) -> str:
        """Where the sessions connect, for messages (never the password)."""
        return describe_target(self._kwargs)

    def redact(self, exc: BaseException) -> str:
        """The exception's message, with any secret from the connect arguments masked."""
        return redact_secrets(str(exc), self._kwargs)
