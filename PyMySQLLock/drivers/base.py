"""The adapter contract: what PyMySQLLock needs from a DB-API driver, with PyMySQL-like defaults.

A driver adapter is a subclass of :class:`DriverAdapter` registered in :mod:`PyMySQLLock.drivers`
(one line). What it must provide, what it may, and which fast paths it may offer:

* **Required** (the defaults fit PyMySQL and mysqlclient; check each for a new driver):
  the class attributes ``name`` (the module imported and the ``driver=`` name) and ``extra``
  (the pip extra); ``connection_id`` (``CONNECTION_ID()`` of a connection),
  ``server_version`` (the handshake's version string),
  ``error_code`` (the number a driver error carries), and the connect keyword
  names ``read_timeout_kwarg``, ``connect_timeout_kwarg`` and ``write_timeout_kwarg``.
* **Optional** (override where the driver differs): :meth:`~DriverAdapter.encode_read_timeout`
  (whole seconds for C clients), :meth:`~DriverAdapter.translate_options` (URL options to the
  driver's names), ``_tls_options`` (the driver's TLS keywords), ``dropped_options``,
  ``charset_changing_options`` and :meth:`~DriverAdapter.reset_charset`,
  ``is_connection_lost`` (more client errors that mean a lost connection),
  :meth:`~DriverAdapter.caller_cursor` / :meth:`~DriverAdapter.finish_caller_cursor`.
* **Fast paths** (optional; each must fall back to the driver's public API when it cannot
  apply): ``supports_split_query`` with :meth:`~DriverAdapter.send_query` and
  :meth:`~DriverAdapter.read_first_row` (the keepalive sends the checks of many locks before
  it waits for any answer), :meth:`~DriverAdapter.fileno` (the socket, for the keepalive's
  ``poll()``, ``cancel()`` and fork safety; ``None`` when unknown degrades those gracefully).
  A fast path that reads a driver's private attributes names them in ``private_attributes``
  (``{"path from the connection": ("attribute", ...)}``). The adapter's first connection is
  checked for them: when one is missing (a driver release renamed it) the fast paths are off
  for good, the driver's public API serves every statement, and a DEBUG log says which;
  ``tests/test_drivers.py`` fails on such a release, so that it is noticed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, ClassVar

from ..connectoptions import (
    LIBRARY_CHARSET,
    SessionStatement,
    check_connect_options,
    session_statements,
    without_session_options,
)
from ..errors import (
    DriverNotInstalledError,
    InvalidArgumentError,
    LockConnectionError,
)
from ..log import logger
from ..statements import connection_lost
from ..timeouts import validate_driver_timeout
from ..tls import CIPHER_SQL, TLS_KWARGS, SslMode, TlsRequest, check_files, tls_request

__all__ = ["ConnectFunction", "DbApiFacts", "DriverAdapter"]

ConnectFunction = Callable[..., Any]


class DbApiFacts:
    """What a DB-API connection and a driver error say, read the way PyMySQL's API tells them.

    Shared by :class:`DriverAdapter` and the asyncio adapters (aiomysql and asyncmy keep
    PyMySQL's connection API and exceptions), so that both layers classify a driver error alike;
    a driver that differs overrides a method (mysql-connector does).
    """

    @property
    def module(self) -> Any:
        """The imported driver module, whose DB-API exception classes are read."""
        raise NotImplementedError

    # -- facts about a connection -------------------------------------------------------------

    def connection_id(self, raw: Any) -> int:
        """:returns: the server's id of the connection's session (``CONNECTION_ID()``)."""
        return int(raw.thread_id())

    def server_version(self, raw: Any) -> str:
        """:returns: the version string the server announced in its handshake."""
        version = raw.get_server_info()
        return version.decode() if isinstance(version, bytes) else str(version)

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


class DriverAdapter(DbApiFacts):
    """What PyMySQLLock needs from a DB-API driver, and how it differs between drivers.

    The facts read from a connection or an error (connection id, server version, error code,
    lost connection) come from :class:`DbApiFacts`.

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
        self._settle(raw, options, kwargs)
        return raw

    def _settle(self, raw: Any, options: dict[str, Any], kwargs: dict[str, Any]) -> None:
        """Run :meth:`after_connect`; a connection it fails on is closed, never leaked."""
        try:
            self.after_connect(raw, options, tls_request(kwargs), session_statements(kwargs))
        except BaseException:
            self.close(raw)
            raise
        if self.private_attributes and not self._private_checked:
            self._check_private_attributes(raw)

    #: Whether the fast paths may run: ``False`` once the first connection lacked one of the
    #: :attr:`private_attributes` (a driver release renamed it), and the driver's public API
    #: serves every statement instead.
    fast_paths: bool = True
    _private_checked = False

    def missing_private_attributes(self, raw: Any) -> list[str]:
        """:returns: the :attr:`private_attributes` that the connection ``raw`` lacks."""
        missing: list[str] = []
        for path, names in self.private_attributes.items():
            owner = raw
            for part in filter(None, path.split(".")):
                owner = getattr(owner, part, None)
            missing.extend(
                f"{path}.{name}".lstrip(".")
                for name in names
                if owner is None or not hasattr(owner, name)
            )
        return missing

    def _check_private_attributes(self, raw: Any) -> None:
        """On the first connection: turn the fast paths off if the driver changed under them.

        Marked checked only once :attr:`fast_paths` is settled: a connection opened meanwhile
        by another thread is checked too, so that no session starts with fast paths on that
        its connection lacks (a session reads :attr:`fast_paths` once, when made).
        """
        missing = self.missing_private_attributes(raw)
        if missing:
            self.fast_paths = False
            logger.debug(
                "%s connection %s lacks %s: the fast paths are off, the driver's public API "
                "serves every statement",
                self.name,
                type(raw).__name__,
                ", ".join(missing),
            )
        self._private_checked = True

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
        tls = tls_request(kwargs)
        check_files(tls)
        self.tls_options(tls)

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
        without_session_options(options)  # sent by after_connect()
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

    def after_connect(
        self,
        raw: Any,
        options: dict[str, Any],
        tls: TlsRequest,
        setup: Sequence[SessionStatement] = (),
    ) -> None:
        """Check and undo what the user's options may have done to the new session.

        A session that must be encrypted is checked for a cipher, whatever the driver did: a
        driver that falls back to plain text (or was never told to encrypt) is caught here.
        An ``init_command`` (``SET NAMES latin1``) or an option file can switch the session's
        character set after the handshake; the names would then reach the server as other
        bytes, and listings would come back in another encoding.

        :param raw: the new connection.
        :param options: the options it was opened with.
        :param tls: the TLS the user asked for.
        :param setup: statements to run in place of the driver (the user's ``sql_mode``, see
            :func:`~PyMySQLLock.connectoptions.session_statements`), followed by
            :meth:`after_setup`.
        :raises LockConnectionError: when the session is not encrypted but must be.
        """
        if tls.must_encrypt:
            rows = self.query_all(self.cursor(raw), CIPHER_SQL)
            if not rows or not rows[0][1]:
                raise LockConnectionError(
                    f"the connection is not encrypted, but ssl_mode={tls.mode.name} requires "
                    "TLS (does the server have a certificate?)"
                )
        if setup:
            cursor = raw.cursor()
            try:
                for statement, params in setup:
                    if params is None:
                        cursor.execute(statement)
                    else:
                        cursor.execute(statement, params)
                    if cursor.description:
                        cursor.fetchall()  # an init_command that returns rows
            finally:
                cursor.close()
            self.after_setup(raw)
        if setup or self.charset_changing_options & options.keys():
            self.reset_charset(raw)

    def after_setup(self, raw: Any) -> None:
        """Called once the library's session statements (``sql_mode``) ran; by default nothing.

        For a driver that caches session state those statements changed.
        """

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
    #: The driver's private attributes that the fast paths read or write, by where they are:
    #: a dotted path from the driver's connection (``""``: the connection itself). A release
    #: that renames one fails ``tests/test_drivers.py`` instead of silently slowing down or
    #: writing a new attribute.
    private_attributes: ClassVar[Mapping[str, tuple[str, ...]]] = {}

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

    def fileno(self, raw: Any) -> int | None:
        """:returns: the connection's socket file descriptor, or ``None`` when unknown."""
        return None

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
