"""The adapter of mysql-connector-python, with the wire fast path of :mod:`.connector_wire`."""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..connectoptions import LIBRARY_CHARSET
from .base import ConnectFunction, DriverAdapter
from .connector_wire import UNHANDLED, ConnectorFastPath


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

    def after_setup(self, raw: Any) -> None:
        """Tell the connector the ``sql_mode`` the library's statements set.

        The connector escapes parameters for the ``sql_mode`` it cached, and it read that
        before the library's ``SET sql_mode`` ran: without this it would escape names for the
        old mode (backslashes under ``NO_BACKSLASH_ESCAPES``, a syntax error).
        """
        rows = self.query_all(self.cursor(raw), "SELECT @@session.sql_mode")
        raw.sql_mode = str(rows[0][0])  # mode names from the server: safe to paste

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
    private_attributes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "": (
            "_send_cmd",
            "_handle_result",
            "_handle_server_status",
            "_socket",
            "_client_flags",
            "_handshake",
            "_protocol",
            "_unread_result",
            "_sql_mode",
            "_raw",
            "_get_warnings",
            "_raise_on_warnings",
            "_query_attrs",
        ),
        "_socket": ("_netbroker", "_connection_timeout"),
        "_socket._netbroker": ("_pktnr",),
    }

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
        if not self.fast_paths:
            return None
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
