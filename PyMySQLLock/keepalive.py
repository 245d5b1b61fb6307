"""The keepalive: one daemon thread per Locker that checks every held lock on its own session.

Each held lock is checked once per refresh interval with a statement that proves the session
still holds it. The checks are scheduled by due time, so 1,000 locks acquired over a second are
checked spread over each interval instead of in one burst. The thread starts with the first
held lock and ends after the last one has been released for :attr:`Keepalive.linger` seconds,
so a warm acquire/release loop does not pay for a thread start per cycle. Acquiring and
releasing hand locks to the thread through a queue and, in the usual case, take no lock the
thread holds: they never wait for a round of checks to end.

The thread guards every other lock, so nothing may end it: a check that raises anything (a
driver bug, garbage from a socket, ``SystemExit``) proves nothing and reports that one lock
lost; the scheduler's own waits are clamped so that no interval overflows the clock. Should the
thread end all the same, it reports every lock it watched lost on its way out and refuses to
watch more (see :meth:`Keepalive.watch`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import heapq
import itertools
import selectors
import threading
import time
from typing import Callable, Protocol, TypeVar

from .log import logger

__all__ = ["Keepalive", "KeepaliveDeadError", "Watched"]

T = TypeVar("T")

#: Seconds by which a check may run early to share a wake-up with the one before it.
_BATCH_WINDOW = 0.05
#: New entries that may wait for the thread's next wake-up before watch() wakes it to sort
#: them in (bounds the memory a fast loop leaves while another lock keeps the thread asleep).
_MAX_PENDING = 1024
#: ``Keepalive._wakes_at`` when there is no thread.
_ABSENT = float("inf")
#: poll(2) where there is one: registering a socket costs no system call, where epoll spends
#: two per check (add and remove) for a set of sockets that is new every round.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.DefaultSelector
)
#: Longest single wait of the thread: a refresh interval of 1e10 s must not overflow the
#: clock arithmetic of Condition.wait (an OverflowError there once ended the thread).
_MAX_WAIT = 3600.0


class KeepaliveDeadError(Exception):
    """Internal: the keepalive thread ended unexpectedly and watches nothing any more."""


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

    def _keepalive_failed(self, reason: str) -> None:
        """The keepalive could not prove it held: report it lost. Must not raise."""


class Keepalive:
    """Schedules the checks of one Locker's held locks on a single background thread.

    :param name: the thread's name.
    :param ping_timeout: seconds to wait for the answers to a round of checks.
    :param linger: seconds the thread waits with nothing to watch before it exits.
    :param on_death: called (from the dying thread) with the reason if the thread ever ends
        unexpectedly, after every watched object was told it is no longer checked.
    """

    def __init__(
        self,
        name: str,
        ping_timeout: float = 10.0,
        linger: float = 0.25,
        on_death: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.ping_timeout = ping_timeout
        self.linger = linger
        self.on_death = on_death
        self._init_state()

    def _init_state(self) -> None:
        # Taken as the plain lock (``with self._lock``), the condition only for wait and
        # notify: Condition.__enter__/__exit__ are Python code, and an interrupt landing in
        # __exit__ before the release would leave the lock held for good.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # (due, sequence, token, watched): the sequence breaks ties so that watched objects are
        # never compared; the token tells a live entry from one left by an earlier watch().
        # Only the keepalive thread touches the heap (and stop(), under the condition).
        self._heap: list[tuple[float, int, int, Watched]] = []
        # New entries, appended by watch() without taking the condition: acquirers must not
        # queue behind the keepalive thread (deque.append and popleft are atomic).
        self._pending: collections.deque[tuple[float, int, int, Watched]] = collections.deque()
        self._tokens: dict[int, int] = {}
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # When the thread wakes up by itself (monotonic seconds); 0.0 while it is awake, and
        # _ABSENT when there is no thread. It is written before the thread looks at _pending
        # one last time, and watch() reads it after appending, so that one of the two always
        # sees the other: either the thread picks the entry up before it sleeps, or watch()
        # sees when it will wake and wakes it sooner if the entry is due earlier.
        self._wakes_at = _ABSENT
        #: Why the thread died, once it has; watch() then refuses.
        self.dead: str | None = None
        # The batch being checked, so that a dying thread can report it too.
        self._batch: list[tuple[int, Watched]] = []

    @property
    def thread(self) -> threading.Thread | None:
        """The running keepalive thread, if any."""
        thread = self._thread
        return thread if thread is not None and thread.is_alive() else None

    def watch(self, watched: Watched, first_check_in: float) -> None:
        """Start checking ``watched``, the first time after ``first_check_in`` seconds.

        :param watched: the object whose ``_keepalive_start`` is called.
        :param first_check_in: seconds until the first check.
        :raises KeepaliveDeadError: if the thread died (nothing would check ``watched``).
        """
        token = next(self._sequence)
        self._tokens[id(watched)] = token
        self._publish((time.monotonic() + first_check_in, token, token, watched))

    def _publish(self, entry: tuple[float, int, int, Watched]) -> None:
        """Hand an entry to the thread through :attr:`_pending`."""
        self._pending.append(entry)
        # The common case ends here: the thread runs and wakes before the entry is due.
        # Otherwise (no thread, a later wake-up, or a backlog of entries to sort into the
        # heap), take the condition and start or wake the thread.
        if entry[0] < self._wakes_at or len(self._pending) > _MAX_PENDING:
            with self._lock:
                if self.dead is not None:
                    # Checked only here, where a thread would be started or woken: a dead
                    # thread left _wakes_at at _ABSENT, so every watch() comes this way.
                    with contextlib.suppress(ValueError):
                        self._pending.remove(entry)
                    raise KeepaliveDeadError(self.dead)
                if self._thread is None or not self._thread.is_alive():
                    # No thread, or one an interrupt kept from starting (it would never
                    # check anything, and stop() could not join it): start one. _wakes_at
                    # says "awake" only once it runs, so that until then every watch()
                    # comes here; the thread cannot write it before this lock is let go.
                    self._stopping = False
                    thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread = thread
                    thread.start()
                    self._wakes_at = 0.0
                else:
                    self._cond.notify()

    def unwatch(self, watched: Watched) -> None:
        """Stop checking ``watched``; a check already running finishes.

        Its heap entry is dropped lazily: when it comes due, or when the thread next sorts new
        entries in and dead ones outnumber the live ones.
        """
        self._tokens.pop(id(watched), None)
        # A lock released before the thread sorted its entry in (a short job) takes the entry
        # back, so that a fast loop leaves nothing behind. Another thread's entry, taken by
        # mistake in a race, is handed over again.
        try:
            entry = self._pending.pop()
        except IndexError:
            pass
        else:
            if entry[3] is not watched:
                self._publish(entry)
        if not self._tokens and _ABSENT > self._wakes_at > time.monotonic() + self.linger:
            # Wake the thread from a wait for a far-off check, so that it starts to linger
            # now and ends soon after the last lock is released.
            with self._lock:
                self._cond.notify()

    def stop(self) -> None:
        """Stop watching everything and end the thread (joined unless called from it)."""
        with self._lock:
            self._stopping = True
            self._heap.clear()
            self._pending.clear()
            self._tokens.clear()
            thread = self._thread
            self._cond.notify()
        # A thread that never started (see _publish) cannot be joined, and has nothing to end.
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join()

    def _live(self, entry: tuple[float, int, int, Watched]) -> bool:
        return self._tokens.get(id(entry[3])) == entry[2]

    def _take_pending(self) -> bool:
        """Move the entries watch() appended into the heap; the caller holds the condition.

        :returns: whether there were any.
        """
        pending, heap = self._pending, self._heap
        if not pending:
            return False
        while pending:
            entry = pending.popleft()
            if self._live(entry):
                heapq.heappush(heap, entry)
        if len(heap) > 2 * len(self._tokens) + 64:
            # A fast acquire/release loop leaves a dead entry per cycle behind.
            self._heap = [entry for entry in heap if self._live(entry)]
            heapq.heapify(self._heap)
        return True

    def _next_due(self) -> list[tuple[int, Watched]] | None:
        """Wait for the next due checks; ``None`` means the thread should exit."""
        idle_since: float | None = None
        with self._lock:
            while not self._stopping:
                self._take_pending()
                while self._heap and not self._live(self._heap[0]):
                    heapq.heappop(self._heap)
                now = time.monotonic()
                if not self._heap:
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.linger:
                        # Leave, unless watch() appended meanwhile; it sees _ABSENT otherwise
                        # and starts a new thread.
                        self._wakes_at = _ABSENT
                        if self._take_pending():
                            self._wakes_at = 0.0
                            continue
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
            self._wakes_at = _ABSENT
            self._thread = None
            return None

    def _wait_until(self, deadline: float) -> None:
        """Wait on the condition (whose lock the caller holds) until ``deadline`` or a notify.

        Nothing waits if watch() appended an entry after the caller last looked.
        """
        self._wakes_at = deadline
        if not self._pending:
            self._cond.wait(min(deadline - time.monotonic(), _MAX_WAIT))
        self._wakes_at = 0.0

    def _run(self) -> None:
        with self._lock:
            if self._thread is not threading.current_thread():
                # A real signal cut Thread.start() short after the thread was created, and a
                # later watch() started another one before this one ran: that one checks.
                return
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - reported by _die, never re-raised
            self._die(f"the keepalive thread failed: {exc!r}")

    def _die(self, reason: str) -> None:
        """Last words of a thread that must not end: report every watched object lost."""
        logger.critical("%s; every lock it watched is reported lost", reason, exc_info=True)
        with self._lock:
            self.dead = reason
            self._wakes_at = _ABSENT
            self._thread = None
            entries = [*self._heap, *self._pending]
            watched = [item for item in self._batch if self._tokens.get(id(item[1])) == item[0]]
            watched += [(e[2], e[3]) for e in entries if self._live(e)]
            self._heap.clear()
            self._pending.clear()
            self._tokens.clear()
        for _, item in dict.fromkeys(watched):
            self._fail(item, reason)
        if self.on_death is not None:
            try:
                self.on_death(reason)
            except BaseException:  # the thread is ending anyway
                logger.exception("keepalive on_death hook failed")

    def _loop(self) -> None:
        while True:
            batch = self._next_due()
            if batch is None:
                return
            self._batch = batch
            try:
                outcomes = self._check(batch)
            except BaseException as exc:  # one bad round must not end the thread
                # A failure outside the per-lock guards: no lock of the batch is proven held.
                logger.exception("keepalive round failed")
                outcomes = []
                for _, watched in batch:
                    self._fail(watched, f"the keepalive round failed: {exc!r}")
            self._batch = []
            with self._lock:
                if self._stopping:
                    continue
                for token, watched, delay in outcomes:
                    # A check that ends the watch (None) leaves the token alone: the lock
                    # was released or declared lost, which unwatched it, and a token found
                    # here now may already be a new watch() of the same lock. A stale entry
                    # pushed here after an unwatch() is dropped when it comes due.
                    if delay is not None and self._tokens.get(id(watched)) == token:
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
            try:
                fd = outcome.fileno()
            except BaseException:  # noqa: BLE001 - a broken socket: the read below tells
                fd = None
            if not isinstance(fd, int) or fd < 0 or fd in waiting:
                # No usable socket (unknown, or closed under us): read the answer now; a
                # broken connection fails there and reports the loss.
                outcomes.append((token, watched, self._guard(watched, outcome.finish)))
            else:
                waiting[fd] = (token, watched, outcome)
        if not waiting:
            return outcomes
        started = time.monotonic()
        try:
            with _Selector() as selector:
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
        except Exception:  # the probes still waiting expire below
            logger.exception("keepalive wait for answers failed")
        waited = time.monotonic() - started
        for token, watched, probe in waiting.values():
            self._guard(watched, functools.partial(probe.expire, waited))
            outcomes.append((token, watched, None))
        return outcomes

    def _guard(self, watched: Watched, step: Callable[[], T]) -> T | None:
        """Run one step of one lock's check; anything it raises reports that lock lost.

        ``BaseException``: a ``SystemExit`` or ``KeyboardInterrupt`` raised in this thread
        (by a driver hook, say) must not end the checks of every other lock.
        """
        try:
            return step()
        except BaseException as exc:  # see above
            logger.exception("keepalive check of %r failed", watched)
            self._fail(watched, f"its check failed: {exc!r}")
            return None

    @staticmethod
    def _fail(watched: Watched, reason: str) -> None:
        """Tell ``watched`` that it could not be proven held; nothing it raises escapes."""
        try:
            watched._keepalive_failed(reason)
        except BaseException:  # the last line of defence
            logger.exception("reporting the failed check of %r failed", watched)
