"""A named lock held on a dedicated server session, for asyncio.

An :class:`AsyncLock` is handed out by :meth:`PyMySQLLock.aio.AsyncLocker.lock`. While held it
owns one connection, whose session holds the server's ``GET_LOCK``; the AsyncLocker's keepalive
task checks that session every refresh interval and reports the lock lost as soon as it no
longer holds it.

Cancellation is safe at every ``await``: a cancelled acquire either returns its idle session to
the pool (nothing was asked of the server) or closes it (a ``GET_LOCK`` was sent, whatever its
fate), and the server frees whatever a closed session held; a ``GET_LOCK`` still waiting on
the server for that closed session is then killed from another one (see :mod:`.waits`). A
cancelled release closes the session too. Between the server's answer and the lock's
bookkeeping there is no ``await``, so a granted lock is always either recorded as held or
closed away.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import time
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Union

from ..connection import SessionLost, StatementFailed, died_in_pool
from ..errors import (
    LockAlreadyHeldError,
    LockConnectionError,
    LockError,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
)
from ..lockargs import lock_arguments
from ..loss import LossCause, LossReason
from ..progress import HOLDER_DETAILS, holder_from_row
from ..selfwait import self_wait_error
from ..statements import (
    GET_LOCK,
    RELEASE_LOCK,
    Acquire,
    Release,
    acquire_answer,
    acquire_failure,
    keeps_session,
    release_answer,
)
from ..timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER, validate_interval, validate_timeout
from . import holding
from .session import AsyncSession

if TYPE_CHECKING:
    from .locker import AsyncLocker

__all__ = ["AsyncLock", "AsyncOnLost"]

logger = logging.getLogger("PyMySQLLock")

_IDLE, _ACQUIRING, _HELD, _LOST = "idle", "acquiring", "held", "lost"
#: How often a MySQL wait shorter than a second retries; MySQL rounds fractional timeouts.
_POLL_SECONDS = 0.02

#: The type of ``on_lost``: a function or a coroutine function taking the lost lock.
AsyncOnLost = Callable[["AsyncLock"], Union[Awaitable[Any], Any]]


class AsyncLock:
    """A named lock for asyncio: mutual exclusion across every process on the same server.

    Create it with :meth:`PyMySQLLock.aio.AsyncLocker.lock`. Not re-entrant; may be acquired
    again after it was released. Use it from the event loop of its AsyncLocker.

    :param locker: the AsyncLocker whose sessions and keepalive the lock uses.
    :param name: the lock name (any non-empty :class:`str`; see :mod:`PyMySQLLock.names`).
    :param timeout: the default for :meth:`acquire` and ``async with``: ``-1`` waits forever,
        ``0`` tries once, a positive number waits that many seconds.
    :param refresh_interval_secs: the default seconds between two keepalive checks.
    :param on_lost: called as ``on_lost(lock)``, once, when a held lock is found lost; a
        coroutine function is run as a task of its own.
    :raises InvalidArgumentTypeError: for a name that is not a :class:`str`, a non-number
        timeout or interval, or an ``on_lost`` that is not callable.
    :raises InvalidArgumentError: for an empty name or an out-of-range timeout or interval.
    """

    def __init__(
        self,
        locker: AsyncLocker,
        name: str,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
        on_lost: AsyncOnLost | None = None,
    ) -> None:
        self._name, self._server_name, self._timeout, self._interval = lock_arguments(
            name, locker.namespace, timeout, refresh_interval_secs, on_lost
        )
        self._on_lost = on_lost
        self._locker = locker
        self._state = _IDLE
        self._session: AsyncSession | None = None
        self._was_lost = False
        self._lost_reason: LossReason | None = None
        self._held_interval = self._interval
        #: A new object per hold: the keepalive's entries of an earlier hold no longer match.
        self._hold: object = None
        #: The session whose ``GET_LOCK`` is on the server right now, during an acquire: a
        #: semaphore ends such a wait with ``KILL QUERY``, which keeps the session usable.
        self._waiting: AsyncSession | None = None

    # -- read-only views ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name given to :meth:`~PyMySQLLock.aio.AsyncLocker.lock`."""
        return self._name

    @property
    def server_name(self) -> str:
        """The name the server sees: namespaced, and hashed when too long (see :mod:`.names`)."""
        return self._server_name

    @property
    def locker(self) -> AsyncLocker:
        """The :class:`~PyMySQLLock.aio.AsyncLocker` this lock belongs to."""
        return self._locker

    @property
    def lost(self) -> bool:
        """Whether the lock was held and then lost, since the last :meth:`acquire`."""
        return self._was_lost

    @property
    def lost_reason(self) -> LossReason | None:
        """Why and when the lock was lost, while :attr:`lost` is true; else ``None``.

        Set before ``on_lost`` is called, so the callback can read it from the lock it gets.
        """
        return self._lost_reason if self._was_lost else None

    @property
    def connection_id(self) -> int | None:
        """The server's id of the session holding the lock (``CONNECTION_ID()``), if held."""
        session = self._session
        return session.connection_id if session is not None and self._state == _HELD else None

    def locked(self) -> bool:
        """:returns: whether this object holds the lock and it is not known to be lost."""
        return self._state == _HELD

    def ensure_held(self) -> None:
        """Raise unless the lock is held; call it before each step of work the lock protects.

        :raises LockLostError: if the lock was held and has been lost.
        :raises LockNotHeldError: if the lock is not held (never acquired, or released).
        """
        if self._was_lost:
            raise LockLostError(
                f"lock {self._name!r} was lost", name=self._name, reason=self.lost_reason
            )
        if self._state != _HELD:
            raise LockNotHeldError(f"lock {self._name!r} is not held")

    @property
    def token(self) -> int | None:
        """The fencing token of the latest acquire; always ``None`` without ``fencing=True``."""
        return None

    # -- the caller's statements on the holding session ---------------------------------------

    def cursor(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A driver cursor on the session that holds the lock, for an ``async with`` block.

        As :meth:`PyMySQLLock.Lock.cursor`: each statement runs in autocommit mode, so one that
        succeeds ran while the lock was held; the keepalive waits while the block runs; the
        session is closed at release instead of pooled. Cancelling the task inside the block
        closes the session (see :mod:`PyMySQLLock.aio.holding`).

        :raises LockNotHeldError: if the lock is not held.
        :raises LockLostError: if it was lost, or the session failed in the block.
        :raises LockError: if a block of this lock is already open in this task.
        """
        return holding.caller_cursor(self, transaction=False)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Like :meth:`cursor`, in a transaction committed only while the lock is still held.

        ``START TRANSACTION`` first; ``COMMIT`` when the block ends, ``ROLLBACK`` when it
        raises. If the session ends before the ``COMMIT`` (the lock lost), the server rolls the
        transaction back and :class:`~PyMySQLLock.LockLostError` is raised.
        """
        return holding.caller_cursor(self, transaction=True)

    def _holding_session(self) -> AsyncSession:
        """:returns: the session holding the lock; raises as :meth:`ensure_held` does."""
        self.ensure_held()
        session = self._session
        assert session is not None  # noqa: S101 - held means a session
        return session

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} {self._state}>"

    async def _also_hold(self, name: str) -> bool:
        """Take the lock ``name`` (a server name) too, on the session holding this one.

        For :mod:`.election`'s leader marker, as :meth:`PyMySQLLock.Lock._also_hold`:
        :meth:`_also_release` must give it back before :meth:`release` pools the session. A
        connection failure is left to the keepalive and release to report.

        :returns: whether the server granted it at once (timeout 0).
        """
        row = await self._on_held_session(GET_LOCK, (name, 0))
        return row is not None and row[0] == 1

    async def _also_release(self, name: str) -> None:
        """Release the lock ``name`` taken by :meth:`_also_hold`."""
        await self._on_held_session(RELEASE_LOCK, (name,))

    async def _on_held_session(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        session = self._session if self._state == _HELD else None
        if session is None:
            return None
        try:
            async with session.mutex:
                return await session.run(sql, params)
        except (SessionLost, StatementFailed) as exc:
            logger.debug("%s beside lock %r failed: %s", sql, self._name, exc)
            return None

    # -- acquire ------------------------------------------------------------------------------

    async def acquire(
        self, timeout: float | None = None, refresh_interval_secs: float | None = None
    ) -> bool:
        """Wait for the lock and hold it.

        Cancelling the task (directly, or through ``asyncio.timeout()`` or
        ``asyncio.wait_for()``) at any moment leaves the lock not held by this process.

        :param timeout: ``-1`` waits forever, ``0`` tries once, a positive number waits at most
            that many seconds. ``None``: the value given to
            :meth:`~PyMySQLLock.aio.AsyncLocker.lock` (``-1`` unless set).
        :param refresh_interval_secs: seconds between two keepalive checks while held.
            ``None``: the value given to :meth:`~PyMySQLLock.aio.AsyncLocker.lock`.
        :returns: ``True`` once held; ``False`` only when the timeout expired (error 1205
            counts as an expired wait, as for :meth:`PyMySQLLock.Lock.acquire`).
        :raises LockAlreadyHeldError: if this object holds the lock or is acquiring it.
        :raises DeadlockError: if waiting would deadlock with another session, or (with an
            endless timeout) with the calling task itself: it holds the name through another
            AsyncLock of this AsyncLocker. A finite timeout then simply expires; another
            task, a child task included, waits for the release as usual.
        :raises AcquireInterruptedError: if the server ended the wait (``KILL QUERY``, a
            statement time limit).
        :raises LockConnectionError: if the server cannot be reached.
        :raises UnsupportedServerError: if the server refuses user locks.
        :raises LockError: if the AsyncLocker is closed.
        :raises InvalidArgumentError: for an out-of-range timeout or interval (before anything
            is sent).
        """
        seconds = self._timeout if timeout is None else validate_timeout(timeout)
        interval = (
            self._interval
            if refresh_interval_secs is None
            else validate_interval(refresh_interval_secs)
        )
        holders = self._locker._holders
        if holders and (
            holders.self_wait(self._server_name, self, seconds, asyncio.current_task) is not None
        ):
            raise self_wait_error(self._name, "task", "AsyncLock", "AsyncLocker")
        if self._state in (_HELD, _ACQUIRING):
            raise LockAlreadyHeldError(f"lock {self._name!r} is already {self._state}")
        self._state = _ACQUIRING
        self._was_lost = False
        try:
            session = await self._wait(seconds)
        finally:
            # No await between the server's answer and here: a granted lock is recorded.
            self._state = _IDLE
        if session is None:
            logger.debug("lock %r not acquired within %s s", self._name, seconds)
            return False
        locker = self._locker
        if locker.closed:
            # close() ran while the server answered: it must not miss a lock to release.
            locker._pool.discard(session)
            raise LockError("this AsyncLocker is closed")
        self._state = _HELD
        self._session = session
        self._held_interval = interval
        self._hold = hold = object()
        locker._lock_held(self, hold, interval)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("lock %r acquired on connection %s", self._name, session.connection_id)
        return True

    async def _wait(self, seconds: float) -> AsyncSession | None:
        """Wait on the server in bounded chunks; return the session holding the lock, or None.

        A chunk never exceeds the read timeout, so an endless wait still notices a dead server.
        """
        pool = self._locker._pool
        deadline = time.monotonic() + seconds
        # A warm cycle takes an idle session without awaiting a coroutine for it.
        session = pool.checkout_idle()
        reused = session is not None
        if session is None:
            session, reused = await pool.checkout()
        while True:
            started = time.monotonic()
            chunk = pool.wait_chunk(deadline - started)
            self._waiting = session
            try:
                row = await session.run(GET_LOCK, (self._server_name, chunk))
            except SessionLost as lost:
                pool.discard(session)
                if died_in_pool(reused, started):
                    session, reused = await pool.checkout(fresh=True)
                    continue
                raise LockConnectionError(
                    f"lost the connection while acquiring lock {self._name!r}: {lost}"
                ) from lost.__cause__
            except StatementFailed as failure:
                outcome = acquire_failure(self._name, failure.code, failure.message)
                if isinstance(outcome, LockError):
                    pool.checkin(session)
                    raise outcome from failure.__cause__
            except BaseException:
                # Cancelled with the statement sent: the answer may be a grant. The session
                # was closed by run(), which ends it on the server with anything it got; its
                # wait there is ended from another session, in the background.
                pool.discard(session)
                self._locker._wait_abandoned(session, self._server_name)
                raise
            else:
                outcome = acquire_answer(self._name, row)
            finally:
                self._waiting = None
            reused = False
            if outcome is Acquire.GRANTED:
                return session
            if isinstance(outcome, LockError):
                if keeps_session(outcome):
                    pool.checkin(session)
                else:
                    pool.discard(session)
                raise outcome
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pool.checkin(session)
                return None
            if chunk == 0:
                try:
                    await asyncio.sleep(min(_POLL_SECONDS, remaining))
                except BaseException:
                    pool.checkin(session)  # nothing in flight: the session holds nothing
                    raise

    # -- release ------------------------------------------------------------------------------

    async def release(self) -> None:
        """Release the lock.

        The lock stops counting as held at once. If the task is cancelled while the server
        answers, the session is closed instead, which frees the lock just the same.
        Releasing a lock that was lost only cleans up: the loss was already reported.

        :raises LockNotHeldError: if the lock is not held (never acquired, or released).
        :raises LockError: when called inside a :meth:`cursor` block of this lock, in its
            task (the block holds the session).
        """
        if self._state == _LOST:
            self._state = _IDLE
            return
        session = self._session
        if self._state != _HELD or session is None:
            raise LockNotHeldError(f"lock {self._name!r} is not held")
        if session.caller_task is not None and session.caller_task is asyncio.current_task():
            # The block holds the session's mutex: waiting for it here would never end.
            raise LockError(f"release() inside a cursor() block of lock {self._name!r}")
        self._session = None
        self._state = _IDLE
        self._hold = None
        locker = self._locker
        locker._lock_released(self)
        pool = locker._pool
        try:
            async with session.mutex:
                row = await session.run(RELEASE_LOCK, (self._server_name,))
        except SessionLost as exc:
            pool.discard(session)
            self._report_lost(
                LossReason.now(
                    LossCause.CONNECTION_LOST, f"the connection failed during release: {exc}"
                )
            )
            return
        except StatementFailed as exc:
            pool.discard(session)
            self._report_lost(
                LossReason.now(
                    LossCause.REFUSED, f"the server refused to release it: {exc}", exc.code
                )
            )
            return
        except BaseException:
            pool.discard(session)  # closing frees the lock on the server
            raise
        outcome = release_answer(row)
        if outcome is Release.RELEASED:
            pool.checkin(session)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("lock %r released", self._name)
            return
        pool.discard(session)
        self._report_lost(LossReason.now(LossCause.NOT_HELD, outcome.lost_reason or ""))

    # -- loss ---------------------------------------------------------------------------------

    def _declare_lost(self, session: AsyncSession, reason: LossReason) -> None:
        """Called by the keepalive when a check failed."""
        if self._state != _HELD or self._session is not session:
            return  # released meanwhile: release() reports what it finds
        self._state = _LOST
        self._session = None
        self._hold = None
        self._locker._lock_released(self)
        self._locker._pool.discard(session)
        self._report_lost(reason)

    def _report_lost(self, reason: LossReason) -> None:
        # The reason first: on_lost and anyone who sees ``lost`` may read it.
        self._lost_reason = reason
        self._was_lost = True
        logger.warning("lock %r was lost: %s", self._name, reason.message)
        if self._on_lost is None:
            return
        try:
            result = self._on_lost(self)
        except Exception:
            logger.exception("on_lost callback for lock %r raised", self._name)
            return
        if inspect.isawaitable(result):
            self._locker._run_callback(self._name, result)

    # -- context manager ----------------------------------------------------------------------

    async def _timeout_error(self, message: str) -> LockTimeoutError:
        """The error for an acquire that timed out, naming the holder when the server tells.

        :param message: what timed out; the holder is appended when it could be looked up.
        """
        holder: int | None = None
        try:
            row = await self._locker._pool.on_idle(
                lambda session: session.run(HOLDER_DETAILS, (self._server_name,))
            )
        except LockError:
            pass  # only a detail of an error being raised: never replace that error
        else:
            found = holder_from_row(row)
            holder = found.connection_id
            message = f"{message}; held by {found}"
        timeout = -1 if math.isinf(self._timeout) else self._timeout
        return LockTimeoutError(message, name=self._name, timeout=timeout, holder=holder)

    async def __aenter__(self) -> AsyncLock:
        if not await self.acquire():
            shown = "ever" if math.isinf(self._timeout) else f"{self._timeout} s"
            raise await self._timeout_error(f"lock {self._name!r} was not acquired within {shown}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        lost = self._was_lost
        await self.release()
        if (lost or self._was_lost) and exc_type is None:
            raise LockLostError(
                f"lock {self._name!r} was lost while the async with block ran; "
                "its work may have overlapped with another holder",
                name=self._name,
                reason=self.lost_reason,
            )
