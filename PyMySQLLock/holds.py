"""Minimum holds: keep a lock for some time after a fast job, as ShedLock's ``lockAtLeastFor``.

A job installed on every host fires at slightly different moments on each, because their
clocks are not in step. If the first host's run is over before a late host's trigger fires, the
late host finds the lock free and runs the job a second time. Holding the lock until at least
``hold_at_least`` seconds after it was taken makes the late trigger find it busy, and skip.

The hold needs no table and no clock: the lock simply stays on its session, checked by the
keepalive as during the job, and is released by the Locker's keepalive thread when the time is
up (measured on this host's monotonic clock from the moment the lock was granted). Closing the
Locker releases it at once. The process must live until then: a process that exits lets its
locks go with its connections.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, LockError
from .keepalive import KeepaliveDeadError
from .log import logger
from .timeouts import _number

if TYPE_CHECKING:
    from .lock import Lock

__all__ = ["MAX_HOLD", "end_run", "hold_remaining", "keeps_hold", "release_after", "validate_hold"]

#: The longest minimum hold: one day (a longer one is a schedule, not a hold).
MAX_HOLD = 86400.0
#: Seconds before trying again when the lock's session is busy (the keepalive's own check).
_BUSY_RETRY = 0.05


def validate_hold(value: Any, what: str = "hold_at_least") -> float:
    """Check a minimum hold.

    :param value: ``None`` (no hold) or seconds from 0 to :data:`MAX_HOLD`.
    :param what: the argument's name, for the message.
    :returns: the seconds (0.0 for ``None``).
    :raises InvalidArgumentTypeError: for a non-number or a bool.
    :raises InvalidArgumentError: for NaN, a negative number or more than a day.
    """
    if value is None:
        return 0.0
    number = _number(value, what)
    if math.isnan(number) or not 0 <= number <= MAX_HOLD:
        raise InvalidArgumentError(
            f"{what} must be between 0 and {MAX_HOLD:.0f} seconds (one day), not {value!r}"
        )
    return number


def hold_remaining(acquired_at: float, hold: float) -> float:
    """Seconds the lock must still be held (0 or less: release it now).

    Shared by the blocking and the asyncio holds: measured on this host's monotonic clock
    from the moment the lock was granted.

    :param acquired_at: when it was granted (``time.monotonic()``).
    :param hold: the minimum hold in seconds.
    """
    return acquired_at + hold - time.monotonic()


def keeps_hold(hold: float, locked: bool) -> bool:
    """Whether a job's run ends by keeping its lock (a minimum hold) rather than releasing it.

    Whether the job succeeded or not; a lock lost during the run has nothing to keep.

    :param hold: the minimum hold in seconds (0 for none).
    :param locked: whether the lock is still held.
    """
    return bool(hold) and locked


class _ReleaseAt:
    """Watched by the keepalive: releases the lock when it comes due."""

    __slots__ = ("lock",)

    def __init__(self, lock: Lock) -> None:
        self.lock = lock

    def _keepalive_start(self) -> float | None:
        session = self.lock._held_session()
        if session is None:
            return None  # released or lost meanwhile
        if session.mutex.locked():
            # Most likely this very thread's check of the lock waits for its answer on that
            # session: releasing now would wait for ourselves.
            return _BUSY_RETRY
        try:
            self.lock.release()
        except LockError as exc:
            logger.debug("end of the minimum hold of lock %r: %s", self.lock.name, exc)
        else:
            logger.debug("lock %r released at the end of its minimum hold", self.lock.name)
        return None

    def _keepalive_failed(self, reason: str) -> None:
        # The lock's own keepalive entry reports it lost; nothing is left to release here.
        logger.debug("minimum hold of lock %r ended early: %s", self.lock.name, reason)

    def __repr__(self) -> str:
        return f"<minimum hold of {self.lock!r}>"


def release_after(lock: Lock, acquired_at: float, hold: float) -> None:
    """Release ``lock`` once ``hold`` seconds have passed since ``acquired_at``.

    At once if they have; otherwise the lock stays held (and checked) and the Locker's
    keepalive thread releases it when they have.

    :param lock: a held lock.
    :param acquired_at: when it was granted (``time.monotonic()``).
    :param hold: the minimum hold in seconds.
    """
    remaining = hold_remaining(acquired_at, hold)
    if remaining <= 0:
        lock.release()
        return
    logger.debug("lock %r kept for %.3f s more (minimum hold)", lock.name, remaining)
    # The keepalive thread releases it, not this one: this thread may wait for it (see
    # PyMySQLLock.selfwait), and that wait ends with the hold.
    lock.locker._holders.disown(lock.server_name, lock)
    try:
        lock.locker._keepalive.watch(_ReleaseAt(lock), remaining)
    except KeepaliveDeadError:
        lock.release()  # no thread left to release it later: the lock was reported lost


def end_run(lock: Lock, acquired_at: float, hold: float, error: BaseException | None) -> None:
    """End a job's run under ``lock``: release it as a ``with`` block would, or hold it on.

    With a ``hold`` and the lock still held, the lock stays held until ``hold`` seconds after
    ``acquired_at`` (:func:`release_after`), whether the job succeeded or not. Otherwise it is
    released now, and a loss during the run raises :class:`~PyMySQLLock.LockLostError`,
    unless the job itself raised (``error``).

    :param lock: the lock the job ran under.
    :param acquired_at: when it was granted (``time.monotonic()``).
    :param hold: the minimum hold in seconds (0 for none).
    :param error: what the job raised, or ``None``.
    """
    if keeps_hold(hold, lock.locked()):
        release_after(lock, acquired_at, hold)
    elif error is None:
        lock.__exit__(None, None, None)
    else:
        lock.__exit__(type(error), error, error.__traceback__)
