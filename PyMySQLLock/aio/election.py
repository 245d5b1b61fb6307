"""Leader election for asyncio: one leader among every process that campaigns for a name.

The asyncio twin of :class:`PyMySQLLock.Election`, with its lock, its leader marker and its
rules (:mod:`PyMySQLLock.leadership`), so blocking and asyncio candidates of one name elect
one leader among them. The campaign runs as a task, not a thread: it waits on the server for
the lock ``name`` (a vacancy is filled as soon as the server sees it), serves a *term* while it
holds it, and campaigns again when the term ends. A term ends when the lock is lost (found by
the AsyncLocker's keepalive within the refresh interval), on :meth:`AsyncElection.resign`, on
:meth:`AsyncElection.stop`, or when ``on_elected`` raises.

``on_elected`` and ``on_demoted`` may be plain functions or coroutine functions. ``on_elected``
runs in the campaign task (it should return promptly: start long work in a task of its own that
watches ``term.ended``). ``on_demoted`` runs once per term: as a task of its own when the lock
was lost, otherwise in the campaign task *before* the lock is released, so that a leader stops
working before its successor can start.

Stopping ends a campaign's wait for the lock on the server (``KILL QUERY``, see
:mod:`PyMySQLLock.aio.waits`): nothing stays held, no session is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from ..errors import LockError, LockNotHeldError
from ..leadership import (
    FAILED,
    LOST,
    RESIGNED,
    RETRY_FIRST,
    STOPPED,
    ElectionViews,
    TermViews,
    leader_identity,
    next_retry,
    term_end,
)
from ..timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER
from .waits import end_waits

if TYPE_CHECKING:
    from .lock import AsyncLock
    from .locker import AsyncLocker

__all__ = ["AsyncElection", "AsyncTerm"]

logger = logging.getLogger("PyMySQLLock")

#: A callback of an election: a function or a coroutine function taking the term.
TermCallback = Callable[["AsyncTerm"], Any]


class AsyncTerm(TermViews):
    """One period of leadership of one :class:`AsyncElection`.

    :param election: the election that won it.
    """

    #: Set when the term ended; leader work should watch it (``await term.ended.wait()``).
    ended: asyncio.Event

    def __init__(self, election: AsyncElection) -> None:
        super().__init__(election)
        self.ended = asyncio.Event()
        # Set once the campaign has handed the lock over after the term.
        self._over = asyncio.Event()

    def _end(self, reason: str) -> bool:
        """Mark the term ended; :returns: whether this call ended it (only the first does)."""
        if self.reason is not None:
            return False
        self.reason = reason
        self.ended.set()
        return True


class AsyncElection(ElectionViews["AsyncLock", AsyncTerm]):
    """Campaign for leadership of ``name`` in a task; be told when a term starts and ends.

    Create it with :meth:`PyMySQLLock.aio.AsyncLocker.election`; start campaigning with
    :meth:`start` or ``async with``, whose end resigns and stops. The arguments are those of
    :class:`PyMySQLLock.Election`; the callbacks may be coroutine functions.

    :raises InvalidArgumentError: for an identity that does not fit or is not printable ASCII.
    :raises InvalidArgumentTypeError: for callbacks that are not callable.
    """

    def __init__(
        self,
        locker: AsyncLocker,
        name: str,
        *,
        identity: str | None = None,
        on_elected: TermCallback | None = None,
        on_demoted: TermCallback | None = None,
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
    ) -> None:
        self._locker = locker
        super().__init__(
            locker.lock,
            locker.namespace,
            name,
            identity,
            on_elected,
            on_demoted,
            refresh_interval_secs,
        )
        self._task: asyncio.Task[None] | None = None
        # Set (and replaced) whenever a term starts or the election stops.
        self._changed: asyncio.Event | None = None

    # -- read-only views (the others are ElectionViews') --------------------------------

    async def leader(self) -> str | None:
        """Ask the server who leads now.

        :returns: the leader's identity, or ``None`` when nobody leads.
        :raises LockListingUnavailableError: if the server exposes no lock listing.
        """
        locker = self._locker
        holder = await locker.holder(self._name)
        if holder is None:
            return None
        return leader_identity(self._name, locker.namespace, holder, await locker.list_locks())

    async def wait_for_leadership(self, timeout: float | None = None) -> AsyncTerm | None:
        """Wait until this process leads, or the timeout expires.

        :param timeout: seconds, or ``None`` to wait as long as it takes.
        :returns: the current term, or ``None`` on timeout or after :meth:`stop`.
        """

        async def until() -> AsyncTerm | None:
            while self.term is None and not self._stopping:
                await self._change().wait()
            return self.term

        try:
            return await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            return None

    def __repr__(self) -> str:
        return self._describe(self._task is not None and not self._task.done())

    # -- control ------------------------------------------------------------------------------

    def start(self) -> AsyncElection:
        """Start campaigning in a task of the running loop (a no-op if it already runs).

        :returns: this election.
        :raises LockError: if the AsyncLocker is closed.
        """
        if self._task is not None and not self._task.done():
            return self
        if self._locker.closed:
            raise LockError("this AsyncLocker is closed")
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(
            self._campaign(), name=f"PyMySQLLock-election-{self._name}"
        )
        self._locker._elections.add(self)
        return self

    async def resign(self) -> bool:
        """End the current term and release the lock, then campaign again.

        A candidate already waiting gets the lock first, so this hands leadership over when
        anyone else campaigns. Returns once the lock is released (at once when called from
        ``on_elected``, where the release follows its return).

        :returns: ``True`` if this process was leading, ``False`` otherwise.
        """
        return await self._end_term(RESIGNED)

    async def stop(self) -> None:
        """Resign if leading, stop campaigning and end the campaign task."""
        self._stopping = True
        self._notify()
        await self._end_term(STOPPED)
        self._locker._elections.discard(self)
        task = self._task
        if task is None or task is asyncio.current_task():
            return  # from on_elected: the campaign ends when it returns
        # A campaign waiting for the lock: its wait is ended on the server (KILL QUERY), and
        # the campaign then sees that it stops; one pausing before a retry is cancelled.
        await end_waits(self._locker._pool, {task: self._lock})
        if not task.cancelled() and task.exception() is not None:
            logger.debug("election %r: campaign ended with %r", self._name, task.exception())
        if self._task is task:
            self._task = None

    async def __aenter__(self) -> AsyncElection:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the campaign task --------------------------------------------------------------------

    def _change(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _end_term(self, reason: str) -> bool:
        """End the current term (unless lost); wait until the campaign has released the lock."""
        term = self._term
        if term is None or not term._end(reason):
            return False
        if asyncio.current_task() is not self._task:
            # From on_elected the release follows its return: waiting would wait for ourselves.
            await term._over.wait()
        return True

    async def _campaign(self) -> None:
        retry = RETRY_FIRST
        while not self._stopping:
            try:
                elected = await self._lock.acquire(FOREVER)
            except LockError as exc:
                if self._stopping:
                    return  # stop() ended the wait
                # The server is unreachable (restart, network): try again soon, without
                # spinning; stop() cancels the pause.
                logger.warning("election %r: campaign failed, retrying: %s", self._name, exc)
                await asyncio.sleep(retry)
                retry = next_retry(retry)
                continue
            retry = RETRY_FIRST
            if elected:
                await self._serve()

    async def _serve(self) -> None:
        """Serve one term: mark it, tell the application, wait for its end, hand over."""
        term = AsyncTerm(self)
        try:
            if not await self._lock._also_hold(self._marker):
                logger.warning(
                    "election %r: the leader marker %r is held elsewhere (two candidates with "
                    "the same identity?)",
                    self._name,
                    self._marker,
                )
            if self._stopping:  # stop() came while the wait was being granted
                return
            self._term = term
            self._notify()
            if self._lock.lost:  # lost before the term was visible to _lock_lost
                await _settled(self._lock_lost(self._lock))
            logger.info("election %r: %r became leader", self._name, self._identity)
            if not term.ended.is_set() and self._on_elected is not None:
                try:
                    await _settled(self._on_elected(term))
                except Exception:
                    logger.exception("election %r: on_elected raised; resigning", self._name)
                    if term._end(FAILED):
                        await _settled(self._demoted(term))
            await term.ended.wait()
            if term_end(str(term.reason)).demote:
                await _settled(self._demoted(term))
        finally:
            # Also when the campaign task is cancelled: the term ends and the lock goes back.
            if term._end(STOPPED) and self._term is term:
                await _settled(self._demoted(term))
            if term_end(str(term.reason)).release:
                await self._hand_over()
            if self._term is term:
                self._term = None
            term._over.set()
            self._notify()

    async def _hand_over(self) -> None:
        """Release the marker, then the election lock, on the leader's session."""
        await self._lock._also_release(self._marker)
        with contextlib.suppress(LockNotHeldError):  # lost meanwhile: _lock_lost reports it
            await self._lock.release()

    def _lock_lost(self, lock: AsyncLock) -> Awaitable[None] | None:
        """The keepalive (or a release) found the lock lost: the term ends now.

        :returns: what ``on_demoted`` still has to do, which the lock runs as a task.
        """
        term = self._term
        if term is not None and term._end(LOST):
            return self._demoted(term)
        return None

    def _demoted(self, term: AsyncTerm) -> Awaitable[None] | None:
        """Tell ``on_demoted``; :returns: the rest of a coroutine ``on_demoted``, if any."""
        logger.info(
            "election %r: %r stopped being leader (%s)", self._name, self._identity, term.reason
        )
        if self._on_demoted is None:
            return None
        try:
            result = self._on_demoted(term)
        except Exception:
            logger.exception("election %r: on_demoted raised", self._name)
            return None
        return self._logged(result) if inspect.isawaitable(result) else None

    async def _logged(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("election %r: on_demoted raised", self._name)


async def _settled(result: Any) -> None:
    """Await what a callback returned, if it is awaitable."""
    if inspect.isawaitable(result):
        await result
