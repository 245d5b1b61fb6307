"""The keepalive: one daemon thread per Locker that checks every held lock on its own session.

Each held lock is checked once per refresh interval with a statement that proves the session
still holds it. The checks are scheduled by due time, so 1,000 locks acquired over a second are
checked spread over each interval instead of in one burst. The thread starts with the first
held lock and ends after the last one has been released for :attr:`Keepalive.linger` seconds,
so a warm acquire/release loop does not pay for a thread start per cycle.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import selectors
import threading
import time
from typing import Callable, Protocol, TypeVar

__all__ = ["Keepalive", "Watched"]

logger = logging.getLogger("PyMySQLLock")

T = TypeVar("T")

#: Seconds by which a check may run early to share a wake-up with the one before it.
_BATCH_WINDOW = 0.05


class Probe(Protocol):
    """A check that was sent and waits for its answer on a socket."""

    def fileno(self) -> int | None:
        """:returns: the socket the answer arrives on (``None``: unknown, read at once)."""

    def finish(self) -> float | None:
        """Read the answer; returns seconds until the next check, or ``None`` to stop."""

    def expire(self, waited: float) -> None:
        """Give up: no answer came within the ping timeout."""


class Watched(Protocol):
    """Something the keepalive checks: in practice a held :class:`~PyMySQLLock.Lock`."""

    def _keepalive_start(self) -> float | Probe | None:
        """Start one check.

        :returns: a :class:`Probe` waiting for its answer, or seconds until the next check,
            or ``None`` to stop watching.
        """


class Keepalive:
    """Schedules the checks of one Locker's held locks on a single background thread.

    :param name: the thread's name.
    :param ping_timeout: seconds to wait for the answers to a round of checks.
    :param linger: seconds the thread waits with nothing to watch before it exits.
    """

    def __init__(self, name: str, ping_timeout: float = 10.0, linger: float = 0.25) -> None:
        self.name = name
        self.ping_timeout = ping_timeout
        self.linger = linger
        self._init_state()

    def _init_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        # (due, sequence, token, watched): the sequence breaks ties so that watched objects are
        # never compared; the token tells a live entry from one left by an earlier watch().
        self._heap: list[tuple[float, int, int, Watched]] = []
        self._tokens: dict[int, int] = {}
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # When the waiting thread wakes up by itself (monotonic seconds): a new entry due later,
        # or a release while the thread already lingers, needs no wake-up. Waking the thread
        # on every acquire/release would cost a context switch per cycle.
        self._wakes_at = 0.0

    @property
    def thread(self) -> threading.Thread | None:
        """The running keepalive thread, if any."""
        return self._thread

    def watch(self, watched: Watched, first_check_in: float) -> None:
        """Start checking ``watched``, the first time after ``first_check_in`` seconds.

        :param watched: the object whose ``_keepalive_start`` is called.
        :param first_check_in: seconds until the first check.
        """
        with self._cond:
            token = next(self._sequence)
            self._tokens[id(watched)] = token
            entry = (time.monotonic() + first_check_in, token, token, watched)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._stopping = False
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread = thread
                thread.start()
            elif entry[0] < self._wakes_at:
                self._cond.notify()

    def unwatch(self, watched: Watched) -> None:
        """Stop checking ``watched``; a check already running finishes.

        Its heap entry is dropped lazily, when it comes due or when dead entries outnumber the
        live ones (a fast acquire/release loop leaves one per cycle).
        """
        with self._cond:
            self._tokens.pop(id(watched), None)
            if len(self._heap) > 2 * len(self._tokens) + 64:
                self._heap = [entry for entry in self._heap if self._live(entry)]
                heapq.heapify(self._heap)
            if not self._tokens and self._wakes_at > time.monotonic() + self.linger:
                # Wake the thread from a wait for a far-off check, so that it starts to linger
                # now and ends soon after the last lock is released.
                self._cond.notify()

    def stop(self) -> None:
        """Stop watching everything and end the thread (joined unless called from it)."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._tokens.clear()
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def reset_after_fork(self) -> None:
        """Forget everything in a forked child: the parent's thread does not exist there."""
        self._init_state()

    def _live(self, entry: tuple[float, int, int, Watched]) -> bool:
        return self._tokens.get(id(entry[3])) == entry[2]

    def _next_due(self) -> list[tuple[int, Watched]] | None:
        """Wait for the next due checks; ``None`` means the thread should exit."""
        idle_since: float | None = None
        with self._cond:
            while not self._stopping:
                while self._heap and not self._live(self._heap[0]):
                    heapq.heappop(self._heap)
                now = time.monotonic()
                if not self._heap:
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.linger:
                        break
                    self._wait_until(idle_since + self.linger)
                    continue
                idle_since = None
                due = self._heap[0][0]
                if due <= now:
                    # Checks due within the window run together, early: one wake-up serves
                    # many locks, which is most of the keepalive's CPU cost with 1,000 locks.
                    batch = []
                    while self._heap and self._heap[0][0] <= now + _BATCH_WINDOW:
                        entry = heapq.heappop(self._heap)
                        if self._live(entry):
                            batch.append((entry[2], entry[3]))
                    return batch
                self._wait_until(due)
            self._thread = None
            return None

    def _wait_until(self, deadline: float) -> None:
        """Wait on the condition (whose lock the caller holds) until ``deadline`` or a notify."""
        self._wakes_at = deadline
        self._cond.wait(deadline - time.monotonic())
        self._wakes_at = 0.0

    def _run(self) -> None:
        while True:
            batch = self._next_due()
            if batch is None:
                return
            outcomes = self._check(batch)
            with self._cond:
                for token, watched, delay in outcomes:
                    if self._tokens.get(id(watched)) != token or self._stopping:
                        continue
                    if delay is None:
                        del self._tokens[id(watched)]
                    else:
                        entry = (time.monotonic() + delay, next(self._sequence), token, watched)
                        heapq.heappush(self._heap, entry)

    def _check(self, batch: list[tuple[int, Watched]]) -> list[tuple[int, Watched, float | None]]:
        """Run a batch of checks: send them all, then wait for all the answers together.

        Waiting together bounds the round by one ping timeout however many sessions hang, so a
        hung server is noticed for every lock within its refresh interval plus the ping
        timeout.
        """
        outcomes: list[tuple[int, Watched, float | None]] = []
        waiting: dict[int, tuple[int, Watched, Probe]] = {}
        for token, watched in batch:
            outcome = self._guard(watched, watched._keepalive_start)
            if outcome is None or isinstance(outcome, (int, float)):
                outcomes.append((token, watched, outcome))
                continue
            fd = outcome.fileno()
            if fd is None or fd in waiting:
                outcomes.append((token, watched, self._guard(watched, outcome.finish)))
            else:
                waiting[fd] = (token, watched, outcome)
        if not waiting:
            return outcomes
        started = time.monotonic()
        with selectors.DefaultSelector() as selector:
            for fd in waiting:
                selector.register(fd, selectors.EVENT_READ)
            while waiting:
                left = started + self.ping_timeout - time.monotonic()
                if left <= 0:
                    break
                for key, _ in selector.select(left):
                    selector.unregister(key.fd)
                    token, watched, probe = waiting.pop(key.fd)
                    outcomes.append((token, watched, self._guard(watched, probe.finish)))
        waited = time.monotonic() - started
        for token, watched, probe in waiting.values():
            self._guard(watched, functools.partial(probe.expire, waited))
            outcomes.append((token, watched, None))
        return outcomes

    @staticmethod
    def _guard(watched: Watched, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except Exception:
            # A bug must not kill the thread that guards every other lock.
            logger.exception("keepalive check of %r failed", watched)
            return None
