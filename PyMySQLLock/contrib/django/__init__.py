"""Django integration: Lockers built from ``DATABASES``, a decorator for jobs, a command.

* :func:`get_locker` gives the one Locker of this process for a database alias, built from
  the alias's settings as Django's MySQL backend reads them: ``HOST`` (a path starting with
  ``/`` is a socket), ``PORT`` (a string), ``USER``, ``PASSWORD``, ``NAME`` and every
  ``OPTIONS`` entry (``read_default_file``, ``ssl``, ``charset``, ``init_command``...). The
  Locker is lazy: it connects on first use, on connections of its own, never on Django's.
* :func:`locked` runs a management command's ``handle()`` or any periodic job under a lock,
  and skips, waits or raises when another process holds it.
* With ``"PyMySQLLock.contrib.django"`` in ``INSTALLED_APPS``, ``manage.py pymysqllock
  list|status|release`` shows and frees locks on the alias's server.

Named locks are not transactional: a lock released at the end of a function is released even
if the transaction the function opened has not committed yet (use ``transaction.atomic()``
inside the locked function, so that the commit happens before the release).
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any, Callable, TypeVar

from ...errors import InvalidArgumentError
from ...holds import validate_hold
from ...locker import Locker

__all__ = ["close_lockers", "connect_arguments", "get_locker", "locked"]

F = TypeVar("F", bound=Callable[..., Any])

_ON_BUSY = ("skip", "wait", "raise")
_LOCKERS: dict[str, Locker] = {}
_LOCKERS_MUTEX = threading.Lock()


def _backend_driver(database_module: Any) -> str:
    """The Locker's driver for the module Django's MySQL backend connects with.

    Django's backend imports ``MySQLdb``, which is PyMySQL itself after
    ``pymysql.install_as_MySQLdb()``.
    """
    name = str(getattr(database_module, "__name__", "MySQLdb"))
    return "pymysql" if name.startswith("pymysql") else "MySQLdb"


def connect_arguments(using: str = "default") -> tuple[str, dict[str, Any]]:
    """The driver and ``connect()`` arguments Django's MySQL backend uses for ``using``.

    They are the backend's own (``get_connection_params()``), less its result converters,
    which lock statements do not need. Nothing is connected.

    :param using: the ``DATABASES`` alias.
    :returns: the driver name and the keyword arguments.
    :raises InvalidArgumentError: if the alias is not a MySQL or MariaDB database.
    """
    from django.db import connections

    wrapper = connections[using]
    if wrapper.vendor != "mysql":
        raise InvalidArgumentError(
            f"DATABASES[{using!r}] is a {wrapper.vendor} database; PyMySQLLock needs MySQL or "
            "MariaDB (ENGINE django.db.backends.mysql)"
        )
    params = dict(wrapper.get_connection_params())
    params.pop("conv", None)
    module = sys.modules.get(type(wrapper).__module__)
    return _backend_driver(getattr(module, "Database", None)), params


def get_locker(using: str = "default") -> Locker:
    """The process-wide Locker of the database alias ``using`` (made on first call, lazily).

    :param using: the ``DATABASES`` alias.
    :returns: the Locker; it connects on first use.
    :raises InvalidArgumentError: if the alias is not a MySQL or MariaDB database.
    """
    locker = _LOCKERS.get(using)
    if locker is not None and not locker.closed:
        return locker
    with _LOCKERS_MUTEX:
        locker = _LOCKERS.get(using)
        if locker is None or locker.closed:
            driver, params = connect_arguments(using)
            locker = _LOCKERS[using] = Locker(driver=driver, lazy=True, **params)
        return locker


def close_lockers() -> None:
    """Close every Locker made by :func:`get_locker` (releasing what they hold)."""
    with _LOCKERS_MUTEX:
        lockers = list(_LOCKERS.values())
        _LOCKERS.clear()
    for locker in lockers:
        locker.close()


def locked(
    name: str | None = None,
    *,
    using: str = "default",
    on_busy: str = "skip",
    timeout: float | None = None,
    hold_at_least: float | None = None,
) -> Callable[[F], F]:
    """Run each call of the decorated function while holding a lock.

    Made for management commands (decorate ``handle``) and periodic jobs that every host
    runs: with the default ``on_busy="skip"`` one host runs the job and the others return
    ``None`` at once.

    :param name: the lock name; default ``"<module>.<qualified name>"`` of the function.
    :param using: the ``DATABASES`` alias whose server keeps the lock.
    :param on_busy: ``"skip"`` returns ``None`` without calling the function, ``"wait"``
        waits (for ``timeout`` seconds, default forever), ``"raise"`` raises
        :class:`~PyMySQLLock.LockTimeoutError` naming the holder.
    :param timeout: see ``on_busy``; as for :meth:`PyMySQLLock.Locker.synchronized`.
    :param hold_at_least: keep the lock this many seconds after it was taken even if the
        function ends sooner, so that a late host skips; as for
        :meth:`PyMySQLLock.Locker.synchronized` (the process must live that long).
    :returns: the decorator.
    :raises InvalidArgumentError: for an unknown ``on_busy`` or a bad ``hold_at_least``.
    """
    if on_busy not in _ON_BUSY:
        raise InvalidArgumentError(f"on_busy must be one of {', '.join(_ON_BUSY)}")
    validate_hold(hold_at_least)

    def decorator(function: F) -> F:
        lock_name = name or f"{function.__module__}.{function.__qualname__}"

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The Locker is looked up per call, not at import: settings may not be ready then.
            synchronized = get_locker(using).synchronized(
                lock_name, on_busy=on_busy, timeout=timeout, hold_at_least=hold_at_least
            )
            return synchronized(function)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
