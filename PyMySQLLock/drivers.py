"""Adapters for the supported DB-API drivers: PyMySQL, mysql-connector-python and mysqlclient.

Everything that differs between drivers lives here and nowhere else: how to connect (and which
options make a connection safe to hold a lock: autocommit, ``utf8mb4``, a read timeout, no
auto-reconnect), how to run one statement, how to tell a lost connection from a server error,
and how to let go of a connection inherited across ``fork()`` without touching the parent's
session.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import socket
from collections.abc import Sequence
from typing import Any, Callable, ClassVar

from .connectoptions import LIBRARY_CHARSET, check_connect_options
from .connector_wire import UNHANDLED, ConnectorFastPath
from .errors import (
    DriverNotInstalledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockConnectionError,
)
from .statements import connection_lost
from .timeouts import validate_driver_timeout
from .tls import CIPHER_SQL, TLS_KWARGS, SslMode, TlsRequest, build_context, tls_request

__all__ = [
    "DRIVER_NAMES",
    "DriverAdapter",
    "MySQLConnectorAdapter",
    "MySQLdbAdapter",
    "PyMySQLAdapter",
    "resolve_adapter",
]

ConnectFunction = Callable[..., Any]


class DriverAdapter:
    """What PyMySQLLock needs from a DB-API driver, and how it differs between drivers.

    Subclasses set the class attributes and override the hooks whose driver behaviour differs.
    An adapter instance belongs to one :class:`~PyMySQLLock.Locker`: it may cache per-locker
    state (such as PyMySQL's TLS context).

    :param connect: a connect callable to use instead of the driver module's ``connect``
        (PyMySQLLock 0.2.0's ``mysql_lib_connector``).

    .. versionadded:: 1.0
    """

    #: The name users pass as ``driver=``; also the module imported.
    name: ClassVar[str] = ""
    #: The pip extra that installs the driver, for error messages.
    extra: ClassVar[str] = ""
    #: The connect() keyword that sets the socket read timeout.
    read_timeout_kwarg: ClassVar[str] = "read_timeout"
    #: The connect() keyword that bounds the connection handshake.
    connect_timeout_kwarg: ClassVar[str] = "connect_timeout"
    #: The connect() keyword that bounds a write, if the driver has one in all its releases.
    write_timeout_kwarg: ClassVar[str | None] = "write_timeout"

    def __init__(self, connect: ConnectFunction | None = None) -> None:
        self._custom_connect = connect
        self._module: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} driver={self.name!r}>"

    @property
    def module(self) -> Any:
        """The imported driver module.

        :raises DriverNotInstalledError: if it cannot be imported.
        """
        if self._module is None:
            try:
                self._module = importlib.import_module(self.name)
            except ImportError as exc:
                raise DriverNotInstalledError(
                    f"the {self.name!r} driver is not installed; install it with "
                    f"'pip install PyMySQLLock[{self.extra}]'"
                ) from exc
        return self._module

    # -- connecting ---------------------------------------------------------------------------

    def connect(self, args: Sequence[Any], kwargs: dict[str, Any], read_timeout: float) -> Any:
        """Open a connection suitable for holding a lock.

        :param args: positional arguments for the driver's ``connect()``.
        :param kwargs: keyword arguments for the driver's ``connect()``; options the user set
            win over the defaults added here.
        :param read_timeout: seconds a read may block before the connection counts as lost.
        :returns: the driver's connection object.
        """
        options = self.connect_options(kwargs, read_timeout)
        raw = self.connect_function()(*args, **options)
        self._settle(raw, options, tls_request(kwargs))
        return raw

    def _settle(self, raw: Any, options: dict[str, Any], tls: TlsRequest) -> None:
        """Run :meth:`after_connect`; a connection it fails on is closed, never leaked."""
        try:
            self.after_connect(raw, options, tls)
        except BaseException:
            self.close(raw)
            raise

    def connect_function(self) -> ConnectFunction:
        """:returns: the callable that opens a connection."""
        if self._custom_connect is not None:
            return self._custom_connect
        return self.module.connect  # type: ignore[no-any-return]

    #: The connect() keywords that take seconds; checked before they reach the driver.
    timeout_kwargs: ClassVar[tuple[str, ...]] = ("read_timeout", "connect_timeout", "write_timeout")
    #: Options the user's connect settings may carry that the library drops on its own
    #: connections, so that the driver's default applies (collation: it belongs to a charset).
    dropped_options: ClassVar[frozenset[str]] = frozenset({"collation"})
    #: Options that may change the session's character set after the handshake; with one of
    #: them the adapter sets it back (see :meth:`reset_charset`).
    charset_changing_options: ClassVar[frozenset[str]] = frozenset(
        {"init_command", "read_default_file", "read_default_group"}
    )

    def check_options(self, kwargs: dict[str, Any]) -> None:
        """Check the user's ``connect()`` options without connecting.

        :raises InvalidArgumentError: see
            :func:`~PyMySQLLock.connectoptions.check_connect_options`.
        """
        check_connect_options(kwargs, self.timeout_kwargs)
        self.tls_options(tls_request(kwargs))

    #: For drivers that take PyMySQL's row-format options (``cursorclass``, ``use_unicode``,
    #: ``binary_prefix``): the module whose ``Cursor`` is the plain cursor.
    cursor_module: ClassVar[str | None] = None

    def owned_options(self) -> dict[str, Any]:
        """The options the library's own connections always have, whatever the user passed.

        They decide how statements are encoded and how rows come back: ``autocommit`` (a lock
        connection never holds a transaction open), ``charset`` (one name is one lock, see
        :data:`~PyMySQLLock.connectoptions.LIBRARY_CHARSET`), and the driver's own row-format
        options, so that a ``DictCursor``, ``raw=True`` or ``conv={}`` in an application's
        settings cannot turn the answer of ``GET_LOCK`` into something else.

        :returns: a new dict.
        """
        options: dict[str, Any] = {"autocommit": True, "charset": LIBRARY_CHARSET}
        if self.cursor_module is not None:
            cursors = importlib.import_module(self.cursor_module)
            options.update(cursorclass=cursors.Cursor, use_unicode=True, binary_prefix=False)
        return options

    def connect_options(self, kwargs: dict[str, Any], read_timeout: float) -> dict[str, Any]:
        """Check the user's options, and add the ones every lock connection needs.

        The user's options are passed on, except those the library owns
        (:meth:`owned_options`, :attr:`dropped_options`); timeouts the user set are checked and
        put in the driver's form.

        :param kwargs: the user's keyword arguments.
        :param read_timeout: the read timeout in seconds.
        :returns: a new dict.
        :raises InvalidArgumentError: for an option the library cannot use (see
            :func:`~PyMySQLLock.connectoptions.check_connect_options`).
        """
        self.check_options(kwargs)
        options = {
            k: v for k, v in kwargs.items() if k not in self.dropped_options and k not in TLS_KWARGS
        }
        options.update(self.tls_options(tls_request(kwargs)))
        options.update(self.owned_options())
        for key in self.timeout_kwargs:
            if options.get(key) is not None:
                options[key] = self.encode_read_timeout(float(options[key]))
        options.setdefault(self.read_timeout_kwarg, self.encode_read_timeout(read_timeout))
        # Some drivers wait forever for a handshake by default, and a hung server accepts TCP
        # connections (the kernel does) without ever answering.
        options.setdefault(self.connect_timeout_kwarg, self.encode_read_timeout(read_timeout))
        if self.write_timeout_kwarg is not None:
            # Bounds writes to a hung server too; for PyMySQL an equal value also spares two
            # socket timeout changes per statement.
            options.setdefault(self.write_timeout_kwarg, self.encode_read_timeout(read_timeout))
        return options

    def tls_options(self, tls: TlsRequest) -> dict[str, Any]:
        """The driver's own options for the TLS the user asked for (see :mod:`PyMySQLLock.tls`).

        :param tls: the request.
        :returns: options that replace every TLS option the user passed.
        :raises InvalidArgumentError: for a request this driver cannot carry out.
        """
        if tls.context is not None:
            raise InvalidArgumentError(
                f"an ssl.SSLContext works only with PyMySQL; with {self.name} give ssl_mode "
                "and the ssl_ca, ssl_cert and ssl_key files"
            )
        return self._tls_options(tls)

    def _tls_options(self, tls: TlsRequest) -> dict[str, Any]:
        """PyMySQL's and mysql-connector's names (overridden where a driver differs)."""
        if tls.mode == SslMode.DISABLED:
            return {"ssl_disabled": True}
        options: dict[str, Any] = {}
        if tls.cert is not None:
            options["ssl_cert"] = tls.cert
        if tls.key is not None:
            options["ssl_key"] = tls.key
        if tls.verify_ca:
            if tls.ca is not None:
                options["ssl_ca"] = tls.ca
            options["ssl_verify_cert"] = True
            options["ssl_verify_identity"] = tls.verify_identity
        return options

    def after_connect(self, raw: Any, options: dict[str, Any], tls: TlsRequest) -> None:
        """Check and undo what the user's options may have done to the new session.

        A session that must be encrypted is checked for a cipher, whatever the driver did: a
        driver that falls back to plain text (or was never told to encrypt) is caught here.
        An ``init_command`` (``SET NAMES latin1``) or an option file can switch the session's
        character set after the handshake; the names would then reach the server as other
        bytes, and listings would come back in another encoding.

        :param raw: the new connection.
        :param options: the options it was opened with.
        :param tls: the TLS the user asked for.
        :raises LockConnectionError: when the session is not encrypted but must be.
        """
        if tls.must_encrypt:
            rows = self.query_all(self.cursor(raw), CIPHER_SQL)
            if not rows or not rows[0][1]:
                raise LockConnectionError(
                    f"the connection is not encrypted, but ssl_mode={tls.mode.name} requires "
                    "TLS (does the server have a certificate?)"
                )
        if self.charset_changing_options & options.keys():
            self.reset_charset(raw)

    def reset_charset(self, raw: Any) -> None:
        """Set the session's and the driver's character set to the library's."""
        raw.set_character_set(LIBRARY_CHARSET)

    def encode_read_timeout(self, seconds: float) -> Any:
        """:returns: the read timeout in the form the driver accepts."""
        return seconds

    def translate_options(self, neutral: dict[str, Any]) -> dict[str, Any]:
        """Turn driver-neutral ``connect()`` options (from a URL) into this driver's names.

        The neutral names are PyMySQL's: ``host``, ``port``, ``user``, ``password``,
        ``database``, ``unix_socket``, ``charset``, ``connect_timeout``, ``read_timeout``,
        ``ssl_ca``, ``ssl_cert``, ``ssl_key``, ``ssl_verify_cert``, ``ssl_verify_identity``,
        ``ssl_disabled``.

        :param neutral: the options.
        :returns: a new dict for this driver's ``connect()``.
        """
        options = dict(neutral)
        for key in ("connect_timeout", "read_timeout"):
            if key in options:
                options[key] = self.encode_read_timeout(float(options[key]))
        return options

    def read_timeout(self, kwargs: dict[str, Any]) -> float | None:
        """:returns: the read timeout the user set in the connect arguments, if any.

        :raises InvalidArgumentError: when it is not a valid number of seconds.
        """
        value = kwargs.get(self.read_timeout_kwarg)
        return None if value is None else validate_driver_timeout(value, self.read_timeout_kwarg)

    # -- statements ---------------------------------------------------------------------------

    def cursor(self, raw: Any) -> Any:
        """:returns: a cursor that may be reused for every statement on ``raw``."""
        return raw.cursor()

    def query(self, cursor: Any, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """Run one statement and return its first row (the rest is read and dropped).

        :param cursor: a cursor from :meth:`cursor`.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders, sent through the driver's escaping.
        :returns: the first row, or ``None`` when there is none.
        """
        cursor.execute(sql, tuple(params))
        rows = cursor.fetchall()
        return tuple(rows[0]) if rows else None

    def query_all(self, cursor: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows.

        :param cursor: a cursor from :meth:`cursor`.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders.
        :returns: the rows.
        """
        cursor.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]

    def execute_write(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> tuple[int | None, int | None]:
        """Run one statement that changes rows.

        :param cursor: a cursor from :meth:`cursor`.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders.
        :returns: the affected-row count and the insert id of the server's OK packet (set by
            ``LAST_INSERT_ID(expr)`` too), each ``None`` when the driver has none.
        """
        cursor.execute(sql, tuple(params))
        affected = cursor.rowcount
        insert_id = cursor.lastrowid
        return (
            affected if isinstance(affected, int) and affected >= 0 else None,
            insert_id if isinstance(insert_id, int) else None,
        )

    def caller_cursor(self, raw: Any) -> Any:
        """:returns: a new cursor for the caller's own statements, its results read in full."""
        return raw.cursor()

    def finish_caller_cursor(self, raw: Any, cursor: Any) -> bool:
        """Close a caller's cursor, reading any result it left, so the next statement can run.

        :param raw: the connection.
        :param cursor: a cursor from :meth:`caller_cursor`.
        :returns: ``False`` when results are still pending that the driver cannot skip: the
            connection cannot serve another statement.
        """
        cursor.close()  # PyMySQL and mysqlclient read the remaining result sets here
        return True

    #: Whether :meth:`send_query` and :meth:`read_first_row` are available, so that the
    #: keepalive can send the checks of many locks before it waits for any answer.
    supports_split_query: ClassVar[bool] = False

    def send_query(self, raw: Any, cursor: Any, sql: str, params: Sequence[Any]) -> bool:
        """Send one statement without waiting for its answer (see :attr:`supports_split_query`).

        :param raw: the connection.
        :param cursor: a cursor from :meth:`cursor`, used for the driver's escaping.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders.
        :returns: ``False`` (nothing sent) when this connection cannot split a statement.
        """
        raise NotImplementedError(f"{self.name} cannot split a query")

    def read_first_row(self, raw: Any) -> tuple[Any, ...] | None:
        """Read the answer to :meth:`send_query`; returns its first row, or ``None``."""
        raise NotImplementedError(f"{self.name} cannot split a query")

    def close(self, raw: Any) -> None:
        """Close ``raw``, ignoring every error: a connection being thrown away may be broken."""
        # Nothing useful can be done with an error from closing a connection being dropped.
        with contextlib.suppress(Exception):
            raw.close()

    # -- facts about a connection -------------------------------------------------------------

    def connection_id(self, raw: Any) -> int:
        """:returns: the server's id of the connection's session (``CONNECTION_ID()``)."""
        return int(raw.thread_id())

    def server_version(self, raw: Any) -> str:
        """:returns: the version string the server announced in its handshake."""
        version = raw.get_server_info()
        return version.decode() if isinstance(version, bytes) else str(version)

    def fileno(self, raw: Any) -> int | None:
        """:returns: the connection's socket file descriptor, or ``None`` when unknown."""
        return None

    # -- errors -------------------------------------------------------------------------------

    def is_driver_error(self, exc: BaseException) -> bool:
        """:returns: whether ``exc`` was raised by the driver (a DB-API ``Error``)."""
        return isinstance(exc, self.module.Error)

    def error_code(self, exc: BaseException) -> int | None:
        """:returns: the server or client error number carried by ``exc``, if any."""
        args = getattr(exc, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        return None

    def is_connection_lost(self, exc: BaseException) -> bool:
        """Tell whether ``exc`` means that the connection can no longer be used.

        A socket error or a read timeout leaves the protocol in an unknown state, so both count
        as lost: the session may still exist on the server, but this client can never use it
        again.

        :returns: ``True`` when the connection must be thrown away.
        """
        if isinstance(exc, (OSError, EOFError)):
            return True
        if not self.is_driver_error(exc):
            return False
        if isinstance(exc, self.module.InterfaceError):
            return True
        # The codes are read in the one table of statements.py, shared with the asyncio layer.
        return connection_lost(self.error_code(exc))

    # -- fork ---------------------------------------------------------------------------------

    def detach_after_fork(self, raw: Any) -> bool:
        """Make a connection inherited from the parent process harmless in the child.

        The child must never send anything on the parent's socket (a ``COM_QUIT`` from a
        garbage-collected connection would end the parent's session and release its lock).
        Pointing the child's copy of the descriptor at ``/dev/null`` makes any later close or
        write go nowhere, while the parent's socket stays open.

        :returns: ``True`` when the connection is now safe to drop, ``False`` when the
            descriptor is unknown and the object must be kept alive instead.
        """
        fd = self.fileno(raw)
        if fd is None or fd < 0:
            return False
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        return True


class PyMySQLAdapter(DriverAdapter):
    """PyMySQL (pure Python).

    PyMySQL 1.2 negotiates TLS in "preferred" mode when no TLS option is given, and builds a new
    default TLS context (reading the system CA store, about 20 ms) for every connection. The
    adapter keeps the first such context and hands it to later connections of the same Locker,
    still in preferred mode, so the TLS behaviour is the one the user asked for.
    """

    name = "pymysql"
    extra = "pymysql"
    _TLS_OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "ssl",
            "ssl_ca",
            "ssl_cert",
            "ssl_key",
            "ssl_key_password",
            "ssl_disabled",
            "ssl_verify_cert",
            "ssl_verify_identity",
            "read_default_file",
            "defer_connect",
        }
    )

    def __init__(self, connect: ConnectFunction | None = None) -> None:
        super().__init__(connect)
        self._preferred_tls_context: Any = None
        self._tls_contexts: dict[TlsRequest, Any] = {}

    def connect(self, args: Sequence[Any], kwargs: dict[str, Any], read_timeout: float) -> Any:
        """Open a connection, reusing the preferred-mode TLS context when that is safe."""
        options = self.connect_options(kwargs, read_timeout)
        options.pop("defer_connect", None)  # only False gets here: connecting is the default
        tls = tls_request(kwargs)
        if self._custom_connect is not None:
            raw = self.connect_function()(*args, **options)
            self._settle(raw, options, tls)
            return raw
        reuse_tls = not (self._TLS_OPTIONS & options.keys())
        extra: dict[str, Any] = {}
        if reuse_tls and self._preferred_tls_context is not None:
            extra["ssl"] = self._preferred_tls_context
        raw = self.module.connect(*args, defer_connect=True, **extra, **options)
        if extra:
            # Passing a context switches PyMySQL to "TLS required"; the user asked for nothing,
            # which PyMySQL treats as "preferred", so restore that before connecting.
            raw._ssl_required = False
        raw.connect(self._unix_socket(options))
        if reuse_tls and not extra and getattr(raw, "_ssl_required", True) is False:
            self._preferred_tls_context = getattr(raw, "ctx", None)
        self._settle(raw, options, tls)
        return raw

    dropped_options = DriverAdapter.dropped_options | {"conv"}

    def tls_options(self, tls: TlsRequest) -> dict[str, Any]:
        """PyMySQL gets one context that checks exactly what the mode says.

        PyMySQL's own options mix the checks (a CA alone also checks the host name), so for
        ``REQUIRED`` and up the adapter builds the context itself, once per request.
        """
        if tls.mode == SslMode.DISABLED:
            return {"ssl_disabled": True}
        if not tls.must_encrypt:
            return {}
        context = self._tls_contexts.get(tls)
        if context is None:
            context = self._tls_contexts[tls] = build_context(tls)
        return {"ssl": context}

    cursor_module = "pymysql.cursors"

    supports_split_query = True

    def send_query(self, raw: Any, cursor: Any, sql: str, params: Sequence[Any]) -> bool:
        """Send through PyMySQL's command layer (the cursor would also wait for the answer)."""
        command = importlib.import_module("pymysql.constants.COMMAND")
        raw._execute_command(command.COM_QUERY, cursor.mogrify(sql, tuple(params)))
        return True

    def read_first_row(self, raw: Any) -> tuple[Any, ...] | None:
        """Read the answer the way ``Connection.query`` does."""
        raw._affected_rows = raw._read_query_result()
        rows = raw._result.rows
        return tuple(rows[0]) if rows else None

    @staticmethod
    def _unix_socket(options: dict[str, Any]) -> socket.socket | None:
        """Connect the unix socket here, so that a failure closes it.

        PyMySQL leaves its own socket unclosed when connecting to the path fails (a
        ResourceWarning later, somewhere unrelated); given a connected socket, it closes that
        one on any error.
        """
        path = options.get("unix_socket")
        if not path:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(options.get("connect_timeout"))
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock

    def fileno(self, raw: Any) -> int | None:
        """:returns: the socket's descriptor."""
        sock = getattr(raw, "_sock", None)
        return None if sock is None else int(sock.fileno())


class MySQLdbAdapter(DriverAdapter):
    """mysqlclient (``MySQLdb``, a C extension over libmysqlclient or libmariadb)."""

    name = "MySQLdb"
    extra = "mysqlclient"
    dropped_options = DriverAdapter.dropped_options | {"conv"}

    cursor_module = "MySQLdb.cursors"

    def reset_charset(self, raw: Any) -> None:
        """Also send ``SET NAMES`` itself.

        ``set_character_set`` skips it when the C client's idea of the character set already
        matches, and the C client does not see what an ``init_command`` changed.
        """
        raw.set_character_set(LIBRARY_CHARSET)
        raw.query(f"SET NAMES {LIBRARY_CHARSET}".encode())

    def encode_read_timeout(self, seconds: float) -> Any:
        """:returns: whole seconds, rounded up: the C client takes an unsigned int."""
        return max(1, math.ceil(seconds))

    def translate_options(self, neutral: dict[str, Any]) -> dict[str, Any]:
        """The C client uses a unix socket only for host "localhost"."""
        options = super().translate_options(neutral)
        if "unix_socket" in options:
            options["host"] = "localhost"
        return options

    def _tls_options(self, tls: TlsRequest) -> dict[str, Any]:
        """Mysqlclient takes the files as an ``ssl`` dict and the checks as ``ssl_mode``."""
        if tls.mode == SslMode.DISABLED:
            # libmariadb turns TLS on for any ssl dict, even with ssl_mode=DISABLED.
            return {"ssl_mode": "DISABLED"}
        if not tls.must_encrypt:
            return {}
        files = {"cert": tls.cert, "key": tls.key}
        if tls.verify_ca:
            files["ca"] = tls.ca
        return {
            "ssl_mode": tls.mode.name,
            "ssl": {name: path for name, path in files.items() if path is not None},
        }

    def query(self, cursor: Any, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """Run one statement through the C API, as :meth:`send_query` and :meth:`read_first_row`.

        The cursor's ``execute`` and ``fetchall`` add Python bookkeeping (warning counts, row
        buffers, the description) that costs about a tenth of a ``GET_LOCK`` round trip here,
        for nothing PyMySQLLock reads; the statement and the errors are the same.
        """
        raw = cursor.connection
        self.send_query(raw, cursor, sql, params)
        return self.read_first_row(raw)

    supports_split_query = True

    def send_query(self, raw: Any, cursor: Any, sql: str, params: Sequence[Any]) -> bool:
        """Send through the C API's ``mysql_send_query``."""
        statement = cursor.mogrify(sql, tuple(params))
        # The connection's Python codec (MySQL's "utf8mb4" is Python's "utf-8").
        raw.send_query(statement.encode(getattr(raw, "encoding", None) or "utf-8"))
        return True

    def read_first_row(self, raw: Any) -> tuple[Any, ...] | None:
        """Read through ``mysql_read_query_result`` and ``mysql_store_result``."""
        raw.read_query_result()
        result = raw.store_result()
        rows = result.fetch_row(1) if result is not None else ()
        return tuple(rows[0]) if rows else None

    def fileno(self, raw: Any) -> int | None:
        """:returns: the socket's descriptor."""
        try:
            return int(raw.fileno())
        except Exception:  # noqa: BLE001 - a closed connection has no descriptor
            return None


class MySQLConnectorAdapter(DriverAdapter):
    """mysql-connector-python (pure Python or its C extension).

    On the pure-Python connection the one-row statements PyMySQLLock runs skip the cursor and
    the connector's packet layer (see :meth:`query`, :meth:`send_query`, :meth:`read_first_row`);
    the C extension, and connections in a state the fast path does not handle, use the
    connector's own code.
    """

    name = "mysql.connector"
    extra = "mysql-connector"
    connect_timeout_kwarg = "connection_timeout"
    write_timeout_kwarg = None  # only in recent releases
    timeout_kwargs = ("read_timeout", "connection_timeout", "connect_timeout", "write_timeout")
    dropped_options = DriverAdapter.dropped_options | {
        "converter_class",
        "converter_str_fallback",
    }
    charset_changing_options = frozenset({"init_command", "option_files", "option_groups"})

    def owned_options(self) -> dict[str, Any]:
        """Also the connector's converted (not raw) rows of ``str``."""
        return {**super().owned_options(), "raw": False, "use_unicode": True}

    def reset_charset(self, raw: Any) -> None:
        """The connector's own call sends ``SET NAMES`` and switches its codec."""
        raw.set_charset_collation(LIBRARY_CHARSET)

    def __init__(self, connect: ConnectFunction | None = None) -> None:
        super().__init__(connect)
        # Looked up at the first statement; it also keeps this adapter's statement cache.
        self._fast: ConnectorFastPath | None = None
        self._fast_looked_up = False

    def connect(self, args: Sequence[Any], kwargs: dict[str, Any], read_timeout: float) -> Any:
        """Connect, and read the session's ``sql_mode`` at once.

        The connector asks the server for ``@@session.sql_mode`` before the first statement
        with parameters; asked later, on a connection that died in the pool, that hidden query
        fails with an error that looks like a statement error.
        """
        raw = super().connect(args, kwargs, read_timeout)
        try:
            raw.sql_mode  # noqa: B018 - cached by the connector from now on
        except BaseException:
            self.close(raw)
            raise
        return raw

    def connect_options(self, kwargs: dict[str, Any], read_timeout: float) -> dict[str, Any]:
        """Add the lock-connection options; older releases have no ``read_timeout``."""
        options = super().connect_options(kwargs, read_timeout)
        if "read_timeout" not in kwargs and not self._has_read_timeout():
            # Before read_timeout existed, connection_timeout bounded every socket operation.
            del options["read_timeout"]
        return options

    def _has_read_timeout(self) -> bool:
        constants = importlib.import_module("mysql.connector.constants")
        return "read_timeout" in getattr(constants, "DEFAULT_CONFIGURATION", {})

    def encode_read_timeout(self, seconds: float) -> Any:
        """:returns: whole seconds, rounded up: the connector insists on an int."""
        return max(1, math.ceil(seconds))

    def connection_id(self, raw: Any) -> int:
        """:returns: the session id announced in the handshake."""
        return int(raw.connection_id)

    def server_version(self, raw: Any) -> str:
        """:returns: the handshake's version string (the property; the method is deprecated)."""
        return str(raw.server_info)

    def error_code(self, exc: BaseException) -> int | None:
        """:returns: the connector's ``errno``."""
        code = getattr(exc, "errno", None)
        return code if isinstance(code, int) else super().error_code(exc)

    def is_connection_lost(self, exc: BaseException) -> bool:
        """Also count the connector's own timeout errors as lost.

        Its ``ReadTimeoutError`` carries errno 3024, which on a server means "statement
        timeout", so the class must be checked before the code.
        """
        errors = importlib.import_module("mysql.connector.errors")
        timeouts = tuple(
            getattr(errors, name)
            for name in ("ReadTimeoutError", "WriteTimeoutError", "ConnectionTimeoutError")
            if hasattr(errors, name)
        )
        if timeouts and isinstance(exc, timeouts):
            return True
        if isinstance(exc, errors.OperationalError) and self.error_code(exc) in (-1, None):
            return True  # "MySQL Connection not available"
        return super().is_connection_lost(exc)

    # -- statements ---------------------------------------------------------------------------

    def query(self, cursor: Any, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """Run one statement and return its first row, without the cursor when that is safe.

        The cursor's ``execute`` and ``fetchall`` cost several times the round trip of a
        ``GET_LOCK``; on the stock cursor of a pure-Python connection the fast path (see
        ``PyMySQLLock.connector_wire``) sends the statement and reads its answer itself.
        """
        fast = self._fast_path()
        if fast is not None:
            row = fast.query(cursor, sql, params)
            if row is not UNHANDLED:
                return row
        return super().query(cursor, sql, params)

    supports_split_query = True

    def send_query(self, raw: Any, cursor: Any, sql: str, params: Sequence[Any]) -> bool:
        """Send a text query on the pure-Python connection without waiting for the answer.

        The connector has no public way to send without waiting, so this does what its
        ``cmd_query`` does up to the send: the cursor's escaping, an empty query-attributes
        header when the server expects one, and the command packet, written straight to the
        socket by the fast path when it applies, else through the connector's ``_send_cmd``.
        The C extension has no such layer: there the keepalive checks one lock at a time.
        """
        fast = self._fast_path()
        if fast is not None and fast.send(raw, sql, params):
            return True
        if not all(hasattr(raw, name) for name in ("_send_cmd", "_handle_result", "_socket")):
            return False
        constants = importlib.import_module("mysql.connector.constants")
        converter, mode = raw.converter, raw.sql_mode
        values = tuple(
            converter.quote(converter.escape(converter.to_mysql(value), mode)) for value in params
        )
        statement = sql.encode() % values
        if raw._client_flags & constants.ClientFlag.CLIENT_QUERY_ATTRIBUTES:
            # Zero attributes, one parameter set: the header cmd_query sends without attributes.
            statement = b"\x00\x01" + statement
        raw._send_cmd(constants.ServerCmd.QUERY, statement, expect_response=False)
        return True

    def read_first_row(self, raw: Any) -> tuple[Any, ...] | None:
        """Read the answer to :meth:`send_query`: its first row, converted as the connector does.

        On the pure-Python connection the answer is read straight from the socket; otherwise
        the way ``cmd_query`` and ``get_rows`` read it.
        """
        fast = self._fast_path()
        if fast is not None:
            row = fast.read_first_row(raw)
            if row is not UNHANDLED:
                return row
        if hasattr(raw, "_read_timeout"):
            packet = raw._socket.recv(raw._read_timeout)
        else:  # releases before read_timeout: recv() takes no timeout
            packet = raw._socket.recv()
        raw._handle_result(packet)
        rows, _ = raw.get_rows()
        return tuple(rows[0]) if rows else None

    def caller_cursor(self, raw: Any) -> Any:
        """:returns: a buffered cursor: an unbuffered one would leave rows on the wire."""
        return raw.cursor(buffered=True)

    def finish_caller_cursor(self, raw: Any, cursor: Any) -> bool:
        """Read the result sets the caller left (a ``CALL``), then close the cursor."""
        nextset = getattr(cursor, "nextset", None)  # 9.2 and later
        if nextset is not None:
            while nextset():
                pass
        if getattr(raw, "unread_result", False):
            raw.consume_results()
        cursor.close()
        return not getattr(raw, "_have_next_result", False)

    def _fast_path(self) -> ConnectorFastPath | None:
        """:returns: the fast path, or ``None`` when this release of the connector has none."""
        if not self._fast_looked_up:
            with contextlib.suppress(ImportError, AttributeError):
                self._fast = ConnectorFastPath(self.module)
            self._fast_looked_up = True
        return self._fast

    def fileno(self, raw: Any) -> int | None:
        """:returns: the socket's descriptor (pure-Python implementation only)."""
        stream = getattr(raw, "_socket", None)
        sock = getattr(stream, "sock", None)
        return None if sock is None else int(sock.fileno())


#: The driver names accepted by ``Locker(driver=...)``, in the order tried by default.
DRIVER_NAMES: tuple[str, ...] = ("pymysql", "mysql.connector", "MySQLdb")
_ADAPTERS: dict[str, type[DriverAdapter]] = {
    "pymysql": PyMySQLAdapter,
    "mysql.connector": MySQLConnectorAdapter,
    "MySQLdb": MySQLdbAdapter,
}
_ALIASES = {
    "mysqlconnector": "mysql.connector",
    "mysql-connector": "mysql.connector",
    "mysql_connector": "mysql.connector",
    "mysqldb": "MySQLdb",
    "mysqlclient": "MySQLdb",
}


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
        raise DriverNotInstalledError(
            "no MySQL driver is installed; install one with 'pip install PyMySQLLock[pymysql]' "
            "(or [mysql-connector], [mysqlclient])"
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
