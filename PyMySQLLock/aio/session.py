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
import math
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from ..connection import SessionLost, StatementFailed
from .drivers import AsyncDriverAdapter
from .looptimer import LoopTimer

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout

__all__ = ["AsyncSession", "Deadlines"]


def _socket_transport(transport: Any) -> Any:
    """The transport that owns the socket: under TLS, the one below asyncio's TLS layer.

    Only that one can still be aborted once the TLS transport was closed twice (the second
    ``close()`` detaches the TLS transport from its layer, so its ``abort()`` does nothing).
    """
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    return transport if inner is None else inner


class Deadlines:
    """The read timeouts of the statements under way on the sessions of one pool: one timer.

    ``asyncio.timeout()`` around each statement would arm a timer and cancel it again for every
    statement (a timer object, and a heap entry in the loop that lingers until its time). Here
    a statement only notes its deadline; the one timer is armed for the earliest deadline
    known when it is armed, and when it fires it ends the statements past theirs and arms
    itself for the next one still under way. A statement is then never ended early, nor later
    than the loop runs the timer; and a server that answers keeps the timer firing about once
    per read timeout whatever the number of statements.
    """

    __slots__ = ("_pending", "_timer")

    def __init__(self) -> None:
        self._pending: dict[AsyncSession, float] = {}
        self._timer = LoopTimer(self._fire)

    def add(self, session: AsyncSession, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Note that ``session`` runs a statement that must be answered by ``deadline``."""
        self._pending[session] = deadline
        self._timer.arm_by(loop, deadline)

    def discard(self, session: AsyncSession) -> None:
        """The statement of ``session`` ended (however)."""
        self._pending.pop(session, None)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        soonest = math.inf
        for session, deadline in list(self._pending.items()):
            if deadline <= now:
                del self._pending[session]
                session._expire()
            elif deadline < soonest:
                soonest = deadline
        if soonest < math.inf:
            self._timer.arm_by(loop, soonest)


class AsyncSession:
    """A driver connection plus what PyMySQLLock knows about it.

    :param adapter: the adapter that opened ``raw``.
    :param raw: the driver's connection.
    :param cursor: a cursor of ``raw`` (from :meth:`~.AsyncDriverAdapter.cursor`).
    :param read_timeout: seconds any statement may take before the connection counts as lost.
    :param deadlines: the timer of its pool that enforces that read timeout.
    """

    __slots__ = (
        "_cancelling",
        "_cursor",
        "_deadlines",
        "_expired",
        "_first",
        "_loop",
        "_socket_closed",
        "_task",
        "_transport",
        "adapter",
        "broken",
        "caller_task",
        "caller_used",
        "connection_id",
        "mutex",
        "raw",
        "read_timeout",
    )

    def __init__(
        self,
        adapter: AsyncDriverAdapter,
        raw: Any,
        cursor: Any,
        read_timeout: float,
        deadlines: Deadlines,
    ) -> None:
        self.adapter = adapter
        self.raw = raw
        self.read_timeout = read_timeout
        self._cursor = cursor
        # Bound once: a bound method made per statement would live as long as the statement.
        self._first = adapter.query_first
        self.connection_id = adapter.connection_id(raw)
        #: Serialises the statements of the acquirer, the releaser and the keepalive.
        self.mutex = asyncio.Lock()
        self.broken = False
        #: Set once the caller ran statements of its own here (see :mod:`.holding`): the
        #: session may carry their state, so it is closed at release instead of pooled.
        self.caller_used = False
        #: The task inside a ``cursor()`` block of this session, if any.
        self.caller_task: asyncio.Task[Any] | None = None
        transport, self._socket_closed = adapter.socket_watch(raw)
        self._transport = _socket_transport(transport)
        self._loop = asyncio.get_running_loop()
        # The read timeout (Python 3.11 and later): the task of the statement under way, its
        # cancellation count before it, and whether the deadline cancelled it; see _call().
        self._deadlines = deadlines
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._expired = False

    def __repr__(self) -> str:
        state = "broken" if self.broken else "open"
        return f"<AsyncSession id={self.connection_id} {state}>"

    def run(
        self, sql: str, params: Sequence[Any] = ()
    ) -> Coroutine[Any, Any, tuple[Any, ...] | None]:
        """Run one statement and return its first row (``None`` for none); see :meth:`run_all`.

        A plain function returning the statement's coroutine: one frame less per statement.
        """
        return self._call(self._first, sql, params)

    def run_all(
        self, sql: str, params: Sequence[Any] = ()
    ) -> Coroutine[Any, Any, list[tuple[Any, ...]]]:
        """Run one statement and return all rows.

        :raises SessionLost: on any connection-level error or when the server does not answer
            within the read timeout (the connection is then closed).
        :raises StatementFailed: when the server rejects the statement (the connection is fine).
        :raises asyncio.CancelledError: when the task is cancelled (the connection is closed).
        """
        return self._call(self.adapter.query, sql, params)

    def run_write(
        self, sql: str, params: Sequence[Any] = ()
    ) -> Coroutine[Any, Any, tuple[int | None, int | None]]:
        """Run one statement that changes rows; raises as :meth:`run_all` does.

        :returns: the affected-row count and the insert id the server reported.
        """
        return self._call(self.adapter.execute_write, sql, params)

    # Chosen once here rather than tested for every statement: Task.cancelling() and
    # uncancel(), which the deadline timer relies on, are new in Python 3.11.
    if sys.version_info >= (3, 11):

        async def _call(self, method: Any, sql: str, params: Sequence[Any]) -> Any:
            if self.broken:
                raise SessionLost("the connection was already broken")
            # As asyncio.timeout() would (cancel the task at the deadline, then turn that
            # cancellation into a timeout), without a timer armed and cancelled per statement:
            # see Deadlines.
            loop = self._loop
            task = asyncio.current_task(loop)
            assert task is not None  # noqa: S101 - statements run in tasks
            self._task = task
            self._cancelling = task.cancelling()
            deadlines = self._deadlines
            deadlines.add(self, loop, loop.time() + self.read_timeout)
            try:
                result = await method(self._cursor, sql, params)
            except BaseException as exc:
                deadlines.discard(self)
                self._task = None
                timed_out = (
                    self._expired
                    and isinstance(exc, asyncio.CancelledError)
                    and task.uncancel() <= self._cancelling
                )
                self._failed(exc, timed_out)
                raise  # a cancellation (not ours) goes on as it came
            deadlines.discard(self)
            # Not kept until the next statement: a finished task held for a whole refresh
            # interval (with its coroutine, context and weak reference) lives long enough to be
            # promoted to the oldest generation, and 10,000 of them per interval made the
            # collector walk the whole heap again and again.
            self._task = None
            if self._expired:  # pragma: no cover - only if the driver swallowed the cancellation
                self._expired = False
                task.uncancel()
            return result

    else:  # pragma: no cover - Python 3.9 and 3.10

        async def _call(self, method: Any, sql: str, params: Sequence[Any]) -> Any:
            if self.broken:
                raise SessionLost("the connection was already broken")
            return await self._call_with_wait_for(method, sql, params)

    def _expire(self) -> None:
        """Called by :class:`Deadlines` when the statement under way is past its deadline."""
        task = self._task
        if task is not None:
            self._expired = True
            task.cancel()

    async def _call_with_wait_for(  # pragma: no cover - Python 3.9 and 3.10
        self, method: Any, sql: str, params: Sequence[Any]
    ) -> Any:
        try:
            return await asyncio.wait_for(method(self._cursor, sql, params), self.read_timeout)
        except BaseException as exc:
            self._failed(exc, isinstance(exc, asyncio.TimeoutError))
            raise  # a cancellation goes on as it came

    def _failed(self, exc: BaseException, timed_out: bool) -> None:
        """Raise what a statement's failure means (returns for a cancellation, to be re-raised).

        The connection is closed unless the server merely refused the statement.

        :param timed_out: whether the server gave no answer within the read timeout.
        """
        adapter = self.adapter
        if timed_out:
            self.close()
            raise SessionLost(
                f"the server did not answer within {self.read_timeout:g} s"
            ) from asyncio.TimeoutError()
        if (
            isinstance(exc, Exception)
            and adapter.is_driver_error(exc)
            and not adapter.is_connection_lost(exc)
        ):
            raise StatementFailed(adapter.error_code(exc), str(exc)) from exc
        # Anything else, cancellation included, interrupted the protocol half-way.
        self.close()
        if isinstance(exc, Exception):
            raise SessionLost(str(exc) or type(exc).__name__) from exc

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
