"""The thread that runs user callbacks (``on_lost``), apart from the keepalive's checks.

A callback is user code: it may be slow, block, raise, or call :func:`sys.exit`. Run on the
keepalive thread it could delay or end the checks of every other lock, so the keepalive only
hands callbacks over; one thread per Locker runs them in order, started on demand and ended
after a short idle time, like the keepalive thread.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable

from .log import logger

__all__ = ["Dispatcher"]


class Dispatcher:
    """Runs callables one at a time, in the order submitted, on a daemon thread.

    :param name: the thread's name.
    :param linger: seconds the thread waits with nothing to run before it exits.
    """

    def __init__(self, name: str, linger: float = 0.25) -> None:
        self.name = name
        self.linger = linger
        # The plain lock for ``with`` (see Keepalive: Condition.__exit__ is interruptible).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque[Callable[[], object]] = collections.deque()
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The running thread, if any."""
        thread = self._thread
        return thread if thread is not None and thread.is_alive() else None

    def submit(self, call: Callable[[], object]) -> None:
        """Run ``call()`` soon on the dispatcher's thread; returns at once."""
        with self._lock:
            self._queue.append(call)
            # A thread an interrupt kept from starting would leave every callback queued for
            # good: it counts as none (see Keepalive._publish).
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread = thread
                thread.start()
            else:
                self._cond.notify()

    def _run(self) -> None:
        with self._lock:
            if self._thread is not threading.current_thread():
                return  # replaced before it ran (see Keepalive._run); that one runs the queue
        while True:
            with self._lock:
                if not self._queue:
                    self._cond.wait(self.linger)
                if not self._queue:
                    self._thread = None
                    return
                call = self._queue.popleft()
            try:
                call()
            except BaseException:  # SystemExit from a callback ends nothing
                # Even sys.exit() or a KeyboardInterrupt raised by a callback must not end
                # the thread with callbacks still queued.
                logger.exception("a callback raised; it is ignored")
