"""SQLAlchemy engines and URLs as the source of a Locker's connection settings.

A Locker opens its own connections (a lock must own its session), but it should open them
exactly as the application's engine does: the same DBAPI driver, credentials, TLS options and
``connect_args=``. The engine knows those only as the arguments it hands to the driver's
``connect()``; they are captured here at that point, through SQLAlchemy's public ``do_connect``
event, on a fresh pool of the engine's, before any network traffic.

:meth:`PyMySQLLock.Locker.from_engine` and :meth:`PyMySQLLock.Locker.from_url` (given a
SQLAlchemy ``URL``) use this module for the blocking drivers, and
:meth:`PyMySQLLock.aio.AsyncLocker.from_engine` and :meth:`~PyMySQLLock.aio.AsyncLocker.from_url`
for the asyncio ones; it imports SQLAlchemy, which ``import PyMySQLLock`` never does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine

from ..drivers import DRIVERS, one_of
from ..errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["ConnectArguments", "engine_arguments", "url_arguments"]

#: SQLAlchemy's DBAPI names (``dialect.driver``, the part after ``+``) and the Locker's.
DIALECT_DRIVERS = {driver.dialects[0]: driver.name for driver in DRIVERS}
#: The asyncio DBAPIs, for :class:`PyMySQLLock.aio.AsyncLocker` (a Locker refuses them).
ASYNC_DIALECT_DRIVERS = {"aiomysql": "aiomysql", "asyncmy": "asyncmy"}
_BACKENDS = ("mysql", "mariadb")
_BLOCKING = one_of([f"mysql+{dialect}" for dialect in DIALECT_DRIVERS])
_ASYNC = one_of([f"mysql+{dialect}" for dialect in ASYNC_DIALECT_DRIVERS])


@dataclass
class ConnectArguments:
    """What an engine passes to its driver's ``connect()``.

    :param driver: the Locker's name for the driver (``"pymysql"``, ``"MySQLdb"``...).
    :param args: positional arguments (SQLAlchemy's MySQL dialects pass none).
    :param kwargs: keyword arguments: the URL's, the dialect's and the engine's
        ``connect_args``.
    """

    driver: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {k: "***" if "pass" in k else v for k, v in self.kwargs.items()}
        return f"ConnectArguments(driver={self.driver!r}, kwargs={shown!r})"


class _Captured(Exception):
    """Raised by our ``do_connect`` listener to stop the connect and carry its arguments out."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.connect_args = args
        self.connect_kwargs = kwargs


_CAPTURING = threading.local()


def _driver(dialect: Any, what: str) -> tuple[str, bool]:
    """The Locker's driver name for a dialect, and whether it is asyncio.

    :raises InvalidArgumentError: for a database or DBAPI the Locker cannot use.
    """
    backend, name = str(dialect.name), str(dialect.driver)
    if backend not in _BACKENDS:
        raise InvalidArgumentError(
            f"{what} is for {backend}, not MySQL or MariaDB: PyMySQLLock needs a mysql:// or "
            "mariadb:// engine"
        )
    if name in DIALECT_DRIVERS:
        return DIALECT_DRIVERS[name], False
    if name in ASYNC_DIALECT_DRIVERS:
        return ASYNC_DIALECT_DRIVERS[name], True
    known = ", ".join(f"{backend}+{known}" for known in (*DIALECT_DRIVERS, *ASYNC_DIALECT_DRIVERS))
    raise InvalidArgumentError(
        f"{what} uses the {backend}+{name} dialect, whose driver PyMySQLLock does not support; "
        f"use one of {known}"
    )


def _check_kind(driver: str, is_async: bool, for_asyncio: bool) -> None:
    """Refuse an asyncio driver for a Locker, and a blocking one for an AsyncLocker."""
    if is_async and not for_asyncio:
        raise InvalidArgumentError(
            f"the {driver} driver is an asyncio one, and a Locker needs a blocking driver "
            f"({_BLOCKING}); for asyncio use "
            "PyMySQLLock.aio.AsyncLocker.from_engine() or .from_url()"
        )
    if for_asyncio and not is_async:
        raise InvalidArgumentError(
            f"the {driver} driver is a blocking one, and an AsyncLocker needs an asyncio "
            f"driver ({_ASYNC}); for a blocking driver use "
            "PyMySQLLock.Locker.from_engine() or .from_url()"
        )


def engine_arguments(engine: Any, *, for_asyncio: bool = False) -> ConnectArguments:
    """Learn how ``engine`` connects, without connecting.

    The arguments are captured where the engine hands them to its driver, before the driver
    is called: an asyncio engine's are read without an event loop.

    :param engine: a SQLAlchemy ``sqlalchemy.engine.Engine``, or an ``AsyncEngine``.
    :param for_asyncio: whether they are for an AsyncLocker (an asyncio driver) rather than a
        Locker (a blocking one).
    :returns: the driver and the arguments of its ``connect()``.
    :raises InvalidArgumentTypeError: if ``engine`` is not an engine.
    :raises InvalidArgumentError: for a database other than MySQL/MariaDB, an unsupported
        driver or one of the other kind, or an engine made with ``creator=`` (whose arguments
        are not visible).
    """
    sync_engine = getattr(engine, "sync_engine", engine)  # an AsyncEngine wraps a sync one
    if not isinstance(sync_engine, Engine):
        raise InvalidArgumentTypeError(
            f"engine must be a SQLAlchemy Engine or AsyncEngine, not {type(engine).__name__}"
        )
    driver, is_async = _driver(sync_engine.dialect, "the engine")
    _check_kind(driver, is_async, for_asyncio)

    def capture(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        if getattr(_CAPTURING, "active", False):
            raise _Captured(tuple(cargs), dict(cparams))
        return None  # another thread's real connect: let it through

    # A fresh pool with the engine's creator: the engine's own pool may hand out an idle
    # connection without calling the creator, and must not be disturbed.
    pool = sync_engine.pool.recreate()
    event.listen(sync_engine, "do_connect", capture)
    _CAPTURING.active = True
    try:
        connection = pool.connect()
    except _Captured as captured:
        kwargs = dict(captured.connect_kwargs)
        if for_asyncio and "db" in kwargs and "database" not in kwargs:
            # The asyncio dialects pass the database as db=, their drivers' own name; an
            # AsyncLocker's (and these docs') is database=, as the blocking dialects pass it.
            kwargs["database"] = kwargs.pop("db")
        return ConnectArguments(driver, captured.connect_args, kwargs)
    finally:
        _CAPTURING.active = False
        event.remove(sync_engine, "do_connect", capture)
        pool.dispose()
    connection.invalidate()  # pragma: no cover - only an engine with a custom creator= gets here
    raise InvalidArgumentError(  # pragma: no cover
        "the engine connects through its own creator= function, whose arguments PyMySQLLock "
        "cannot see: pass the connect arguments to Locker() instead"
    )


def url_arguments(url: Any, *, for_asyncio: bool = False) -> ConnectArguments:
    """Learn how an engine made from ``url`` would connect (no ``connect_args``).

    :param url: a SQLAlchemy ``sqlalchemy.engine.URL``; its password is used as it is
        (``str(url)`` would mask it as ``***``).
    :param for_asyncio: see :func:`engine_arguments`.
    :returns: see :func:`engine_arguments`.
    :raises InvalidArgumentError: see :func:`engine_arguments`.
    """
    if not isinstance(url, URL):
        raise InvalidArgumentTypeError(f"url must be a SQLAlchemy URL, not {type(url).__name__}")
    driver, is_async = _driver(
        url.get_dialect(), f"the URL {url.render_as_string(hide_password=True)!r}"
    )
    _check_kind(driver, is_async, for_asyncio)
    # A plain Engine, also for an asyncio dialect: only its arguments are read, and an
    # AsyncEngine would need greenlet for nothing.
    engine = create_engine(url)
    try:
        return engine_arguments(engine, for_asyncio=for_asyncio)
    finally:
        engine.dispose()
