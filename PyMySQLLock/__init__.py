"""PyMySQLLock: named locks shared by every process that uses the same MySQL or MariaDB server.

>>> from PyMySQLLock import Locker
>>> locker = Locker(host="localhost", user="app", password="...", database="app")  # doctest: +SKIP
>>> with locker.lock("nightly-report", timeout=10):  # doctest: +SKIP
...     run_report()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from .version import __version__

if TYPE_CHECKING:
    from .election import Election, Term
    from .listing import LockInfo
    from .lock import Lock
    from .locker import Locker
    from .loss import LossCause, LossReason
    from .semaphore import Semaphore

# The classes below are imported on first use (PEP 562): a process that needs only some of the
# package, such as the ``pymysqllock`` command line run by cron, does not pay for the rest.
# The errors and the version are cheap and come at once. tests/test_lazy.py keeps it so.
_LAZY = {
    "Election": "election",
    "Term": "election",
    "LockInfo": "listing",
    "Lock": "lock",
    "Locker": "locker",
    "LossCause": "loss",
    "LossReason": "loss",
    "Semaphore": "semaphore",
}


if not TYPE_CHECKING:
    # Hidden from type checkers, which take a module __getattr__ to mean that any name may
    # exist (PyMySQLLock.Lokcer would pass); they see the imports above instead.

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


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
