"""The exceptions PyMySQLLock raises.

Every exception derives from :class:`LockError`, so ``except LockError`` catches anything the
library raises on purpose. Each one also derives from the builtin exception that matches its
meaning, so code that already handles :class:`TimeoutError`, :class:`ValueError` or
:class:`ConnectionError` keeps working without knowing about this library.

What a caller may need is an attribute, never only part of the message: ``server_code`` on
every exception, the lock's name, timeout and holder on :class:`LockTimeoutError`, the reason
on :class:`LockLostError`. Every exception survives pickling with its attributes, so it can
cross a process pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loss import LossReason

__all__ = [
    "AcquireCancelledError",
    "AcquireInterruptedError",
    "DeadlockError",
    "DriverNotInstalledError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LockAlreadyHeldError",
    "LockConnectionError",
    "LockError",
    "LockListingUnavailableError",
    "LockLostError",
    "LockNotHeldError",
    "LockTimeoutError",
    "PermissionDeniedError",
    "UnsupportedServerError",
]


class LockError(Exception):
    """Root of every exception raised by PyMySQLLock.

    .. versionadded:: 1.0
    """

    #: The server's error number when the server caused the error, else ``None``.
    server_code: int | None = None


class LockTimeoutError(LockError, TimeoutError):
    """The lock was not acquired within the timeout.

    Raised by ``with`` and by :meth:`~PyMySQLLock.Locker.synchronized`; ``acquire()`` returns
    ``False`` instead.

    :param message: the explanation.
    :param name: the lock name, as given to :meth:`~PyMySQLLock.Locker.lock`.
    :param timeout: the timeout that expired, in seconds (``-1``: forever).
    :param holder: the connection id of the session holding the lock when the timeout was
        reported, or ``None`` when nobody held it any more or the server did not tell.

    .. versionadded:: 1.0
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        timeout: float | None = None,
        holder: int | None = None,
    ) -> None:
        super().__init__(message)
        #: The lock name, as given to :meth:`~PyMySQLLock.Locker.lock`.
        self.name = name
        #: The timeout that expired, in seconds (``-1``: forever).
        self.timeout = timeout
        #: The holder's connection id (``CONNECTION_ID()``) when the timeout was reported.
        self.holder = holder


class LockNotHeldError(LockError, RuntimeError):
    """An operation needs the lock to be held by this :class:`~PyMySQLLock.Lock`, and it is not.

    .. versionadded:: 1.0
    """


class LockAlreadyHeldError(LockError, RuntimeError):
    """``acquire()`` was called on a :class:`~PyMySQLLock.Lock` that holds or is acquiring it.

    A ``Lock`` object is not re-entrant: a second ``GET_LOCK`` on another connection would wait
    for itself, and one on the same connection would need two releases.

    .. versionadded:: 1.0
    """


class LockLostError(LockError, RuntimeError):
    """The lock was held and is no longer: its server session ended or no longer holds it.

    :param message: the explanation.
    :param name: the lock name, as given to :meth:`~PyMySQLLock.Locker.lock`.
    :param reason: why and when the loss was found.

    .. versionadded:: 1.0
    """

    def __init__(
        self, message: str, *, name: str | None = None, reason: LossReason | None = None
    ) -> None:
        super().__init__(message)
        #: The lock name, as given to :meth:`~PyMySQLLock.Locker.lock`.
        self.name = name
        #: Why and when the loss was found (:class:`~PyMySQLLock.LossReason`).
        self.reason = reason


class DeadlockError(LockError, RuntimeError):
    """The server refused to wait because waiting would close a cycle of lock waits.

    MySQL reports error 3058, MariaDB error 1213. The server can only see a cycle among
    sessions that hold a lock while they wait; every PyMySQLLock lock waits on a dedicated
    session that holds nothing, so crossed waits between PyMySQLLock locks end at their
    timeouts instead. Take several locks in one fixed order, with timeouts.

    Also raised at once, before anything is sent, for an acquire without timeout of a name
    that its caller (the thread; in :mod:`PyMySQLLock.aio`, the task) already holds through
    another lock object of the same Locker: that wait would never end.

    .. versionadded:: 1.0
    """


class AcquireInterruptedError(LockError, RuntimeError):
    """A waiting ``acquire()`` was ended by the server or by :meth:`~PyMySQLLock.Lock.cancel`.

    Examples: ``KILL QUERY`` on the waiting session, ``max_statement_time`` or
    ``max_execution_time`` expiring during the wait.

    .. versionadded:: 1.0
    """


class AcquireCancelledError(AcquireInterruptedError):
    """The waiting ``acquire()`` was cancelled by :meth:`~PyMySQLLock.Lock.cancel`.

    .. versionadded:: 1.0
    """


class PermissionDeniedError(LockError, PermissionError):
    """The server refused an administrative statement for lack of privilege.

    For example ``KILL`` of another account's session; the message names the privilege needed.

    .. versionadded:: 1.0
    """


class UnsupportedServerError(LockError, RuntimeError):
    """The server does not support user-level locks in this configuration.

    Examples: error 1235 from some MariaDB Galera releases, 1836 on an Aurora reader.

    .. versionadded:: 1.0
    """


class LockListingUnavailableError(LockError, RuntimeError):
    """The server offers no way to list held locks; the message says how to enable one.

    .. versionadded:: 1.0
    """


class InvalidArgumentError(LockError, ValueError):
    """A parameter has the right type but a value that is not allowed (empty name, NaN, ...).

    .. versionadded:: 1.0
    """


class InvalidArgumentTypeError(LockError, TypeError):
    """A parameter has the wrong type (a lock name that is not a :class:`str`, ...).

    .. versionadded:: 1.0
    """


class DriverNotInstalledError(LockError, ImportError):
    """The requested (or any supported) database driver cannot be imported.

    .. versionadded:: 1.0
    """


class LockConnectionError(LockError, ConnectionError):
    """Connecting to the server failed, or the connection broke while no lock depended on it.

    The driver's own exception is kept as ``__cause__``. Messages never include passwords.

    .. versionadded:: 1.0
    """
