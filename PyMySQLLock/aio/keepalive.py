"""The keepalive of an :class:`~PyMySQLLock.aio.AsyncLocker`: one timer on the loop, no threads.

One timer of the event loop is armed for the next held lock that is due. When it fires it
starts the checks of every lock due by then (:data:`~PyMySQLLock.statements.STILL_HELD` on the
lock's own session, each in a short task of its own so that a server that hangs delays nothing
else), and arms itself for the next one; each lock is scheduled again when its check proves it
still held. A check that fails, is refused, answers "not held" or gets no answer within the read
timeout declares the lock lost.

Releasing a lock does not touch the schedule: its entry is dropped when it comes due (and the
schedule is compacted when dropped entries pile up), so acquire and release stay cheap. Nor does
a warm acquire/release cycle start or wake anything: a new lock due later than the armed timer
only joins the schedule.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import logging
import sys
from typing import TYPE_CHECKING, Any

from ..connection import SessionLost, StatementFailed
from ..loss import LossCause, LossReason
from ..statements import NOT_STILL_HELD, STILL_HELD, still_held
from .looptimer import LoopTimer

if TYPE_CHECKING:
    from .lock import AsyncLock

__all__ = ["AsyncKeepalive"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds to wait before checking a lock whose session is busy (being released).
_BUSY_RETRY = 0.05
#: Seconds by which a check may run early to share a wake-up with the ones before it. Every
#: wake-up of the loop costs a pass of its Python scheduler and a system call, and with 10,000
#: locks held a wake-up per check (a 1 ms window) cost 10-25 % more CPU than this window.
_BATCH_WINDOW = 0.05
#: Objects a check keeps alive while its statement is under way: its task and coroutines, the
#: driver's futures and read state (about 19 with aiomysql, 27 with asyncmy).
_OBJECTS_PER_CHECK = 28


def _batch_limit() -> int:
    """The most checks one wake-up starts: as many as fit the collector's youngest generation.

    A collection that runs while checks are under way moves their objects to an older
    generation, and enough of them make the collector walk the whole heap (a quarter of a
    second with 10,000 sessions held). A batch whose objects stay under the threshold rarely
    sets one off; the checks beyond it start at the next wake-up, which comes at once if they
    are due.
    """
    threshold = gc.get_threshold()[0]
    return max(8, threshold // _OBJECTS_PER_CHECK) if threshold > 0 else sys.maxsize


#: A schedule entry: ``[due, sequence, lock, hold]``, where ``hold`` is the lock's token of the
#: acquire that put it here, so an entry of an earlier hold is recognised as dead. One list
#: per hold, popped when due and pushed back by its check: a check allocates no entry of its
#: own, which would live for a whole interval (long enough to reach the collector's oldest
#: generation, 10,000 of them per interval with 10,000 locks held). The sequence keeps
#: entries of equal due times from comparing their locks.
_Entry = list[Any]


class AsyncKeepalive:
    """Schedules and runs the checks of the held locks of one AsyncLocker."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._dead = 0
        self._sequence = itertools.count()
        self._timer = LoopTimer(self._fire)
        self._checks: set[asyncio.Task[None]] = set()

    def watch(self, lock: AsyncLock, hold: object, delay: float) -> None:
        """Check ``lock`` in ``delay`` seconds, and from then on every interval while held."""
        loop = asyncio.get_running_loop()
        self._push(loop, [loop.time() + delay, 0, lock, hold])

    def _push(self, loop: asyncio.AbstractEventLoop, entry: _Entry) -> None:
        """Put ``entry`` (its due time set) on the schedule."""
        entry[1] = next(self._sequence)
        heapq.heappush(self._heap, entry)
        self._timer.arm_by(loop, entry[0])

    def unwatch(self) -> None:
        """Count one entry as dead (its lock was released or lost)."""
        self._dead += 1
        if self._dead > 64 and self._dead * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2]._hold is entry[3]]
            heapq.heapify(self._heap)
            self._dead = 0

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: start the checks of the locks due now, then arm for the next one."""
        checks = self._checks
        try:
            now = loop.time() + _BATCH_WINDOW
            room = _batch_limit()
            # self._heap each time: a check task run eagerly may compact it into a new list.
            while self._heap:
                entry = self._heap[0]
                if entry[2]._hold is not entry[3]:
                    heapq.heappop(self._heap)
                    self._dead = max(0, self._dead - 1)
                    continue
                if entry[0] > now or not room:
                    break
                room -= 1
                heapq.heappop(self._heap)
                checks.add(loop.create_task(self._check(loop, entry)))
        finally:
            # Whatever happened above, the schedule goes on: the keepalive must not die.
            if self._heap:
                self._timer.arm_by(loop, max(self._heap[0][0], loop.time()))

    async def _check(self, loop: asyncio.AbstractEventLoop, entry: _Entry) -> None:
        try:
            lock: AsyncLock = entry[2]
            hold = entry[3]
            session = lock._session
            if lock._hold is not hold or session is None:
                return
            mutex = session.mutex
            if mutex.locked():
                # A release is under way on this session; it settles the question itself.
                entry[0] = loop.time() + _BUSY_RETRY
                self._push(loop, entry)
                return
            try:
                # acquire()/release() rather than ``async with``: two coroutines less a check.
                await mutex.acquire()
                try:
                    if lock._hold is not hold:
                        return
                    row = await session.run(STILL_HELD, (lock._server_name,))
                finally:
                    mutex.release()
            except SessionLost as exc:
                if isinstance(exc.__cause__, asyncio.TimeoutError):
                    cause = LossCause.NO_ANSWER
                    message = (
                        f"the server did not answer the check within {session.read_timeout:g} s"
                    )
                else:
                    cause, message = LossCause.CONNECTION_LOST, f"the connection failed: {exc}"
                lock._declare_lost(session, LossReason.now(cause, message))
                return
            except StatementFailed as exc:
                message = f"the server refused the check: {exc}"
                lock._declare_lost(session, LossReason.now(LossCause.REFUSED, message, exc.code))
                return
            if still_held(row):
                entry[0] = loop.time() + lock._held_interval
                self._push(loop, entry)
            else:
                lock._declare_lost(session, LossReason.now(LossCause.NOT_HELD, NOT_STILL_HELD))
        finally:
            # Here rather than a done callback: no callback handle per check.
            self._checks.discard(asyncio.current_task(loop))

    async def stop(self) -> None:
        """Stop the timer and every check under way (their sessions are closed)."""
        self._timer.cancel()
        tasks = list(self._checks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # A task cancelled before it ever ran did not take itself out.
        self._checks.clear()
        self._heap.clear()
        self._dead = 0
