"""Connection settings from URLs: ``mysql://user:password@host:port/database?option=value``.

Accepted schemes: ``mysql`` (driver chosen as by ``Locker(driver=None)``), and the
SQLAlchemy-style ``mysql+pymysql``, ``mysql+mysqlconnector`` and ``mysql+mysqldb`` (also
``mariadb`` and ``mariadb+...``), whose suffix picks the driver; for
:class:`PyMySQLLock.aio.AsyncLocker`, ``mysql+aiomysql`` and ``mysql+asyncmy``. User and
password are URL-decoded, so a password with ``@``, ``:`` or ``/`` is written percent-encoded.

Query options (the same names for every driver; the driver adapter translates them):
``unix_socket``, ``charset``, ``connect_timeout``, ``read_timeout``, ``ssl_mode`` (also spelt
``ssl-mode``; see :mod:`PyMySQLLock.tls`), ``ssl_ca``, ``ssl_cert``, ``ssl_key``,
``ssl_verify_cert``, ``ssl_verify_identity``, ``ssl_disabled``, plus the Locker's own
``namespace``, ``ping_timeout`` and ``pool_size``.

.. versionadded:: 1.0
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .drivers import DRIVERS, one_of
from .errors import InvalidArgumentError, InvalidArgumentTypeError
from .timeouts import validate_driver_timeout
from .tls import SslMode

__all__ = ["ConnectionSettings", "parse_url"]

_SCHEME_DRIVERS: dict[str, str | None] = {
    "": None,
    # The blocking drivers' dialect names come from the one registry of drivers.
    **{dialect: driver.name for driver in DRIVERS for dialect in driver.dialects},
    # asyncio drivers, for PyMySQLLock.aio.AsyncLocker.from_url
    "aiomysql": "aiomysql",
    "asyncmy": "asyncmy",
}
_BLOCKING_SCHEMES = [f"mysql+{driver.dialects[0]}://" for driver in DRIVERS]
_NUMBER_OPTIONS = frozenset({"connect_timeout", "read_timeout", "ping_timeout"})
_BOOL_OPTIONS = frozenset({"ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"})
_TEXT_OPTIONS = frozenset(
    {"unix_socket", "charset", "ssl_mode", "ssl_ca", "ssl_cert", "ssl_key", "namespace"}
)
_LOCKER_OPTIONS = frozenset({"namespace", "ping_timeout", "pool_size"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConnectionSettings:
    """What a URL says: the driver, ``connect()`` keyword arguments and Locker options.

    A plain class (compared by its fields, as a dataclass would be), not a dataclass:
    importing ``dataclasses`` was a noticeable share of a ``pymysqllock run`` that cron
    starts again and again (see ``PyMySQLLock.values``).

    :param driver: the driver name, or ``None`` for the default choice.
    :param connect_kwargs: driver-neutral ``connect()`` arguments.
    :param locker_options: ``namespace``, ``ping_timeout``, ``pool_size`` when given.
    """

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as a dataclass

    def __init__(
        self,
        driver: str | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        locker_options: dict[str, Any] | None = None,
    ) -> None:
        self.driver = driver
        self.connect_kwargs: dict[str, Any] = {} if connect_kwargs is None else connect_kwargs
        self.locker_options: dict[str, Any] = {} if locker_options is None else locker_options

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, ConnectionSettings):
            return NotImplemented
        return (self.driver, self.connect_kwargs, self.locker_options) == (
            other.driver,
            other.connect_kwargs,
            other.locker_options,
        )

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "password" else v) for k, v in self.connect_kwargs.items()}
        return f"ConnectionSettings(driver={self.driver!r}, connect_kwargs={shown!r})"


def _option(key: str, value: str) -> Any:
    if key in _BOOL_OPTIONS:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise InvalidArgumentError(f"URL option {key} must be true or false, not {value!r}")
    if key in _NUMBER_OPTIONS:
        try:
            number = float(value)
        except ValueError:
            raise InvalidArgumentError(f"URL option {key} must be a number") from None
        return validate_driver_timeout(number, f"URL option {key}")
    if key == "pool_size":
        try:
            return int(value)
        except ValueError:
            raise InvalidArgumentError("URL option pool_size must be an integer") from None
    if key == "ssl_mode":
        return SslMode.parse(value, "URL option ssl_mode").name
    if key in _TEXT_OPTIONS:
        return value
    known = sorted(_NUMBER_OPTIONS | _BOOL_OPTIONS | _TEXT_OPTIONS | {"pool_size"})
    raise InvalidArgumentError(f"unknown URL option {key!r}; known options: {', '.join(known)}")


def parse_url(url: str) -> ConnectionSettings:
    """Parse a connection URL.

    :param url: e.g. ``mysql+pymysql://app:s%40cret@db.example:3306/app?ssl_ca=/etc/ca.pem``.
    :returns: the settings.
    :raises InvalidArgumentTypeError: if ``url`` is not a :class:`str`.
    :raises InvalidArgumentError: for an unknown scheme, a bad port or an unknown option; the
        message never contains the password.
    """
    if not isinstance(url, str):
        raise InvalidArgumentTypeError(f"url must be a str, not {type(url).__name__}")
    if "#" in url:
        # A connection URL has no fragment: an unencoded "#" (in a password, say) would cut
        # the URL there, and what follows (the host, the options) would be dropped silently.
        raise InvalidArgumentError(
            "malformed connection URL: '#' starts a fragment; percent-encode it as %23 in the "
            "user and password"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's messages quote the network location, password included: never echo them.
        raise InvalidArgumentError(
            "malformed connection URL; percent-encode special characters in the user and "
            "password, and check the host and port"
        ) from None
    base, _, suffix = parts.scheme.lower().partition("+")
    if base not in ("mysql", "mariadb") or suffix not in _SCHEME_DRIVERS:
        raise InvalidArgumentError(
            f"unsupported URL scheme {parts.scheme!r}; use "
            f"{one_of(['mysql://', *_BLOCKING_SCHEMES])} (with AsyncLocker: "
            "mysql+aiomysql:// or mysql+asyncmy://)"
        )
    settings = ConnectionSettings(driver=_SCHEME_DRIVERS[suffix])
    kwargs = settings.connect_kwargs
    if parts.username is not None:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port is not None:
        kwargs["port"] = port
    database = unquote(parts.path.lstrip("/"))
    if database:
        kwargs["database"] = database
    for given, value in parse_qsl(parts.query, keep_blank_values=True):
        key = "ssl_mode" if given == "ssl-mode" else given
        parsed = _option(key, value)
        if key in _LOCKER_OPTIONS:
            settings.locker_options[key] = parsed
        else:
            kwargs[key] = parsed
    return settings
