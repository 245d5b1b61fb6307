"""PyMySQLLock: named locks shared by every process that uses the same MySQL or MariaDB server.

>>> from PyMySQLLock import Locker
>>> locker = Locker(host="localhost", user="app", password="...", database="app")  # doctest: +SKIP
>>> with locker.lock("nightly-report", timeout=10):  # doctest: +SKIP
...     run_report()
"""

from __future__ import annotations

from .election import Election, Term
from .errors import (
    AcquireCancelledError,
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
    PermissionDeniedError,
    UnsupportedServerError,
)
from .listing import LockInfo
from .lock import Lock
from .locker import Locker
from .loss import LossCause, LossReason
from .semaphore import Semaphore
from .version import __version__

__all__ = [
    "AcquireCancelledError",
    "AcquireInterruptedError",
    "DeadlockError",
    "DriverNotInstalledError",
    "Election",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "Lock",
    "LockAlreadyHeldError",
    "LockConnectionError",
    "LockError",
    "LockInfo",
    "LockListingUnavailableError",
    "LockLostError",
    "LockNotHeldError",
    "LockTimeoutError",
    "Locker",
    "LossCause",
    "LossReason",
    "PermissionDeniedError",
    "Semaphore",
    "Term",
    "UnsupportedServerError",
    "__version__",
]
