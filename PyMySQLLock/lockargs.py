"""The checks of a lock's constructor arguments, shared by the blocking and the asyncio locks.

Both take the same arguments and must refuse the same values with the same errors; a fresh lock
per run of a job is the usual pattern (0.2.0's README), so the common arguments (an exact
:class:`str` name, the default timeout and interval) take the short way.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidArgumentTypeError
from .names import cached_server_name, server_name, validate_name
from .timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER, validate_interval, validate_timeout

__all__ = ["DEFAULT_INTERVAL", "lock_arguments"]

#: The default refresh interval as the float a lock keeps.
DEFAULT_INTERVAL = float(DEFAULT_REFRESH_INTERVAL)


def lock_arguments(
    name: Any, namespace: str | None, timeout: Any, refresh_interval_secs: Any, on_lost: Any
) -> tuple[str, str, float, float]:
    """Check a lock's arguments.

    :param name: the lock name.
    :param namespace: the Locker's namespace.
    :param timeout: the default timeout (``-1``: forever).
    :param refresh_interval_secs: the default seconds between keepalive checks.
    :param on_lost: the loss callback, or ``None``.
    :returns: ``(name, server name, timeout in seconds (inf: forever), interval)``.
    :raises InvalidArgumentTypeError: for a name that is not a :class:`str`, a non-number
        timeout or interval, or an ``on_lost`` that is not callable.
    :raises InvalidArgumentError: for an empty name or an out-of-range timeout or interval.
    """
    if type(name) is str and name:
        stored = cached_server_name(name, namespace)
    else:
        name = validate_name(name)
        stored = server_name(name, namespace)
    # Exactly the int defaults, compared by value (an identity test would rely on CPython
    # caching small ints); other types, Decimal(-1) among them, go through validation.
    seconds = math.inf if type(timeout) is int and timeout == FOREVER else validate_timeout(timeout)
    interval = (
        DEFAULT_INTERVAL
        if type(refresh_interval_secs) is int and refresh_interval_secs == DEFAULT_REFRESH_INTERVAL
        else validate_interval(refresh_interval_secs)
    )
    if on_lost is not None and not callable(on_lost):
        raise InvalidArgumentTypeError("on_lost must be a callable or None")
    return name, stored, seconds, interval
