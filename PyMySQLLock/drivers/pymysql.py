"""The adapter of PyMySQL (pure Python), with its split-query and socket fast paths."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..tls import SslMode, TlsRequest, build_context
from .base import ConnectFunction, DriverAdapter

if TYPE_CHECKING:
    import socket


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
        if self._custom_connect is not None:
            raw = self.connect_function()(*args, **options)
            self._settle(raw, options, kwargs)
            return raw
        # Reusing the context writes a private attribute: not once the fast paths are off.
        reuse_tls = self.fast_paths and not (self._TLS_OPTIONS & options.keys())
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
        self._settle(raw, options, kwargs)
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
    private_attributes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "": (
            "_execute_command",
            "_read_query_result",
            "_result",
            "_affected_rows",
            "_ssl_required",
            "_sock",
        ),
    }

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
        import socket  # here: every adapter is imported, and only this path needs the module

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
