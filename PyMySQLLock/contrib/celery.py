"""Celery: one run of a task at a time, across every worker, optionally per key.

Tasks made with ``base=LockedTask`` run while holding a lock named after the task (plus a key
derived from the arguments, when ``lock_key`` is set). A lock is held by the worker's server
session, so a worker that is killed, runs out of memory or loses its network frees the lock the
moment the server sees its connection end: no expiry to tune, no stuck lock to clean up.

::

    locker = Locker(host=..., user=..., password=..., lazy=True)


    @app.task(
        base=LockedTask,
        locker=locker,
        lock_key=lambda account_id: str(account_id),
        lock_on_busy="retry",
        lock_retry_countdown=30,
    )
    def sync_account(account_id): ...

Options, set as ``@app.task(...)`` keywords or as attributes of a subclass:

``locker``
    The :class:`~PyMySQLLock.Locker`, or a function returning it (called on each run).
``lock_name``
    The lock's base name; default the task's name.
``lock_key``
    A function of the task's arguments returning a :class:`str`; the lock is then
    ``"<name>:<key>"``, so runs with different keys go on in parallel.
``lock_on_busy``
    ``"skip"`` (default: return ``None`` at once), ``"retry"`` (``self.retry()`` after
    ``lock_retry_countdown`` seconds, within the task's ``max_retries``) or ``"wait"``
    (for ``lock_timeout`` seconds, default forever; then
    :class:`~PyMySQLLock.LockTimeoutError`).
``lock_hold_at_least``
    Keep the lock until this many seconds after it was taken, even when the run ends sooner,
    so that the same periodic task sent a little later (another beat, a skewed clock) is
    skipped; as ``hold_at_least`` of :meth:`~PyMySQLLock.Locker.synchronized`. The worker must
    live until then.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable

from celery import Task

from ..errors import InvalidArgumentError, InvalidArgumentTypeError
from ..holds import end_run, validate_hold
from ..locker import Locker

__all__ = ["LockedTask"]

logger = logging.getLogger("PyMySQLLock")

_ON_BUSY = ("skip", "retry", "wait")


def _plain(owner: type, attribute: str) -> Any:
    """An attribute as it was set, never bound as a method.

    A function given to ``@app.task(lock_key=...)`` becomes a class attribute, and reading it
    through the task would bind it.
    """
    value = inspect.getattr_static(owner, attribute)
    return value.__func__ if isinstance(value, (staticmethod, classmethod)) else value


class LockedTask(Task):  # type: ignore[misc] # Celery ships no types
    """A Celery task base class whose runs hold a lock; see the module documentation."""

    locker: Locker | Callable[[], Locker] | None = None
    lock_name: str | None = None
    lock_key: Callable[..., str] | None = None
    lock_on_busy: str = "skip"
    lock_timeout: float | None = None
    lock_retry_countdown: float = 10.0
    lock_hold_at_least: float | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check the options when the task class is made (at import), not at its first run."""
        super().__init_subclass__(**kwargs)
        if cls.lock_on_busy not in _ON_BUSY:
            raise InvalidArgumentError(f"lock_on_busy must be one of {', '.join(_ON_BUSY)}")
        validate_hold(cls.lock_hold_at_least, "lock_hold_at_least")
        key = _plain(cls, "lock_key")
        if key is not None and not callable(key):
            raise InvalidArgumentTypeError("lock_key must be a function of the task's arguments")

    def lock_name_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The lock a run with these arguments takes.

        :param args: the task's positional arguments.
        :param kwargs: the task's keyword arguments.
        :returns: ``lock_name`` (default the task name), plus ``":" + lock_key(...)``.
        """
        base = self.lock_name or self.name
        key_function = _plain(type(self), "lock_key")
        if key_function is None:
            return str(base)
        key = key_function(*args, **kwargs)
        if not isinstance(key, str):
            raise InvalidArgumentTypeError(
                f"lock_key of task {self.name} returned {type(key).__name__}, not str"
            )
        return f"{base}:{key}"

    def _locker(self) -> Locker:
        source = _plain(type(self), "locker")
        locker = source if isinstance(source, Locker) or source is None else source()
        if not isinstance(locker, Locker):
            raise InvalidArgumentTypeError(
                f"task {self.name}: locker must be a Locker or a function returning one"
            )
        return locker

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task while holding its lock, or skip, retry or wait when it is busy."""
        name = self.lock_name_for(args, kwargs)
        waits = self.lock_on_busy == "wait"
        timeout = (-1 if self.lock_timeout is None else self.lock_timeout) if waits else 0
        lock = self._locker().lock(name, timeout=timeout)
        if not lock.acquire():
            if self.lock_on_busy == "skip":
                logger.info("skipped task %s: lock %r is busy", self.name, name)
                return None
            if self.lock_on_busy == "retry":
                logger.info(
                    "task %s retries in %s s: lock %r is busy",
                    self.name,
                    self.lock_retry_countdown,
                    name,
                )
                raise self.retry(countdown=self.lock_retry_countdown)
            raise lock._timeout_error(f"lock {name!r} was not acquired within {timeout} s")
        acquired_at = time.monotonic()
        hold = validate_hold(self.lock_hold_at_least, "lock_hold_at_least")
        # Released as a with block would (a loss during the run raises LockLostError once the
        # task has returned, unless the task itself raised), or held on for a minimum hold.
        try:
            result = super().__call__(*args, **kwargs)
        except BaseException as exc:
            end_run(lock, acquired_at, hold, exc)
            raise
        end_run(lock, acquired_at, hold, None)
        return result
