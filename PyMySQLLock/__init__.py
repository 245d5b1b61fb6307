"""PyMySQLLock: named locks shared by every process that uses the same MySQL or MariaDB server.

>>> from PyMySQLLock import Locker
>>> locker = Locker(host="localhost", user="app", password="...", database="app")  # doctest: +SKIP
>>> with locker.lock("nightly-report", timeout=10):  # doctest: +SKIP
...     run_report()
"""

from __future__ import annotations

from .errors import (
    AcquireInterruptedError,
    DeadlockError,
    DriverNotInstalledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockAlreadyHeldError,
    LockConnectionError,
    LockError,
    LockListingUnavailableError,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
    UnsupportedServerError,
)
from .lock import Lock
from .locker import Locker
from .version import __version__

__all__ = [
    "AcquireInterruptedError",
    "DeadlockError",
    "DriverNotInstalledError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "Lock",
    "LockAlreadyHeldError",
    "LockConnectionError",
    "LockError",
    "LockListingUnavailableError",
    "LockLostError",
    "LockNotHeldError",
    "LockTimeoutError",
    "Locker",
    "UnsupportedServerError",
    "__version__",
]
