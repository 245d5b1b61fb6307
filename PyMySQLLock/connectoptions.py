"""Checks of the driver ``connect()`` options a user passes to :class:`~PyMySQLLock.Locker`.

The driver adapters decide which options the library owns on its own connections (see
:meth:`PyMySQLLock.drivers.DriverAdapter.connect_options`); this module holds the checks that
are the same for every driver, without I/O: a value that would reach a driver or a clock is
checked here first, so that a wrong one is an :class:`~PyMySQLLock.InvalidArgumentError`
naming it, never a driver's bare ``ValueError`` or a negative timeout on the wire.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .errors import DriverNotInstalledError, InvalidArgumentError, InvalidArgumentTypeError
from .timeouts import validate_driver_timeout

__all__ = [
    "LIBRARY_CHARSET",
    "SECRET_OPTIONS",
    "SERVER_CHARSETS",
    "SessionStatement",
    "check_connect_options",
    "describe_target",
    "redact_secrets",
    "rejected_arguments",
    "session_statements",
    "without_session_options",
]

#: The character set of every connection the library opens. MariaDB keys a user lock by the
#: bytes of its name in the session's character set, so one fixed set makes one name one lock;
#: the ``mysql`` client's default (``utf8mb4`` on current servers) sends the same bytes.
LIBRARY_CHARSET = "utf8mb4"

#: The character sets MySQL 8 and MariaDB 10/11 know (``SHOW CHARACTER SET``), plus the
#: ``utf8`` alias. A name outside this list is a typo: refused with a clear message instead of
#: the driver's (or, with some drivers, no message at all).
SERVER_CHARSETS = frozenset(
    {
        "armscii8", "ascii", "big5", "binary", "cp1250", "cp1251", "cp1256", "cp1257",
        "cp850", "cp852", "cp866", "cp932", "dec8", "eucjpms", "euckr", "gb18030", "gb2312",
        "gbk", "geostd8", "greek", "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "latin1",
        "latin2", "latin5", "latin7", "macce", "macroman", "sjis", "swe7", "tis620", "ucs2",
        "ujis", "utf16", "utf16le", "utf32", "utf8", "utf8mb3", "utf8mb4",
    }
)  # fmt: skip

#: ``connect()`` options that would leave the library with a connection it cannot use.
_REFUSED = {
    "defer_connect": (
        "defer_connect=True is not supported: a Locker opens its connections itself, when a "
        "lock or a query needs one"
    ),
}
_MAX_PORT = 65535


#: A statement the library runs on a new connection in place of the driver, with its
#: parameters (``None``: none, so that a ``%`` in it is sent as written).
SessionStatement = tuple[str, "tuple[Any, ...] | None"]


def session_statements(kwargs: dict[str, Any]) -> list[SessionStatement]:
    """The statements that set the user's ``sql_mode`` (and then run ``init_command``).

    The drivers each send ``sql_mode`` their own way: mysqlclient and both asyncio drivers
    paste it into ``SET sql_mode=...`` as it is (a list of modes is a syntax error there, and
    a quote in it ends the string), PyMySQL and mysql-connector escape it. The library sends
    it itself, as a parameter, so that it means the same with every driver; ``init_command``
    comes after it, as the drivers order them, so that one that sets the mode still wins.
    With ``sql_mode`` given, the driver gets neither (``without_session_options()``).

    :param kwargs: the user's connect options.
    :returns: the statements, empty without ``sql_mode``.
    :raises InvalidArgumentTypeError: for an ``sql_mode`` that is not a str.
    """
    sql_mode = kwargs.get("sql_mode")
    if sql_mode is None:
        return []
    if not isinstance(sql_mode, str):
        raise InvalidArgumentTypeError(
            f"sql_mode must be a str such as 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES', "
            f"not {type(sql_mode).__name__}"
        )
    statements: list[SessionStatement] = [("SET sql_mode=%s", (sql_mode,))]
    init_command = kwargs.get("init_command")
    if init_command is not None:
        statements.append((init_command, None))
    return statements


def without_session_options(options: dict[str, Any]) -> None:
    """Remove from a driver's options what :func:`session_statements` sends instead."""
    if options.get("sql_mode") is not None:
        del options["sql_mode"]
        options.pop("init_command", None)


def _check_charset(value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"charset must be a str, not {type(value).__name__}")
    if value.lower() not in SERVER_CHARSETS:
        raise InvalidArgumentError(
            f"charset {value!r} is not a MySQL or MariaDB character set (PyMySQLLock's own "
            f"connections always use {LIBRARY_CHARSET}, so charset may be left out)"
        )


def _check_port(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"port must be an int, not {type(value).__name__}")
    if not 0 < value <= _MAX_PORT:
        raise InvalidArgumentError(f"port must be between 1 and {_MAX_PORT}, not {value!r}")


def check_connect_options(kwargs: dict[str, Any], timeout_names: Iterable[str]) -> None:
    """Check the user's ``connect()`` keyword arguments before any reach a driver.

    :param kwargs: the keyword arguments.
    :param timeout_names: the driver's keywords that take seconds (read, write, connect
        timeouts), checked like ``ping_timeout``.
    :raises InvalidArgumentTypeError: for a timeout, port or charset of the wrong type.
    :raises InvalidArgumentError: for an out-of-range timeout or port, an unknown charset, an
        option the library cannot work with (``defer_connect=True``), or an option file
        (``read_default_file``, ``option_files``) that is not a small regular file.
    """
    for name, why in _REFUSED.items():
        if kwargs.get(name):
            raise InvalidArgumentError(why)
    for name in timeout_names:
        value = kwargs.get(name)
        if value is not None:
            validate_driver_timeout(value, name)
    if "port" in kwargs and kwargs["port"] is not None:
        _check_port(kwargs["port"])
    charset = kwargs.get("charset")
    if charset:
        _check_charset(charset)
    session_statements(kwargs)  # checks sql_mode
    _check_option_files(kwargs)


#: The ``connect()`` options that name option files the driver reads itself.
_OPTION_FILE_KWARGS = ("read_default_file", "option_files")


def _check_option_files(kwargs: dict[str, Any]) -> None:
    """Refuse option files a driver would hang on (a FIFO) or read without end (a device)."""
    for key in _OPTION_FILE_KWARGS:
        value = kwargs.get(key)
        if not value:
            continue
        # mysql-connector's option_files is a file or a list of files.
        paths = value if isinstance(value, (list, tuple)) else [value]
        for path in paths:
            if isinstance(path, (str, os.PathLike)):
                from .optionfile import OptionFileError, check_driver_file  # only when given

                try:
                    check_driver_file(path)
                except OptionFileError as exc:
                    raise OptionFileError(f"{key}: {exc}") from None


#: The connect options that hold a secret, masked in every message the library writes.
SECRET_OPTIONS = ("password", "passwd", "password1", "password2", "password3")


def describe_target(kwargs: dict[str, Any]) -> str:
    """Where connections with these options go, for messages: ``host:port as user``.

    :param kwargs: the user's connect options.
    """
    if "unix_socket" in kwargs:
        where = f"socket {kwargs['unix_socket']}"
    elif "host" not in kwargs and "read_default_file" in kwargs:
        where = f"the server of {kwargs['read_default_file']}"
    else:
        where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 3306)}"
    user = kwargs.get("user")
    return where if user is None else f"{where} as {user}"


def redact_secrets(message: str, kwargs: dict[str, Any]) -> str:
    """``message`` with every secret of the connect options masked as ``***``.

    :param message: text that may quote a secret (a driver's error message, say).
    :param kwargs: the user's connect options.
    """
    for key in SECRET_OPTIONS:
        secret = kwargs.get(key)
        if isinstance(secret, (str, bytes)) and secret:
            text = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
            message = message.replace(text, "***")
    return message


def rejected_arguments(
    driver: str, exc: Exception, kwargs: dict[str, Any]
) -> InvalidArgumentError | InvalidArgumentTypeError | DriverNotInstalledError | None:
    """The error for a driver ``connect()`` that refused its arguments with a builtin error.

    Drivers check their arguments with assorted builtin errors (an unknown keyword is a
    ``TypeError`` in one, an ``AttributeError`` in another, a bad port a ``ValueError``), and
    one asks for a part of the driver that is not installed with an ``ImportError``
    (mysql-connector's ``use_pure=False`` without its C extension).

    :param driver: the driver's name, for the message.
    :param exc: what ``connect()`` raised (not a driver error, not an :class:`OSError`).
    :param kwargs: the user's connect options (their secrets are masked).
    :returns: the error to raise instead, or ``None`` for an error of another kind.
    """
    rejected = f"{driver}.connect() rejected the arguments: {redact_secrets(str(exc), kwargs)}"
    if isinstance(exc, (TypeError, AttributeError)):
        return InvalidArgumentTypeError(rejected)
    if isinstance(exc, (ValueError, LookupError)):
        return InvalidArgumentError(rejected)
    if isinstance(exc, ImportError):
        return DriverNotInstalledError(rejected)
    return None
