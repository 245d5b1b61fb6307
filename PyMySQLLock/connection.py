"""One server session: a driver connection that holds at most one lock at a time.

Every statement on a connection goes through :meth:`Session.run` under the session's mutex,
because DB-API connections are not thread-safe and the keepalive thread shares them with the
threads that acquire and release. A session that saw a connection-level error is marked
broken and is never used again.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from .drivers import DriverAdapter

__all__ = ["DEAD_ON_ARRIVAL_SECONDS", "Session", "SessionLost", "StatementFailed", "died_in_pool"]

#: A pooled connection that fails faster than this was already dead when taken from the pool.
DEAD_ON_ARRIVAL_SECONDS = 1.0


def died_in_pool(reused: bool, started: float) -> bool:
    """Tell whether a failed statement met a connection that had died while idle in the pool.

    Such a connection (server restart, ``wait_timeout``) held nothing, so the work may be
    retried once on a new connection; a slower failure, such as a read timeout, means the
    server itself is not answering, and a retry would only double the wait.

    :param reused: the connection came from the pool.
    :param started: when the statement was sent (monotonic seconds).
    """
    return reused and time.monotonic() - started < DEAD_ON_ARRIVAL_SECONDS


def keeps_idle(*, closed: bool, broken: bool, caller_used: bool, idle: int, size: int) -> bool:
    """Tell whether a pool keeps a session given back to it, for the next acquire.

    Only an open pool with room keeps one, and only a sound session that ran nothing but the
    library's statements: a ``cursor()`` block may have left session state behind.

    :param closed: the pool is closed.
    :param broken: the session's connection failed.
    :param caller_used: the caller's own statements ran on the session.
    :param idle: sessions the pool keeps now.
    :param size: sessions the pool may keep.
    """
    return not closed and not broken and not caller_used and idle < size


class SessionLost(Exception):
    """Internal: the connection broke; its server session (and any lock) is gone or unusable."""


class StatementFailed(Exception):
    """Internal: the server answered a statement with an error; the connection is fine.

    :param code: the server's error number, if the driver gave one.
    :param message: the driver's message.
    """

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class Session:
    """A driver connection plus what PyMySQLLock knows about it.

    :param adapter: the driver adapter that opened ``raw``.
    :param raw: the driver's connection.
    """

    __slots__ = (
        "_cursor",
        "_split",
        "adapter",
        "broken",
        "caller_thread",
        "caller_used",
        "connection_id",
        "mutex",
        "raw",
    )

    def __init__(self, adapter: DriverAdapter, raw: Any) -> None:
        self.adapter = adapter
        self.raw = raw
        self._cursor = adapter.cursor(raw)
        self.connection_id = adapter.connection_id(raw)
        # Read once here, not at every keepalive check: an adapter settles its fast paths
        # while it opens a connection (see DriverAdapter.fast_paths), before a session is made.
        self._split = adapter.supports_split_query and adapter.fast_paths
        #: Serialises every use of the connection (acquirer, releaser, keepalive).
        self.mutex = threading.Lock()
        self.broken = False
        #: The caller ran statements of its own here (``Lock.cursor()``): whatever state they
        #: left (variables, a transaction, temporary tables, other locks) must not reach the
        #: next lock, so the connection is closed instead of pooled.
        self.caller_used = False
        #: The thread inside a ``Lock.cursor()`` block on this session, to refuse nesting.
        self.caller_thread: int | None = None

    def __repr__(self) -> str:
        state = "broken" if self.broken else "open"
        return f"<Session id={self.connection_id} {state}>"

    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run one statement and return its first row. The caller holds :attr:`mutex`.

        :raises SessionLost: on any connection-level error (the session is then broken).
        :raises StatementFailed: when the server rejects the statement.
        """
        return self._call(self.adapter.query, sql, params)  # type: ignore[no-any-return]

    def run_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return all rows; see :meth:`run`."""
        return self._call(self.adapter.query_all, sql, params)  # type: ignore[no-any-return]

    def run_write(self, sql: str, params: Sequence[Any] = ()) -> tuple[int | None, int | None]:
        """Run one statement that changes rows; see :meth:`run`.

        :returns: the affected-row count and the insert id the server reported.
        """
        return self._call(self.adapter.execute_write, sql, params)  # type: ignore[no-any-return]

    def send(self, sql: str, params: Sequence[Any] = ()) -> bool:
        """Send one statement without reading its answer, if the driver can; see :meth:`run`.

        The caller holds :attr:`mutex` until :meth:`receive` (or :meth:`close`).

        :returns: ``False`` (and nothing sent) when the driver cannot split a statement.
        """
        if not self._split:
            return False
        return self._call(  # type: ignore[no-any-return]
            functools.partial(self.adapter.send_query, self.raw), sql, params
        )

    def receive(self) -> tuple[Any, ...] | None:
        """Read the answer to :meth:`send`: its first row. Raises as :meth:`run` does."""
        return self._call(  # type: ignore[no-any-return]
            lambda _cursor, _sql, _params: self.adapter.read_first_row(self.raw), "", ()
        )

    def fileno(self) -> int | None:
        """:returns: the connection's socket descriptor, when the driver tells."""
        return self.adapter.fileno(self.raw)

    def _call(self, method: Any, sql: str, params: Sequence[Any]) -> Any:
        if self.broken:
            raise SessionLost("the connection was already broken")
        try:
            return method(self._cursor, sql, params)
        except BaseException as exc:
            if (
                isinstance(exc, Exception)
                and self.adapter.is_driver_error(exc)
                and not self.adapter.is_connection_lost(exc)
            ):
                raise StatementFailed(self.adapter.error_code(exc), str(exc)) from exc
            # Anything else, a KeyboardInterrupt included, interrupted the protocol half-way:
            # the connection can never be trusted again.
            self.broken = True
            if isinstance(exc, Exception):
                raise SessionLost(str(exc)) from exc
            raise

    def abort(self) -> bool:
        """Cut the connection under whichever thread is using it, from any thread.

        The socket is shut down, not closed: a thread blocked reading it gets an end of file
        at once and fails, and the descriptor stays valid (and ours) until :meth:`close`, so
        it can never be confused with a socket opened meanwhile. The server sees the
        connection end and frees the session's lock, once it is listening.

        :returns: whether it was cut (``False``: the driver does not tell its socket).
        """
        self.broken = True
        try:
            fd = self.fileno()
            if fd is None or fd < 0:
                return False
            import socket  # only here: a process that never forks needs no socket module

            with socket.socket(fileno=os.dup(fd)) as duplicate:
                duplicate.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            return False
        return True

    def close(self) -> None:
        """Close the connection; the server then ends the session and frees its lock."""
        self.broken = True
        self.adapter.close(self.raw)
