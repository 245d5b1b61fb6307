"""Deprecated: the connection factory of PyMySQLLock 0.2.0, kept so that importing it works.

Code written for 0.2.0 (its test suite among it) imports ``PyMySQLLock.connection_factory``.
A :class:`~PyMySQLLock.Locker` opens, pools and checks its connections itself, so nothing in
the library uses this module; :class:`ConnectionFactory` still opens one connection with the
settings the library's own connections get, for code that called it directly.

.. deprecated:: 1.0
   Use :class:`~PyMySQLLock.Locker`; it will be removed in 2.0.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from .drivers import resolve_adapter
from .errors import LockConnectionError

__all__ = ["ConnectionFactory"]

#: Seconds a connection made here may wait for the server (the Locker's default ping timeout).
_TIMEOUT = 10.0


class ConnectionFactory:
    """Opens driver connections from ``connect()`` arguments (deprecated).

    :param args: positional ``connect()`` arguments.
    :param mysql_lib_connector: a driver's ``connect`` callable; default the first installed
        driver, as for :class:`~PyMySQLLock.Locker`.
    :param kwargs: keyword ``connect()`` arguments.
    """

    def __init__(
        self, *args: Any, mysql_lib_connector: Callable[..., Any] | None = None, **kwargs: Any
    ) -> None:
        warnings.warn(
            "PyMySQLLock.connection_factory is deprecated: a Locker opens its connections "
            "itself; use PyMySQLLock.Locker",
            DeprecationWarning,
            stacklevel=2,
        )
        self.args = args
        self.kwargs = kwargs
        self._adapter = resolve_adapter(None, mysql_lib_connector)

    def new(self) -> Any:
        """Open a new connection (autocommit, ``utf8mb4``, bounded timeouts).

        :returns: the driver's connection; the caller closes it.
        :raises LockConnectionError: when the server cannot be reached with these arguments.
        """
        adapter = self._adapter
        try:
            return adapter.connect(self.args, self.kwargs, _TIMEOUT)
        except Exception as exc:
            if isinstance(exc, OSError) or adapter.is_driver_error(exc):
                raise LockConnectionError(
                    f"Could not connect to db with {adapter.name}: {exc}"
                ) from exc
            raise
