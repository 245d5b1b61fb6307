"""Counting semaphores: up to ``limit`` holders of one name at once, built from plain locks.

The server only has exclusive locks, so a semaphore of ``limit`` is ``limit`` slot locks,
``name#1`` ... ``name#<limit>``; holding any one of them is holding the semaphore. Whatever
happens, no more than ``limit`` sessions hold it, because the server grants each slot to one
session. A held slot is an ordinary held :class:`~PyMySQLLock.Lock`: it has its own session,
the keepalive checks it, its loss is reported the same way, and listings show it by its slot
name.

How a waiter waits, without polling:

1. It tries every slot once with timeout 0, starting at a random slot, so that arrivals do
   not all collide on ``name#1``.
2. If all are taken it queues on a turnstile lock, ``name#queue``. The server grants that lock
   to one waiter at a time, in the order they asked, so there is a single *head* waiter.
3. The head tries the slots once more, then waits on every slot at once: one blocking
   ``GET_LOCK`` per slot, each on its own session (and thread). When a holder releases a slot,
   the server grants it to the session already waiting for it, inside the release itself, so
   the hand-off costs no round trip and no newcomer can take that slot first. The head returns
   with that slot at once; a background thread then cancels its other waits (``KILL QUERY``),
   gives back any slot granted in the race, and releases the turnstile to the next waiter.

Fairness: waiters get slots in the order they queued on the turnstile. A newcomer's first
round of timeout-0 tries can still take a slot that is free while no head is waiting (between
two heads), so the order is close to, not exactly, first come first served; no waiter can be
passed over forever, because each head gets the next slot that is released.

Cost: the head waiter uses ``limit`` connections and ``limit`` threads while it waits (the
others one connection each), hence the cap :data:`MAX_LIMIT`. Every participant must use the
same ``limit``: a process that declares a larger one uses slots the others do not know about.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from . import statements
from .errors import AcquireCancelledError, LockError
from .lock import Lock
from .slots import (
    MAX_LIMIT,
    QUEUE_SUFFIX,
    SLOT_MARK,
    SemaphoreViews,
    already_held,
    not_acquired,
    not_held,
    slot_name,
    try_order,
)
from .timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER

if TYPE_CHECKING:
    from .connection import Session
    from .locker import Locker

__all__ = ["MAX_LIMIT", "QUEUE_SUFFIX", "SLOT_MARK", "Semaphore", "slot_name"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds between two cancel() calls for a wait that had not begun at the first one.
_CANCEL_ROUND = 0.05


class Semaphore(SemaphoreViews[Lock]):
    """Up to ``limit`` holders of ``name`` at once, across every process using the server.

    Create it with :meth:`PyMySQLLock.Locker.semaphore`. Like a :class:`~PyMySQLLock.Lock`, one
    object holds at most one slot at a time, and may be acquired again after a release.

    :param locker: the Locker whose connections and keepalive the slots use.
    :param name: the semaphore's name; the slots are named ``name#1`` ... ``name#<limit>``.
    :param limit: how many holders at once, from 1 to
        :data:`~PyMySQLLock.slots.MAX_LIMIT`; every participant must use the same value.
    :param timeout: the default for :meth:`acquire` and the ``with`` block (``-1`` forever,
        ``0`` try once, else seconds).
    :param refresh_interval_secs: the default seconds between keepalive checks of the slot.
    :param on_lost: called as ``on_lost(semaphore)``, once, if a held slot is lost.
    :raises InvalidArgumentTypeError: for a ``limit`` that is not an int, or an ``on_lost``
        that is not callable.
    :raises InvalidArgumentError: for a ``limit`` out of range, a bad name, timeout or
        interval.

    .. versionadded:: 1.0
    """

    def __init__(
        self,
        locker: Locker,
        name: str,
        limit: int,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
        on_lost: Callable[[Semaphore], Any] | None = None,
    ) -> None:
        super().__init__(locker.lock, name, limit, timeout, refresh_interval_secs, on_lost)
        self._locker = locker
        self._mutex = threading.Lock()
        self._acquiring = False
        # Ends the other waits of the last acquire, which returned before they ended.
        self._settling: threading.Thread | None = None

    # -- read-only views (the others are SemaphoreViews') -------------------------------

    def holders(self) -> dict[int, int]:
        """Ask the server which slots are held (one statement per slot, on one connection).

        :returns: ``{slot number: holder's connection id}`` for every held slot.
        """

        def ask(session: Session) -> dict[int, int]:
            found = {}
            for number, slot in enumerate(self._slots, 1):
                holder = statements.holder_answer(
                    session.run(statements.HOLDER, (slot.server_name,))
                )
                if holder is not None:
                    found[number] = holder
            return found

        return self._locker._pool.run(ask)

    # -- acquire and release ------------------------------------------------------------------

    def acquire(
        self, timeout: float | None = None, refresh_interval_secs: float | None = None
    ) -> bool:
        """Wait for a free slot and hold it.

        :param timeout: as :meth:`PyMySQLLock.Lock.acquire`; ``None``: the value given to
            :meth:`~PyMySQLLock.Locker.semaphore`. The wait for the turnstile and for a slot
            together take at most this long.
        :param refresh_interval_secs: seconds between keepalive checks of the held slot.
        :returns: ``True`` once a slot is held; ``False`` if the timeout expired.
        :raises LockAlreadyHeldError: if this object holds a slot or is acquiring one.
        :raises LockError: as :meth:`PyMySQLLock.Lock.acquire` does.
        """
        seconds, interval = self._acquire_args(timeout, refresh_interval_secs)
        with self._mutex:
            if self._acquiring or self._held is not None:
                raise already_held(self._name)
            self._acquiring = True
        try:
            won = self._acquire(time.monotonic() + seconds, interval)
        finally:
            with self._mutex:
                self._acquiring = False
        if won is None:
            return False
        with self._mutex:
            self._held = won
            self._last = won
        return True

    def _acquire(self, deadline: float, interval: float) -> Lock | None:
        previous = self._settling
        if previous is not None:  # the slots of the last acquire's other waits
            previous.join()
        won = self._try_all(interval)
        if won is not None or time.monotonic() >= deadline:
            return won
        if not self._turnstile.acquire(_left(deadline), interval):
            return None
        settling: threading.Thread | None = None
        try:
            # A slot may have been released while this waiter queued.
            waits: _Waits | None = None
            won = self._try_all(interval)
            if won is None and self._limit == 1:
                slot = self._slots[0]
                won = slot if slot.acquire(_left(deadline), interval) else None
            elif won is None:
                waits = _Waits(self._slots, deadline, interval)
                try:
                    won = waits.first()
                except BaseException:
                    # Interrupted (KeyboardInterrupt): no wait may go on to take a slot for
                    # nobody.
                    with contextlib.suppress(Exception):
                        waits.settle(None)
                    raise
                if won is None:
                    waits.settle(None)  # all timed out or one failed: raises the failure
            if won is None:
                return None
            # Return at once with the slot, without another statement that an interrupt could
            # cut short before the slot is recorded: the other waits are ended, and the
            # turnstile handed on, behind the caller's back (the next acquire() of this object
            # waits).
            settling = threading.Thread(
                target=self._settle,
                args=(waits, won),
                name=f"PyMySQLLock-semaphore-{self._name}-settle",
                daemon=True,
            )
            self._settling = settling
            settling.start()
            return won
        finally:
            if settling is None:
                self._turnstile.release()

    def _settle(self, waits: _Waits | None, won: Lock) -> None:
        try:
            if waits is not None:
                waits.settle(won)
        except Exception:
            logger.debug("semaphore %r: ending the other waits failed", self._name, exc_info=True)
        finally:
            try:
                self._turnstile.release()
            except LockError:  # the Locker was closed meanwhile
                logger.debug("semaphore %r: turnstile already gone", self._name)

    def _try_all(self, interval: float) -> Lock | None:
        """Try every slot once with timeout 0, from a random one on."""
        for index in try_order(self._limit):
            slot = self._slots[index]
            if slot.acquire(0, interval):
                return slot
        return None

    def release(self) -> None:
        """Give the slot back.

        :raises LockNotHeldError: if no slot is held.
        """
        with self._mutex:
            held, self._held = self._held, None
        if held is None:
            raise not_held(self._name)
        held.release()

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> Semaphore:
        if not self.acquire():
            raise not_acquired(self._name, self._limit, self._timeout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        held = self._held
        if held is None:
            return
        self._held = None
        # The slot's own with-block exit: releases, and raises LockLostError on a loss.
        held.__exit__(exc_type, exc, traceback)


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (infinite stays infinite), never negative."""
    return max(0.0, deadline - time.monotonic())


class _Waits:
    """One blocking wait per slot, each on a thread (and session) of its own.

    :param slots: the slot locks, none held by this semaphore object.
    :param deadline: when the waits give up (monotonic seconds).
    :param interval: the keepalive interval of a slot once held.
    """

    def __init__(self, slots: list[Lock], deadline: float, interval: float) -> None:
        self._slots = slots
        self._outcomes: queue.SimpleQueue[tuple[Lock, bool, BaseException | None]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._deadline = deadline
        self._interval = interval
        self._threads = [
            threading.Thread(
                target=self._wait, args=(slot,), name=f"PyMySQLLock-slot-{slot.name}", daemon=True
            )
            for slot in slots
        ]
        self._pending = len(self._threads)
        self._error: BaseException | None = None
        for thread in self._threads:
            thread.start()

    def _wait(self, slot: Lock) -> None:
        try:
            if self._stop.is_set():
                raise AcquireCancelledError("a slot was granted before this wait began")
            granted = slot.acquire(_left(self._deadline), self._interval)
            self._outcomes.put((slot, granted, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._outcomes.put((slot, False, exc))

    def first(self) -> Lock | None:
        """Wait for the first slot granted.

        :returns: the slot, or ``None`` when every wait ended without one (or one failed:
            :meth:`settle` raises it).
        """
        while self._pending:
            slot, granted, failure = self._outcomes.get()
            self._pending -= 1
            if granted:
                return slot
            if failure is not None:
                self._error = failure
                return None
        return None

    def settle(self, won: Lock | None) -> None:
        """End every other wait; give back a slot granted in the race; raise a failure.

        A thread may not have begun its acquire() yet, when cancel() finds nothing to cancel:
        it then sees the stop flag, or begins and is cancelled on the next round.
        """
        self._stop.set()
        for slot, thread in zip(self._slots, self._threads):
            while thread.is_alive():
                if slot is not won:
                    slot.cancel()
                thread.join(_CANCEL_ROUND)
        while self._pending:
            slot, granted, failure = self._outcomes.get()
            self._pending -= 1
            if granted:
                slot.release()
            elif self._error is None and not isinstance(failure, AcquireCancelledError):
                self._error = failure
        if self._error is not None and won is None:
            raise self._error
