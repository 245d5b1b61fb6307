"""What a counting semaphore means, without I/O: its slots, their names, the order to try them.

Shared by the blocking :class:`~PyMySQLLock.Semaphore` and the asyncio
:class:`~PyMySQLLock.aio.semaphore.AsyncSemaphore`, so that a blocking and an asyncio holder of
one semaphore name use the same slot locks and count against the same ``limit``. See
:class:`~PyMySQLLock.Semaphore` for how a waiter waits.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Generic, Protocol, TypeVar

from .errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockAlreadyHeldError,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
)
from .names import validate_name
from .timeouts import validate_interval, validate_timeout

__all__ = [
    "MAX_LIMIT",
    "QUEUE_SUFFIX",
    "SLOT_MARK",
    "SemaphoreViews",
    "SlotLock",
    "already_held",
    "lost_slot",
    "not_acquired",
    "not_held",
    "queue_name",
    "slot_name",
    "try_order",
    "validate_limit",
]

#: The largest ``limit``: the head waiter holds one connection (and, blocking, one thread) per
#: slot while it waits.
MAX_LIMIT = 64
#: Between the semaphore's name and a slot number: slot 2 of ``reports`` is ``reports#2``.
SLOT_MARK = "#"
#: The turnstile's name is the semaphore's name plus this.
QUEUE_SUFFIX = "#queue"


def slot_name(name: str, slot: int) -> str:
    """:returns: the lock name of slot ``slot`` (1-based) of semaphore ``name``."""
    return f"{name}{SLOT_MARK}{slot}"


def queue_name(name: str) -> str:
    """:returns: the lock name of the turnstile on which the waiters of ``name`` queue."""
    return name + QUEUE_SUFFIX


def validate_limit(limit: object) -> int:
    """Check a semaphore's ``limit``.

    :returns: the limit.
    :raises InvalidArgumentTypeError: for a ``limit`` that is not an int.
    :raises InvalidArgumentError: for one outside 1 to :data:`MAX_LIMIT`.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidArgumentTypeError("limit must be an int")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def try_order(limit: int) -> list[int]:
    """The slot indexes (0-based) in the order an arrival tries them once.

    From a random slot on, so that arrivals do not all collide on slot 1.
    """
    start = random.randrange(limit)  # spreads arrivals, not security
    return [(start + offset) % limit for offset in range(limit)]


def already_held(name: str) -> LockAlreadyHeldError:
    """:returns: the error for an acquire of a semaphore object that holds or acquires a slot."""
    return LockAlreadyHeldError(f"semaphore {name!r} is already held")


def not_held(name: str) -> LockNotHeldError:
    """:returns: the error for a release or check of a semaphore object that holds no slot."""
    return LockNotHeldError(f"semaphore {name!r} is not held")


def lost_slot(name: str, slot: str) -> LockLostError:
    """:returns: the error for a semaphore whose slot ``slot`` (a lock name) was lost."""
    return LockLostError(f"semaphore {name!r} lost its slot {slot!r}")


def not_acquired(name: str, limit: int, timeout: float) -> LockTimeoutError:
    """:returns: the error of a ``with`` block whose semaphore was not acquired in time."""
    shown = "ever" if math.isinf(timeout) else f"{timeout} s"
    return LockTimeoutError(f"semaphore {name!r} (limit {limit}) was not acquired within {shown}")


class SlotLock(Protocol):
    """What the views below need of a slot's lock, blocking or asyncio."""

    @property
    def name(self) -> str:
        """The slot's lock name."""

    @property
    def lost(self) -> bool:
        """Whether it was lost."""

    def locked(self) -> bool:
        """Whether it is held."""


L = TypeVar("L", bound=SlotLock)


class SemaphoreViews(Generic[L]):
    """The arguments, slot locks and state views of a semaphore, shared by both APIs.

    :param make_lock: the Locker's ``lock()``, blocking or asyncio, to make the slot locks.
    :param name: the semaphore's name, and the other arguments: see
        :class:`~PyMySQLLock.Semaphore`.
    """

    def __init__(
        self,
        make_lock: Callable[..., L],
        name: str,
        limit: int,
        timeout: float,
        refresh_interval_secs: float,
        on_lost: Callable[..., Any] | None,
    ) -> None:
        validate_limit(limit)
        if on_lost is not None and not callable(on_lost):
            raise InvalidArgumentTypeError("on_lost must be a callable or None")
        self._name = validate_name(name)
        self._limit = limit
        self._timeout = validate_timeout(timeout)
        self._interval = validate_interval(refresh_interval_secs)
        self._on_lost = on_lost
        self._held: L | None = None
        self._last: L | None = None
        self._slots = [
            make_lock(slot_name(self._name, number), on_lost=self._slot_lost)
            for number in range(1, limit + 1)
        ]
        self._turnstile = make_lock(queue_name(self._name))

    def _acquire_args(
        self, timeout: float | None, refresh_interval_secs: float | None
    ) -> tuple[float, float]:
        """:returns: an acquire's timeout and interval, the defaults for ``None``."""
        seconds = self._timeout if timeout is None else validate_timeout(timeout)
        interval = (
            self._interval
            if refresh_interval_secs is None
            else validate_interval(refresh_interval_secs)
        )
        return seconds, interval

    @property
    def name(self) -> str:
        """The name given to ``semaphore()``."""
        return self._name

    @property
    def limit(self) -> int:
        """How many holders the semaphore admits at once."""
        return self._limit

    @property
    def slot(self) -> int | None:
        """The number (1-based) of the slot this object holds, or ``None``."""
        held = self._held
        return None if held is None else self._slots.index(held) + 1

    @property
    def slot_lock(self) -> L | None:
        """The lock of the held slot (for its name or connection id)."""
        return self._held

    @property
    def lost(self) -> bool:
        """Whether the slot was held and then lost, since the last ``acquire()``."""
        last = self._last
        return last is not None and last.lost

    def locked(self) -> bool:
        """:returns: whether this object holds a slot that is not known to be lost."""
        held = self._held
        return held is not None and held.locked()

    def ensure_held(self) -> None:
        """Raise unless a slot is held; call it before each step of the protected work.

        :raises LockLostError: if the slot was held and has been lost.
        :raises LockNotHeldError: if no slot is held.
        """
        last = self._last
        if last is not None and last.lost:
            raise lost_slot(self._name, last.name)
        if self._held is None:
            raise not_held(self._name)

    def _slot_lost(self, slot: L) -> Any:
        # The slot lock calls this; an asyncio lock runs a coroutine it returns as a task.
        return None if self._on_lost is None else self._on_lost(self)

    def __repr__(self) -> str:
        state = f"slot {self.slot}" if self._held is not None else "idle"
        return f"<{type(self).__name__} {self._name!r} limit={self._limit} {state}>"
