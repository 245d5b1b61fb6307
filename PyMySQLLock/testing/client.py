"""Short-lived client connections to a server, with whichever driver is installed."""

from __future__ import annotations

import functools
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ServerStartError

__all__ = ["driver_connect", "run_sql", "socket_accepts"]


@functools.cache
def _pymysql_has_ssl_disabled() -> bool:
    import inspect

    import pymysql

    return "ssl_disabled" in inspect.signature(pymysql.connections.Connection).parameters


def driver_connect(
    *,
    host: str | None = None,
    port: int | None = None,
    unix_socket: str | None = None,
    user: str,
    password: str,
    database: str | None = None,
    timeout: float,
) -> Any:
    """Open an autocommit connection with the first importable driver.

    Tried in order: PyMySQL, mysqlclient (``MySQLdb``), mysql-connector-python. A throwaway
    server's own statements are plain ones, so any of them will do.

    :param host: TCP host (ignored when *unix_socket* is given).
    :param port: TCP port.
    :param unix_socket: path of the server's unix socket.
    :param user: account name.
    :param password: account password.
    :param database: default database, or ``None``.
    :param timeout: connect and read timeout in seconds.
    :returns: a DB-API connection.
    :raises ServerStartError: when none of the drivers is installed.
    """
    kwargs: dict[str, Any] = {"user": user, "password": password}
    if database is not None:
        kwargs["database"] = database
    if unix_socket is not None:
        # MySQLdb only uses the socket when host is "localhost"; the others ignore host then.
        kwargs.update(host="localhost", unix_socket=unix_socket)
    else:
        kwargs.update(host=host, port=port)
    try:
        import pymysql
    except ImportError:
        pass
    else:
        if _pymysql_has_ssl_disabled():
            # PyMySQL >= 1.2 otherwise builds an SSL context (loading the system CA store, ~18 ms)
            # on every connect to try TLS; the throwaway server's own connections never want it.
            kwargs["ssl_disabled"] = True
        return pymysql.connect(
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            autocommit=True,
            **kwargs,
        )
    try:
        import MySQLdb
    except ImportError:
        pass
    else:
        seconds = max(1, int(timeout + 0.999))
        return MySQLdb.connect(
            connect_timeout=seconds,
            read_timeout=seconds,
            write_timeout=seconds,
            autocommit=True,
            **kwargs,
        )
    try:
        import mysql.connector
    except ImportError:
        pass
    else:
        return mysql.connector.connect(
            connection_timeout=max(1, int(timeout + 0.999)), autocommit=True, **kwargs
        )
    raise ServerStartError(
        "no MySQL driver is importable: install PyMySQL, mysqlclient or mysql-connector-python"
    )


def socket_accepts(path: Path) -> bool:
    """Tell whether a unix socket accepts connections, closing the probe in every case.

    A driver whose connect fails on a not-yet-listening socket may leave its socket object
    unclosed (PyMySQL does), and the ResourceWarning would surface later in an unrelated test.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def run_sql(conn: Any, statement: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    """Run one statement on *conn* and return its rows (``[]`` when it returns none)."""
    cursor = conn.cursor()
    try:
        if params is None:
            cursor.execute(statement)
        else:
            cursor.execute(statement, tuple(params))
        if cursor.description is None:
            return []
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
