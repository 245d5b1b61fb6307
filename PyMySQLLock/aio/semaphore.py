"""Counting semaphores for asyncio: up to ``limit`` holders of one name at once.

The asyncio twin of :class:`PyMySQLLock.Semaphore`, with the same slots (``name#1`` ...
``name#<limit>``, see :mod:`PyMySQLLock.slots`), the same turnstile and the same way of
waiting, so blocking and asyncio holders of one semaphore share its ``limit``:

1. An arrival tries every slot once with timeout 0, from a random one on.
2. If all are taken it queues on the turnstile ``name#queue``, which the server grants to one
   waiter at a time.
3. That head waiter tries the slots once more, then waits on every slot at once: one
   ``GET_LOCK`` per slot, each on its own session, in a task of its own (no thread). The server
   grants a released slot to the session already waiting for it; the head returns with that
   one at once, and a task of the AsyncLocker then ends its other waits (``KILL QUERY``, as the
   blocking semaphore does), gives back a slot granted in the race, and hands the turnstile on.

Cancelling the task of an acquire at any moment leaves no slot, turnstile or session held: every
wait is an :class:`~PyMySQLLock.aio.AsyncLock` acquire, which is cancellation-safe, and the
clean-up of the other waits runs shielded from a second cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from ..errors import LockError
from ..slots import (
    SemaphoreViews,
    already_held,
    not_acquired,
    not_held,
    try_order,
)
from ..statements import HOLDER, holder_answer
from ..timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER
from .lock import AsyncLock
from .waits import end_waits

if TYPE_CHECKING:
    from .locker import AsyncLocker
    from .pool import AsyncPool
    from .session import AsyncSession

__all__ = ["AsyncSemaphore"]

logger = logging.getLogger("PyMySQLLock")


class AsyncSemaphore(SemaphoreViews[AsyncLock]):
    """Up to ``limit`` holders of ``name`` at once, across every process using the server.

    Create it with :meth:`PyMySQLLock.aio.AsyncLocker.semaphore`; the arguments and their
    meaning are those of :class:`PyMySQLLock.Semaphore`. One object holds at most one slot at a
    time, and may be acquired again after a release.

    :param on_lost: called as ``on_lost(semaphore)``, once, if a held slot is lost; a coroutine
        function is run as a task of its own.
    """

    def __init__(
        self,
        locker: AsyncLocker,
        name: str,
        limit: int,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
        on_lost: Callable[[AsyncSemaphore], Any] | None = None,
    ) -> None:
        super().__init__(locker.lock, name, limit, timeout, refresh_interval_secs, on_lost)
        self._locker = locker
        # Ends the other waits of the last acquire, which returned before they ended.
        self._settling: asyncio.Task[None] | None = None
        self._acquiring = False

    # -- read-only views (the others are SemaphoreViews') -------------------------------

    async def holders(self) -> dict[int, int]:
        """Ask the server which slots are held (one statement per slot, on one connection).

        :returns: ``{slot number: holder's connection id}`` for every held slot.
        """

        async def ask(session: AsyncSession) -> dict[int, int]:
            found = {}
            for number, slot in enumerate(self._slots, 1):
                holder = holder_answer(await session.run(HOLDER, (slot.server_name,)))
                if holder is not None:
                    found[number] = holder
            return found

        return await self._locker._pool.on_idle(ask)

    # -- acquire and release ------------------------------------------------------------------

    async def acquire(
        self, timeout: float | None = None, refresh_interval_secs: float | None = None
    ) -> bool:
        """Wait for a free slot and hold it; as :meth:`PyMySQLLock.Semaphore.acquire`.

        Cancelling the task at any moment leaves no slot held by this process.

        :returns: ``True`` once a slot is held; ``False`` if the timeout expired.
        :raises LockAlreadyHeldError: if this object holds a slot or is acquiring one.
        :raises LockError: as :meth:`PyMySQLLock.aio.AsyncLock.acquire` does.
        """
        seconds, interval = self._acquire_args(timeout, refresh_interval_secs)
        if self._acquiring or self._held is not None:
            raise already_held(self._name)
        self._acquiring = True
        try:
            won = await self._acquire(time.monotonic() + seconds, interval)
        finally:
            self._acquiring = False
        if won is None:
            return False
        self._held = self._last = won
        return True

    async def _acquire(self, deadline: float, interval: float) -> AsyncLock | None:
        previous = self._settling
        if previous is not None:  # the other waits of the last acquire, still being ended
            await asyncio.shield(previous)
        won = await self._try_all(interval)
        if won is not None or time.monotonic() >= deadline:
            return won
        if await self._first(self._start([self._turnstile], deadline, interval)) is None:
            return None
        handed_on = False
        try:
            # A slot may have been released while this waiter queued.
            waits: dict[asyncio.Future[bool], AsyncLock] = {}
            won = await self._try_all(interval)
            if won is None:
                waits = self._start(self._slots, deadline, interval)
                won = await self._first(waits)
            if won is not None:
                # Return at once with the slot, without another await that a cancellation
                # could interrupt before the slot is recorded: the other waits are ended, and
                # the turnstile handed on, behind the caller's back (the next acquire() of
                # this object, and close(), wait for that).
                self._settling = self._locker._track(self._hand_on(waits, won))
                handed_on = True
            return won
        finally:
            if not handed_on:
                # Handed on to the next waiter; a cancelled release closes the session instead.
                await self._turnstile.release()

    @staticmethod
    def _start(
        locks: list[AsyncLock], deadline: float, interval: float
    ) -> dict[asyncio.Future[bool], AsyncLock]:
        """Start a wait for each of ``locks``, each in a task (and on a session) of its own.

        Even a single wait runs so: a cancelled one is then ended with ``KILL QUERY`` by
        :func:`_settle` (a closed session's wait would go on on the server until it timed out,
        and could be granted meanwhile).
        """
        return {
            asyncio.ensure_future(lock.acquire(_left(deadline), interval)): lock for lock in locks
        }

    async def _try_all(self, interval: float) -> AsyncLock | None:
        """Try every slot once with timeout 0, from a random one on."""
        for index in try_order(self._limit):
            slot = self._slots[index]
            if await slot.acquire(0, interval):
                return slot
        return None

    async def _first(self, waits: dict[asyncio.Future[bool], AsyncLock]) -> AsyncLock | None:
        """Wait for the first lock granted.

        When there is none (every wait timed out, or one failed), or the task is cancelled,
        every wait is ended before this returns or raises, shielded from a second cancellation.

        :raises LockError: when a wait failed before any lock was granted.
        """
        won: AsyncLock | None = None
        failure: BaseException | None = None
        try:
            pending = set(waits)
            while pending and won is None and failure is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for wait in done:
                    if wait.exception() is not None:
                        failure = failure or wait.exception()
                    elif wait.result() and won is None:
                        won = waits[wait]
        except BaseException:
            # Cancelled: nothing may stay held for an acquire that raises.
            await asyncio.shield(self._locker._track(_settle(self._locker._pool, waits, None)))
            raise
        if won is None:
            await asyncio.shield(self._locker._track(_settle(self._locker._pool, waits, None)))
            if failure is not None:
                raise failure
        return won

    async def _hand_on(self, waits: dict[asyncio.Future[bool], AsyncLock], won: AsyncLock) -> None:
        try:
            await _settle(self._locker._pool, waits, won)
        finally:
            try:
                await self._turnstile.release()
            except LockError as exc:  # the AsyncLocker was closed meanwhile
                logger.debug("semaphore %r: turnstile already gone: %s", self._name, exc)

    async def release(self) -> None:
        """Give the slot back.

        :raises LockNotHeldError: if no slot is held.
        """
        held, self._held = self._held, None
        if held is None:
            raise not_held(self._name)
        await held.release()

    # -- context manager ----------------------------------------------------------------------

    async def __aenter__(self) -> AsyncSemaphore:
        if not await self.acquire():
            raise not_acquired(self._name, self._limit, self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        held = self._held
        if held is None:
            return
        self._held = None
        # The slot's own block exit: releases, and raises LockLostError on a loss.
        await held.__aexit__(exc_type, exc, traceback)


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (infinite stays infinite), never negative."""
    return max(0.0, deadline - time.monotonic())


async def _settle(
    pool: AsyncPool, waits: dict[asyncio.Future[bool], AsyncLock], keep: AsyncLock | None
) -> None:
    """End every wait but the one that won ``keep``; give back any other slot granted.

    The waits are ended as :mod:`.waits` says (``KILL QUERY``).
    """
    await end_waits(pool, waits)
    for wait, slot in waits.items():
        if slot is keep or wait.cancelled() or wait.exception() is not None:
            continue
        if wait.result():
            try:
                await slot.release()
            except LockError as exc:  # lost meanwhile, or the AsyncLocker was closed
                logger.debug("giving back slot %r: %s", slot.name, exc)
