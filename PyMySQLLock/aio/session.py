"""One server session on an asyncio driver: a connection that holds at most one lock at a time.

Every statement goes through :meth:`AsyncSession.run_all`, which bounds it with the read
timeout and sorts what went wrong into the two outcomes the rest of the package knows
(:class:`~PyMySQLLock.connection.SessionLost`, :class:`~PyMySQLLock.connection.StatementFailed`).

Whatever interrupts a statement half-way (a cancelled task, a timeout, a lost connection) closes
the connection on the spot, without awaiting anything: the protocol may be out of step, and a
closed socket is the one thing that makes the server end the session and free its lock
whatever it was doing. Such a session is never used again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from ..connection import SessionLost, StatementFailed
from .drivers import AsyncDriverAdapter

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout

__all__ = ["AsyncSession"]


def _socket_transport(transport: Any) -> Any:
    """The transport that owns the socket: under TLS, the one below asyncio's TLS layer.

    Only that one can still be aborted once the TLS transport was closed twice (the second
    ``close()`` detaches the TLS transport from its layer, so its ``abort()`` does nothing).
    """
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    return transport if inner is None else inner


class AsyncSession:
    """A driver connection plus what PyMySQLLock knows about it.

    :param adapter: the adapter that opened ``raw``.
    :param raw: the driver's connection.
    :param cursor: a cursor of ``raw`` (from :meth:`~.AsyncDriverAdapter.cursor`).
    :param read_timeout: seconds any statement may take before the connection counts as lost.
    """

    __slots__ = (
        "_cursor",
        "_socket_closed",
        "_transport",
        "adapter",
        "broken",
        "connection_id",
        "mutex",
        "raw",
        "read_timeout",
    )

    def __init__(
        self, adapter: AsyncDriverAdapter, raw: Any, cursor: Any, read_timeout: float
    ) -> None:
        self.adapter = adapter
        self.raw = raw
        self.read_timeout = read_timeout
        self._cursor = cursor
        self.connection_id = adapter.connection_id(raw)
        #: Serialises the statements of the acquirer, the releaser and the keepalive.
        self.mutex = asyncio.Lock()
        self.broken = False
        transport, self._socket_closed = adapter.socket_watch(raw)
        self._transport = _socket_transport(transport)

    def __repr__(self) -> str:
        state = "broken" if self.broken else "open"
        return f"<AsyncSession id={self.connection_id} {state}>"

    async def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run one statement and return its first row; see :meth:`run_all`."""
        rows = await self.run_all(sql, params)
        return rows[0] if rows else None

    async def run_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return all rows.

        :raises SessionLost: on any connection-level error or when the server does not answer
            within the read timeout (the connection is then closed).
        :raises StatementFailed: when the server rejects the statement (the connection is fine).
        :raises asyncio.CancelledError: when the task is cancelled (the connection is closed).
        """
        return await self._call(self.adapter.query, sql, params)  # type: ignore[no-any-return]

    async def run_write(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[int | None, int | None]:
        """Run one statement that changes rows; raises as :meth:`run_all` does.

        :returns: the affected-row count and the insert id the server reported.
        """
        return await self._call(  # type: ignore[no-any-return]
            self.adapter.execute_write, sql, params
        )

    async def _call(self, method: Any, sql: str, params: Sequence[Any]) -> Any:
        if self.broken:
            raise SessionLost("the connection was already broken")
        try:
            if sys.version_info >= (3, 11):
                async with _timeout(self.read_timeout):
                    return await method(self._cursor, sql, params)
            return await asyncio.wait_for(  # pragma: no cover - Python 3.9 and 3.10
                method(self._cursor, sql, params), self.read_timeout
            )
        except BaseException as exc:
            adapter = self.adapter
            if (
                isinstance(exc, Exception)
                and adapter.is_driver_error(exc)
                and not adapter.is_connection_lost(exc)
            ):
                raise StatementFailed(adapter.error_code(exc), str(exc)) from exc
            # Anything else, cancellation included, interrupted the protocol half-way.
            self.close()
            if isinstance(exc, asyncio.TimeoutError):
                raise SessionLost(
                    f"the server did not answer within {self.read_timeout:g} s"
                ) from exc
            if isinstance(exc, Exception):
                raise SessionLost(str(exc) or type(exc).__name__) from exc
            raise

    def close(self) -> None:
        """Close the connection now (never waits); the server ends the session and its lock."""
        self.broken = True
        self.adapter.close(self.raw)

    async def quit(self, seconds: float) -> None:
        """Close politely, waiting at most ``seconds``; closes at once if that fails."""
        if self.broken:
            return
        self.broken = True
        try:
            if sys.version_info >= (3, 11):
                async with _timeout(seconds):
                    await self.adapter.quit(self.raw)
            else:  # pragma: no cover - Python 3.9 and 3.10
                await asyncio.wait_for(self.adapter.quit(self.raw), seconds)
        except Exception:  # noqa: BLE001, S110 - the connection is being dropped either way
            pass
        finally:
            self.adapter.close(self.raw)

    async def wait_closed(self, seconds: float) -> None:
        """After :meth:`close` or :meth:`quit`: wait until the socket itself is closed.

        A TLS connection says goodbye to the server after ``close()`` returned; an application
        whose loop ends before that would leave the socket open. After ``seconds`` the
        socket's transport is aborted, which closes the socket in the loop's next step.
        """
        try:
            await asyncio.wait_for(self._socket_closed(), seconds)
        except asyncio.TimeoutError:
            self._transport.abort()
            await asyncio.sleep(0)
        except Exception:  # noqa: BLE001, S110 - an error closed it: closed all the same
            pass
