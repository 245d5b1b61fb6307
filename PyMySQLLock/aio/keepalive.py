"""The keepalive of an :class:`~PyMySQLLock.aio.AsyncLocker`: one task, no threads.

The task sleeps until the next held lock is due, starts the checks of every lock due by then
(:data:`~PyMySQLLock.statements.STILL_HELD` on the lock's own session, each in a short task of
its own so that a server that hangs delays nothing else), and schedules each lock again when
its check proves it still held. A check that fails, is refused, answers "not held" or gets no
answer within the read timeout declares the lock lost.

Releasing a lock does not touch the schedule: its entry is dropped when it comes due (and the
schedule is compacted when dropped entries pile up), so acquire and release stay cheap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from typing import TYPE_CHECKING

from ..connection import SessionLost, StatementFailed
from ..loss import LossCause, LossReason
from ..statements import NOT_STILL_HELD, STILL_HELD, still_held

if TYPE_CHECKING:
    from .lock import AsyncLock

__all__ = ["AsyncKeepalive"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds to wait before checking a lock whose session is busy (being released).
_BUSY_RETRY = 0.05


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class AsyncKeepalive:
    """Schedules and runs the checks of the held locks of one AsyncLocker."""

    def __init__(self) -> None:
        # (due, sequence, lock, hold): hold is the lock's token of the acquire that put it
        # here, so an entry of an earlier hold is recognised as dead.
        self._heap: list[tuple[float, int, AsyncLock, object]] = []
        self._dead = 0
        self._sequence = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_until = 0.0
        self._checks: set[asyncio.Task[None]] = set()

    def watch(self, lock: AsyncLock, hold: object, delay: float) -> None:
        """Check ``lock`` in ``delay`` seconds, and from then on every interval while held."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        heapq.heappush(self._heap, (due, next(self._sequence), lock, hold))
        task = self._task
        if task is None or task.done():
            self._task = loop.create_task(self._run(), name="PyMySQLLock-keepalive")
        elif self._waiter is not None and due < self._waiting_until:
            _wake(self._waiter)

    def unwatch(self) -> None:
        """Count one entry as dead (its lock was released or lost)."""
        self._dead += 1
        if self._dead > 64 and self._dead * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2]._hold is entry[3]]
            heapq.heapify(self._heap)
            self._dead = 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._heap
        while True:
            heap = self._heap
            while heap and heap[0][2]._hold is not heap[0][3]:
                heapq.heappop(heap)
                self._dead = max(0, self._dead - 1)
            if not heap:
                return  # started again by the next watch()
            due = heap[0][0]
            if due > loop.time():
                waiter = self._waiter = loop.create_future()
                self._waiting_until = due
                timer = loop.call_at(due, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
                continue
            _, _, lock, hold = heapq.heappop(heap)
            check = loop.create_task(self._check(lock, hold))
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)

    async def _check(self, lock: AsyncLock, hold: object) -> None:
        session = lock._session
        if lock._hold is not hold or session is None:
            return
        if session.mutex.locked():
            # A release is under way on this session; it settles the question itself.
            self.watch(lock, hold, _BUSY_RETRY)
            return
        try:
            async with session.mutex:
                if lock._hold is not hold:
                    return
                row = await session.run(STILL_HELD, (lock.server_name,))
        except SessionLost as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                cause = LossCause.NO_ANSWER
                message = f"the server did not answer the check within {session.read_timeout:g} s"
            else:
                cause, message = LossCause.CONNECTION_LOST, f"the connection failed: {exc}"
            lock._declare_lost(session, LossReason.now(cause, message))
            return
        except StatementFailed as exc:
            message = f"the server refused the check: {exc}"
            lock._declare_lost(session, LossReason.now(LossCause.REFUSED, message, exc.code))
            return
        if still_held(row):
            self.watch(lock, hold, lock._held_interval)
        else:
            lock._declare_lost(session, LossReason.now(LossCause.NOT_HELD, NOT_STILL_HELD))

    async def stop(self) -> None:
        """Stop the task and every check under way (their sessions are closed)."""
        tasks = [task for task in (self._task, *self._checks) if task is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._heap.clear()
        self._dead = 0
