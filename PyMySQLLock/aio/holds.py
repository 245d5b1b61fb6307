"""Minimum holds for asyncio: keep a lock for some time after a fast job (``lockAtLeastFor``).

The asyncio twin of :mod:`PyMySQLLock.holds`, with its rules (``validate_hold``,
``hold_remaining``, ``keeps_hold``): the lock stays on its session, checked by the keepalive
as during the job, and a task of the AsyncLocker releases it when ``hold_at_least`` seconds
have passed since it was granted. Closing the AsyncLocker releases it at once; a process that
exits lets it go with its connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..errors import LockError
from ..holds import hold_remaining, keeps_hold

if TYPE_CHECKING:
    from .lock import AsyncLock

__all__ = ["end_run", "release_after"]

logger = logging.getLogger("PyMySQLLock")


async def release_after(lock: AsyncLock, acquired_at: float, hold: float) -> None:
    """Release ``lock`` once ``hold`` seconds have passed since ``acquired_at``.

    At once if they have; otherwise the lock stays held (and checked), and a task of the
    AsyncLocker releases it when they have. Returns without waiting for that.

    :param lock: a held lock.
    :param acquired_at: when it was granted (``time.monotonic()``).
    :param hold: the minimum hold in seconds.
    """
    remaining = hold_remaining(acquired_at, hold)
    if remaining <= 0:
        await lock.release()
        return
    logger.debug("lock %r kept for %.3f s more (minimum hold)", lock.name, remaining)
    # A task of the AsyncLocker releases it, not this one: this task may wait for it (see
    # PyMySQLLock.selfwait), and that wait ends with the hold.
    lock.locker._holders.disown(lock.server_name, lock)
    lock.locker._keep(_release_later(lock, lock._hold, remaining))


async def _release_later(lock: AsyncLock, hold: object, delay: float) -> None:
    await asyncio.sleep(delay)
    if lock._hold is not hold:
        return  # lost (the keepalive reported it) or released meanwhile
    try:
        await lock.release()
    except LockError as exc:
        logger.debug("end of the minimum hold of lock %r: %s", lock.name, exc)
    else:
        logger.debug("lock %r released at the end of its minimum hold", lock.name)


async def end_run(
    lock: AsyncLock, acquired_at: float, hold: float, error: BaseException | None
) -> None:
    """End a job's run under ``lock``: release it as ``async with`` would, or hold it on.

    As :func:`PyMySQLLock.holds.end_run`: with a ``hold`` and the lock still held, the lock
    stays held until ``hold`` seconds after ``acquired_at``, whether the job succeeded or not;
    otherwise it is released now, and a loss during the run raises
    :class:`~PyMySQLLock.LockLostError` unless the job itself raised (``error``).
    """
    if keeps_hold(hold, lock.locked()):
        await release_after(lock, acquired_at, hold)
    elif error is None:
        await lock.__aexit__(None, None, None)
    else:
        await lock.__aexit__(type(error), error, error.__traceback__)
