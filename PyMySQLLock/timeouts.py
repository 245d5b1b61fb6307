"""Validation of timeouts and intervals, and the plan for waiting on the server.

``GET_LOCK`` differs between servers exactly where timeouts matter: MariaDB answers a negative
timeout with NULL at once and overflows above about 1.8e10 seconds, MySQL rounds fractions to
whole seconds. So the library never sends a negative or huge value: every wait is a series of
bounded server-side waits (chunks) whose length the server can honour.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "DEFAULT_REFRESH_INTERVAL",
    "FOREVER",
    "MAX_DRIVER_TIMEOUT",
    "MAX_REFRESH_INTERVAL",
    "MIN_REFRESH_INTERVAL",
    "chunk_seconds",
    "validate_driver_timeout",
    "validate_interval",
    "validate_timeout",
]

#: The ``timeout`` that means "wait until acquired", as in PyMySQLLock 0.2.0.
FOREVER = -1
#: Seconds between two keepalive checks of a held lock, unless set (PyMySQLLock 0.2.0's value).
DEFAULT_REFRESH_INTERVAL = 10
#: The shortest keepalive interval: each check is a round trip on the lock's connection, and
#: checking more often than every 10 ms only burns CPU on both ends.
MIN_REFRESH_INTERVAL = 0.01
#: The longest keepalive interval, one day: a held lock is checked at least daily (the server's
#: ``wait_timeout`` is 8 hours by default, so a longer interval risks losing the lock anyway),
#: and the keepalive's clock arithmetic stays far from float and timer limits.
MAX_REFRESH_INTERVAL = 86400.0
#: The longest connect/read timeout every driver accepts (PyMySQL's limit: one year).
MAX_DRIVER_TIMEOUT = 31536000.0
# Ints up to here convert to float exactly; larger ones take the general path.
_EXACT_INTS = 2**53


def _number(value: Any, what: str) -> float:
    # The exact types first: the numbers.Real check is slow, and this runs on every acquire.
    # bool is an int subclass, but acquire(True) is a mistake, not a one-second timeout.
    if type(value) not in (float, int) and (
        isinstance(value, bool) or not isinstance(value, numbers.Real)
    ):
        raise InvalidArgumentTypeError(f"{what} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        # An int or Fraction beyond float range: as good as infinite, with its sign.
        huge: Any = value
        number = math.inf if huge > 0 else -math.inf
    if math.isnan(number):
        raise InvalidArgumentError(f"{what} must not be NaN")
    return number


def validate_timeout(value: Any) -> float:
    """Check an acquire timeout.

    :param value: ``-1`` (wait forever), ``0`` (try once) or a positive number of seconds.
    :returns: the timeout in seconds, :data:`math.inf` for "forever".
    :raises InvalidArgumentTypeError: for a non-number or a bool.
    :raises InvalidArgumentError: for NaN or a negative number other than -1.
    """
    # The common case first, without the general checks: this runs on every acquire.
    kind = type(value)
    if (kind is float and value >= 0.0) or (kind is int and 0 <= value <= _EXACT_INTS):
        return float(value)
    number = _number(value, "timeout")
    if number == FOREVER:
        return math.inf
    if number < 0:
        raise InvalidArgumentError(
            f"timeout must be -1 (wait forever), 0 (try once) or positive, not {value!r}"
        )
    return number


def validate_interval(value: Any) -> float:
    """Check a keepalive refresh interval.

    :param value: a number of seconds from :data:`MIN_REFRESH_INTERVAL` (0.01) to
        :data:`MAX_REFRESH_INTERVAL` (86400, one day).
    :returns: the interval in seconds.
    :raises InvalidArgumentTypeError: for a non-number or a bool.
    :raises InvalidArgumentError: for NaN or a number outside those bounds.
    """
    kind = type(value)
    if (kind is float or kind is int) and MIN_REFRESH_INTERVAL <= value <= MAX_REFRESH_INTERVAL:
        return float(value)
    number = _number(value, "refresh_interval_secs")
    if not MIN_REFRESH_INTERVAL <= number <= MAX_REFRESH_INTERVAL:
        raise InvalidArgumentError(
            f"refresh_interval_secs must be between {MIN_REFRESH_INTERVAL} and "
            f"{MAX_REFRESH_INTERVAL:.0f} seconds (one day), not {value!r}"
        )
    return number


def validate_driver_timeout(value: Any, what: str) -> float:
    """Check a timeout handed to the driver (``ping_timeout``, ``connect_timeout``, ...).

    :param value: a positive number of seconds, at most :data:`MAX_DRIVER_TIMEOUT`.
    :param what: the parameter's name, for the message.
    :returns: the timeout in seconds.
    :raises InvalidArgumentTypeError: for a non-number or a bool.
    :raises InvalidArgumentError: for NaN, zero, a negative number or one above the maximum.
    """
    number = _number(value, what)
    if not 0 < number <= MAX_DRIVER_TIMEOUT:
        raise InvalidArgumentError(
            f"{what} must be a positive number of seconds up to {MAX_DRIVER_TIMEOUT:.0f} "
            f"(one year), not {value!r}"
        )
    return number


def chunk_seconds(remaining: float, max_chunk: float, fractional: bool) -> float:
    """How long the next server-side wait may be.

    :param remaining: seconds left until the caller's deadline (may be infinite).
    :param max_chunk: the longest single wait, kept below the connection's read timeout.
    :param fractional: whether the server honours fractions of a second (MariaDB); MySQL
        rounds them, so it gets whole seconds and the last fraction is waited by polling.
    :returns: the wait to send: 0 means "try once".
    """
    chunk = min(max(remaining, 0.0), max_chunk)
    if fractional:
        # Microseconds are the server's resolution; rounding down never overshoots.
        return math.floor(chunk * 1e6) / 1e6
    return float(math.floor(chunk))
