"""The supported DB-API drivers: the one registry, and the choice of an adapter for a Locker.

Everything that differs between drivers lives in this package and nowhere else: how to connect
(and which options make a connection safe to hold a lock: autocommit, ``utf8mb4``, a read
timeout, no auto-reconnect), how to run one statement, how to tell a lost connection from a
server error, and how to let go of a connection inherited across ``fork()`` without touching the
parent's session. ``drivers/base.py`` states the contract an adapter fulfils; one module per driver
fulfils it.

:data:`DRIVERS` is the one list of drivers: ``Locker(driver=...)`` names, URL schemes
(:mod:`PyMySQLLock.config`), SQLAlchemy dialects (:mod:`PyMySQLLock.contrib.sqlalchemy`), the
command line's ``--driver`` help, pip extras (checked against ``setup.cfg``) and the test
suite's driver parametrization all read it. A fourth driver is one module and one line here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import DriverNotInstalledError, InvalidArgumentError, InvalidArgumentTypeError
from ..values import value
from .base import ConnectFunction, DbApiFacts, DriverAdapter
from .mysqlconnector import MySQLConnectorAdapter
from .mysqldb import MySQLdbAdapter
from .pymysql import PyMySQLAdapter

__all__ = [
    "DRIVERS",
    "DRIVER_NAMES",
    "ConnectFunction",
    "DbApiFacts",
    "Driver",
    "DriverAdapter",
    "MySQLConnectorAdapter",
    "MySQLdbAdapter",
    "PyMySQLAdapter",
    "one_of",
    "resolve_adapter",
]


@value
class Driver:
    """One supported driver, with every name it goes by.

    :param adapter: the adapter class; its ``name`` is the ``driver=`` name and the module
        imported, its ``extra`` the pip extra (``pip install PyMySQLLock[extra]``).
    :param package: the driver's distribution on PyPI.
    :param dialects: the names after ``mysql+`` in a URL or a SQLAlchemy dialect; the first is
        SQLAlchemy's.
    :param aliases: more spellings accepted by ``driver=`` (compared without case).
    :param short: a short id (test ids, tables).

    .. versionadded:: 1.0
    """

    adapter: type[DriverAdapter]
    package: str
    dialects: tuple[str, ...]
    aliases: tuple[str, ...]
    short: str

    @property
    def name(self) -> str:
        """The name ``driver=`` takes, which is also the module imported."""
        return self.adapter.name

    @property
    def extra(self) -> str:
        """The pip extra that installs the driver."""
        return self.adapter.extra


#: Every supported driver, in the order tried when none is named.
DRIVERS: tuple[Driver, ...] = (
    Driver(PyMySQLAdapter, "PyMySQL", ("pymysql",), (), "pymysql"),
    Driver(
        MySQLConnectorAdapter,
        "mysql-connector-python",
        ("mysqlconnector",),
        ("mysqlconnector", "mysql-connector", "mysql_connector"),
        "connector",
    ),
    Driver(MySQLdbAdapter, "mysqlclient", ("mysqldb", "mysqlclient"), ("mysqlclient",), "mysqldb"),
)

#: The driver names accepted by ``Locker(driver=...)``, in the order tried by default.
DRIVER_NAMES: tuple[str, ...] = tuple(driver.name for driver in DRIVERS)
_ADAPTERS: dict[str, type[DriverAdapter]] = {driver.name: driver.adapter for driver in DRIVERS}
_ALIASES = {
    alias: driver.name
    for driver in DRIVERS
    for alias in (driver.name.lower(), *driver.aliases)
    if alias != driver.name
}


def one_of(choices: Sequence[str]) -> str:
    """``"a, b or c"``: choices (driver names, URL schemes...) listed for a message or help."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def resolve_adapter(
    driver: Any = None, mysql_lib_connector: ConnectFunction | None = None
) -> DriverAdapter:
    """Pick the driver adapter for a :class:`~PyMySQLLock.Locker`.

    :param driver: ``None`` (the first importable of :data:`DRIVER_NAMES`), a driver name, or a
        :class:`DriverAdapter` instance.
    :param mysql_lib_connector: a connect callable; the module it comes from picks the adapter.
    :returns: a new adapter (or the given instance).
    :raises DriverNotInstalledError: when the driver (or every driver) cannot be imported.
    :raises InvalidArgumentError: for an unknown driver name or connect callable.
    :raises InvalidArgumentTypeError: when ``driver`` is neither a name nor an adapter.

    .. versionadded:: 1.0
    """
    if isinstance(driver, DriverAdapter):
        return driver
    if mysql_lib_connector is not None:
        if not callable(mysql_lib_connector):
            raise InvalidArgumentTypeError("mysql_lib_connector must be a callable")
        module = getattr(mysql_lib_connector, "__module__", "") or ""
        for name in DRIVER_NAMES:
            if module == name or module.startswith(name + "."):
                adapter = _ADAPTERS[name](mysql_lib_connector)
                adapter.module  # noqa: B018 - import now so a missing driver fails early
                return adapter
        raise InvalidArgumentError(
            f"mysql_lib_connector comes from module {module!r}; expected a connect function of "
            f"one of {', '.join(DRIVER_NAMES)}, or pass driver= with an adapter"
        )
    if driver is None:
        for name in DRIVER_NAMES:
            candidate = _ADAPTERS[name]()
            try:
                candidate.module  # noqa: B018
            except DriverNotInstalledError:
                continue
            return candidate
        first, *others = (entry.extra for entry in DRIVERS)
        raise DriverNotInstalledError(
            f"no MySQL driver is installed; install one with 'pip install PyMySQLLock[{first}]' "
            f"(or {', '.join(f'[{extra}]' for extra in others)})"
        )
    if not isinstance(driver, str):
        raise InvalidArgumentTypeError(
            f"driver must be a driver name or a DriverAdapter, not {type(driver).__name__}"
        )
    name = _ALIASES.get(driver.lower(), driver)
    if name not in _ADAPTERS:
        name = next((known for known in _ADAPTERS if known.lower() == name.lower()), name)
    if name not in _ADAPTERS:
        raise InvalidArgumentError(
            f"unknown driver {driver!r}; choose one of {', '.join(DRIVER_NAMES)}"
        )
    adapter = _ADAPTERS[name]()
    adapter.module  # noqa: B018 - fail in the constructor, not at the first acquire
    return adapter
