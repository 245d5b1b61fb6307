"""The adapter of mysqlclient (``MySQLdb``, a C extension over libmysqlclient or libmariadb)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..connectoptions import LIBRARY_CHARSET
from ..tls import SslMode, TlsRequest
from .base import DriverAdapter


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
