"""The sessions of one :class:`~PyMySQLLock.aio.AsyncLocker`: opening, pooling, closing.

A session that holds no lock waits in the pool for the next acquire or administrative call; a
session that holds a lock belongs to its lock until released. The pool also learns the
server's facts from the first connection, and runs administrative statements on idle sessions
with the one retry rule of the blocking code (:func:`~PyMySQLLock.connection.died_in_pool`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Callable, TypeVar

from ..connection import SessionLost, StatementFailed, died_in_pool, keeps_idle
from ..connectoptions import describe_target, redact_secrets, rejected_arguments
from ..errors import LockConnectionError, LockError
from ..server import ServerInfo
from ..statements import PROBE, admin_error, server_info, wait_chunks
from ..timeouts import chunk_seconds
from ..tls import CIPHER_SQL
from .drivers import AsyncDriverAdapter
from .session import AsyncSession, Deadlines

__all__ = ["AsyncPool"]

logger = logging.getLogger("PyMySQLLock")

T = TypeVar("T")
# Connect arguments that must never appear in a message.
#: Seconds a closed connection's TLS goodbye may take before its socket is closed regardless.
_SOCKET_CLOSE_SECONDS = 1.0


class AsyncPool:
    """Idle sessions, sessions in use, and how to open more.

    :param adapter: the driver adapter.
    :param connect_kwargs: the driver-neutral ``connect()`` arguments.
    :param read_timeout: seconds any statement may take before its connection counts as lost.
    :param size: how many idle sessions to keep.
    """

    def __init__(
        self,
        adapter: AsyncDriverAdapter,
        connect_kwargs: dict[str, Any],
        read_timeout: float,
        size: int,
    ) -> None:
        self.adapter = adapter
        self.size = size
        self.read_timeout = read_timeout
        self.closed = False
        self.server: ServerInfo | None = None
        self._kwargs = connect_kwargs
        self._options = adapter.connect_options(connect_kwargs, read_timeout)
        self._idle: list[AsyncSession] = []
        self._in_use: set[AsyncSession] = set()
        self._opening: set[asyncio.Future[AsyncSession]] = set()
        #: Closed sessions whose sockets may still be open (a TLS goodbye under way).
        self._closing: set[asyncio.Future[None]] = set()
        self._max_chunk = 0.0
        self._full_chunk = 0.0
        #: The read timeouts of every session's statements, on one timer.
        self._deadlines = Deadlines()

    @property
    def sessions(self) -> int:
        """How many sessions are open (idle or in use)."""
        return len(self._idle) + len(self._in_use)

    # -- sessions -----------------------------------------------------------------------------

    async def checkout(self, fresh: bool = False) -> tuple[AsyncSession, bool]:
        """Take an idle session, or open one.

        :param fresh: open a new one even if one is idle.
        :returns: the session and whether it came from the pool.
        :raises LockError: if the pool is closed.
        :raises LockConnectionError: if the server cannot be reached.
        """
        if not fresh:
            session = self.checkout_idle()
            if session is not None:
                return session, True
        elif self.closed:
            raise LockError("this AsyncLocker is closed")
        session = await self._open()
        if self.closed:
            self._close(session)
            raise LockError("this AsyncLocker is closed")
        self._in_use.add(session)
        return session, False

    def checkout_idle(self) -> AsyncSession | None:
        """Take an idle session if there is one, without awaiting anything.

        :returns: the session, or ``None`` when none is idle (then :meth:`checkout` opens one).
        :raises LockError: if the pool is closed.
        """
        if self.closed:
            raise LockError("this AsyncLocker is closed")
        if not self._idle:
            return None
        session = self._idle.pop()
        self._in_use.add(session)
        return session

    def checkin(self, session: AsyncSession) -> None:
        """Give back a healthy session whose server session holds no lock."""
        self._in_use.discard(session)
        if keeps_idle(
            closed=self.closed,
            broken=session.broken,
            caller_used=session.caller_used,
            idle=len(self._idle),
            size=self.size,
        ):
            self._idle.append(session)
        else:
            self._close(session)

    def discard(self, session: AsyncSession) -> None:
        """Close a session that must not be reused (with every lock on it)."""
        self._in_use.discard(session)
        self._close(session)

    def _close_if_opened(self, task: asyncio.Future[AsyncSession]) -> None:
        """Close the session of a connect whose caller was cancelled while it was under way."""
        if task.cancelled():
            return
        if task.exception() is None:  # reading it also keeps asyncio from logging it
            self._close(task.result())

    def _close(self, session: AsyncSession) -> None:
        """Close ``session`` now; :meth:`close` waits until its socket is closed too."""
        session.close()
        waiting = asyncio.ensure_future(session.wait_closed(_SOCKET_CLOSE_SECONDS))
        self._closing.add(waiting)
        waiting.add_done_callback(self._closing.discard)

    async def _open(self) -> AsyncSession:
        # The connect runs in a task of its own: a caller cancelled during the handshake
        # would otherwise leave a half-open connection that nobody can close. The task
        # finishes the handshake and closes what it opened.
        task = asyncio.ensure_future(self._connect())
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._close_if_opened)
            raise

    async def _connect(self) -> AsyncSession:
        adapter = self.adapter
        try:
            raw = await adapter.connect(self._options)
        except Exception as exc:
            if isinstance(exc, (OSError, asyncio.TimeoutError)) or adapter.is_driver_error(exc):
                raise LockConnectionError(
                    f"cannot connect to the MySQL server ({self._target()}) with "
                    f"{adapter.name}: {self._redact(exc)}"
                ) from exc
            rejected = rejected_arguments(adapter.name, exc, self._kwargs)
            if rejected is None:
                raise
            raise rejected from exc
        try:
            await adapter.after_connect(raw, self._options)
            cursor = await adapter.cursor(raw)
        except BaseException as exc:
            adapter.close(raw)
            if isinstance(exc, Exception) and adapter.is_driver_error(exc):
                raise LockConnectionError(
                    f"setting up the connection failed: {self._redact(exc)}"
                ) from exc
            raise
        session = AsyncSession(adapter, raw, cursor, self.read_timeout, self._deadlines)
        if adapter.tls.must_encrypt:
            await self._check_encrypted(session)
        if self.server is None:
            try:
                self.server = await self._probe(session)
            except BaseException:
                self._close(session)
                raise
        return session

    async def _check_encrypted(self, session: AsyncSession) -> None:
        """Refuse a connection in plain text when TLS is required (drivers do not check)."""
        try:
            row = await session.run(CIPHER_SQL)
        except (SessionLost, StatementFailed) as exc:
            self._close(session)
            raise LockConnectionError(f"cannot tell whether TLS is in use: {exc}") from exc
        except BaseException:
            self._close(session)
            raise
        if not row or len(row) < 2 or not row[1]:
            self._close(session)
            raise LockConnectionError(
                f"the connection to {self._target()} is not encrypted, and ssl_mode="
                f"{self.adapter.tls.mode.name} requires TLS (the server does not offer it)"
            )

    async def _probe(self, session: AsyncSession) -> ServerInfo:
        """Learn the server's flavour and topology once, on the first connection."""
        announced = self.adapter.server_version(session.raw)
        try:
            rows = await session.run_all(PROBE)
        except StatementFailed:
            rows = []  # a proxy may refuse SHOW; the handshake still tells the flavour
        except SessionLost as lost:
            raise LockConnectionError(f"lost the connection to the server: {lost}") from (
                lost.__cause__
            )
        server = server_info(announced, rows)
        logger.debug("connected to %s (%s)", server.label, announced)
        for warning in server.warnings():
            logger.warning("%s: %s", server.label, warning)
        self._max_chunk, self._full_chunk = wait_chunks(self.read_timeout, server)
        return server

    async def ensure_server(self) -> ServerInfo:
        """Connect once if no connection was made yet; :returns: the server's facts."""
        if self.server is None:
            self.checkin((await self.checkout())[0])
        assert self.server is not None  # noqa: S101 - set by the first connection
        return self.server

    def wait_chunk(self, remaining: float) -> float:
        """How long the next server-side wait of an acquire may be.

        :param remaining: seconds left until the acquire's deadline.
        """
        if remaining >= self._max_chunk:
            return self._full_chunk
        server = self.server
        fractional = server is not None and server.fractional_timeouts
        return chunk_seconds(remaining, self._max_chunk, fractional)

    async def on_idle(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work(session)`` on an idle session and give it back.

        A pooled session that fails at once had died in the pool (server restart,
        ``wait_timeout``): it is closed and the work retried once on a new session.

        :raises LockConnectionError: if the connection fails.
        :raises LockError: for a server error (with :attr:`LockError.server_code`).
        """
        session, reused = await self.checkout()
        while True:
            started = time.monotonic()
            try:
                result = await work(session)
            except SessionLost as lost:
                self.discard(session)
                if died_in_pool(reused, started):
                    session, reused = await self.checkout(fresh=True)
                    continue
                raise LockConnectionError(f"lost the connection: {lost}") from lost.__cause__
            except StatementFailed as failure:
                self.checkin(session)
                raise admin_error(failure.code, failure.message) from failure.__cause__
            except BaseException:
                self.discard(session)
                raise
            self.checkin(session)
            return result

    async def close(self) -> None:
        """Close every session: idle ones politely, those in use at once."""
        self.closed = True
        idle, in_use = self._idle, self._in_use
        self._idle, self._in_use = [], set()
        for session in in_use:
            session.close()
        if idle:
            await asyncio.gather(*(session.quit(1.0) for session in idle))
        if self._opening:
            # Handshakes under way end by themselves (their callers or callbacks close them).
            await asyncio.gather(*self._opening, return_exceptions=True)
        # Only once every socket is closed: an application may stop its loop right after.
        await asyncio.gather(
            *(session.wait_closed(_SOCKET_CLOSE_SECONDS) for session in [*idle, *in_use]),
            *self._closing,
        )

    # -- messages -----------------------------------------------------------------------------

    def _target(self) -> str:
        return describe_target(self._kwargs)

    def _redact(self, exc: BaseException) -> str:
        """The exception's message, with any secret from the connect arguments masked."""
        return redact_secrets(str(exc), self._kwargs)
