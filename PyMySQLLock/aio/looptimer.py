"""One timer of the event loop standing for many times: the earliest of them.

The keepalive's schedule (a check per held lock) and a pool's read deadlines (one per
statement under way) each keep a single ``call_at`` timer instead of one per lock or statement:
a timer armed and cancelled per statement or check would cost a timer object and a heap
entry in the loop each time. Whoever owns the timer arms it *by* a time: it moves only when
the new time is earlier than the one it is armed for.
"""

from __future__ import annotations

import asyncio
import math
from typing import Callable

__all__ = ["LoopTimer"]


class LoopTimer:
    """A ``call_at`` timer that calls ``callback(loop)`` at the earliest time it was armed by.

    :param callback: called on the loop when the timer fires; the timer is unarmed by then,
        so the callback may arm it again.
    """

    __slots__ = ("_callback", "_handle", "_loop", "due")

    def __init__(self, callback: Callable[[asyncio.AbstractEventLoop], None]) -> None:
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The loop time it fires at; infinity while not armed.
        self.due = math.inf

    def arm_by(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Make the timer fire at ``when`` (loop time) at the latest."""
        # A timer of another (closed) loop would never fire: arm on this one then.
        if when < self.due or loop is not self._loop:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = loop.call_at(when, self._fire, loop)
            self._loop = loop
            self.due = when

    def cancel(self) -> None:
        """Unarm the timer."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self.due = None, math.inf

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle, self.due = None, math.inf
        self._callback(loop)
