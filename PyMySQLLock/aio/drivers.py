"""Adapters for the asyncio drivers: aiomysql (the default) and asyncmy (0.2.13 or later).

Everything that differs between the two lives here and nowhere else in :mod:`PyMySQLLock.aio`:
the ``connect()`` keywords and the options every lock connection needs, how one statement is
run, the connection's facts (session id, server version), and which exceptions mean that the
connection is gone. The rules are the blocking adapters' (:mod:`PyMySQLLock.drivers`), with
their checks (:mod:`PyMySQLLock.connectoptions`): autocommit, the library's character set,
plain rows, a bounded handshake, no automatic reconnect (neither driver ever reconnects unless
asked to); which error codes mean a lost connection is decided by
``PyMySQLLock.statements.connection_lost()``, shared with the blocking code.

Neither driver gets a read timeout of its own: the session bounds every statement with the
read timeout, on one timer of the event loop per pool (``PyMySQLLock.aio.session.Deadlines``),
which works the same on both.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import importlib
import importlib.metadata
import inspect
import math
import os
import re
import ssl
from collections.abc import Awaitable, Sequence
from typing import Any, Callable, ClassVar

from ..connectoptions import (
    LIBRARY_CHARSET,
    SessionStatement,
    check_connect_options,
    session_statements,
    without_session_options,
)
from ..drivers.base import DbApiFacts
from ..errors import DriverNotInstalledError, InvalidArgumentError, InvalidArgumentTypeError
from ..tls import TLS_KWARGS, SslMode, TlsRequest, build_context, check_files, tls_request

__all__ = [
    "ASYNC_DRIVER_NAMES",
    "AiomysqlAdapter",
    "AsyncDriverAdapter",
    "AsyncmyAdapter",
    "resolve_async_adapter",
]

#: Connect arguments that name the database; each driver wants its own spelling.
_DATABASE_KEYS = ("database", "db")


class AsyncDriverAdapter(DbApiFacts):
    """What :mod:`PyMySQLLock.aio` needs from an asyncio MySQL driver.

    A subclass sets :attr:`name`, :attr:`extra` and :attr:`database_kwarg`, and overrides
    :meth:`check_version` when some releases of its driver are unsafe.
    """

    #: The name users pass as ``driver=``; also the module imported.
    name: ClassVar[str] = ""
    #: The pip extra that installs the driver, for error messages.
    extra: ClassVar[str] = ""
    #: The keyword the driver's ``connect()`` takes for the database.
    database_kwarg: ClassVar[str] = "database"

    def __init__(self) -> None:
        self._module: Any = None
        #: The TLS the connections must have, set by :meth:`connect_options`.
        self.tls = TlsRequest(SslMode.PREFERRED)
        #: Statements :meth:`after_connect` runs in place of the driver, with their
        #: parameters, set by :meth:`connect_options`.
        self._setup: list[SessionStatement] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} driver={self.name!r}>"

    @property
    def module(self) -> Any:
        """The imported driver module.

        :raises DriverNotInstalledError: if it cannot be imported, or is a release known to be
            unsafe.
        """
        if self._module is None:
            try:
                module = importlib.import_module(self.name)
            except ImportError as exc:
                raise DriverNotInstalledError(
                    f"the {self.name!r} driver is not installed; install it with "
                    f"'pip install PyMySQLLock[{self.extra}]'"
                ) from exc
            self.check_version()
            self._module = module
        return self._module

    def check_version(self) -> None:
        """Refuse a release of the driver that cannot hold a lock safely.

        :raises DriverNotInstalledError: for such a release.
        """

    # -- connecting ---------------------------------------------------------------------------

    #: Options the library drops on its own connections (collation belongs to the charset,
    #: converters would change the answers' types).
    dropped_options: ClassVar[frozenset[str]] = frozenset({"collation", "conv"})
    #: Options that may change the session's character set after the handshake; with one of
    #: them the adapter sets it back after connecting.
    charset_changing_options: ClassVar[frozenset[str]] = frozenset(
        {"init_command", "read_default_file", "read_default_group"}
    )

    def owned_options(self) -> dict[str, Any]:
        """The options the library's connections always have, whatever the user passed.

        As for the blocking drivers: ``autocommit`` (a lock connection never holds a
        transaction open), the library's ``charset`` (one name is one lock, see
        :data:`~PyMySQLLock.connectoptions.LIBRARY_CHARSET`), ``str`` results and the plain
        cursor, so that nothing in an application's settings changes the answer of
        ``GET_LOCK``.
        """
        return {"autocommit": True, "charset": LIBRARY_CHARSET, "use_unicode": True}

    def connect_options(self, kwargs: dict[str, Any], connect_timeout: float) -> dict[str, Any]:
        """The driver's ``connect()`` keywords: the user's, plus what a lock connection needs.

        The user's options are checked as the blocking drivers' are
        (:func:`~PyMySQLLock.connectoptions.check_connect_options`); the options the library
        owns replace the user's; a server that accepts TCP connections but never answers must
        not hang the handshake.

        :param kwargs: the user's keyword arguments (without the read timeout, which the
            session applies itself).
        :param connect_timeout: seconds the handshake may take, unless the user said.
        :returns: a new dict.
        :raises InvalidArgumentError: for an option the library cannot use, and for
            ``write_timeout`` (every statement is bounded by the read timeout instead).
        """
        check_connect_options(kwargs, ("connect_timeout", "write_timeout"))
        if "write_timeout" in kwargs:
            raise InvalidArgumentError(
                "write_timeout is not supported by the asyncio drivers: every statement, "
                "writing included, is bounded by ping_timeout (or read_timeout)"
            )
        self.tls = tls_request(kwargs)
        check_files(self.tls)
        options = {k: v for k, v in kwargs.items() if k not in self.dropped_options | TLS_KWARGS}
        self._setup = session_statements(options)
        without_session_options(options)
        options["ssl"] = self.tls_context(self.tls)
        for key in _DATABASE_KEYS:
            if key in options and key != self.database_kwarg:
                if self.database_kwarg in options:
                    raise InvalidArgumentTypeError("pass the database once, as database=")
                options[self.database_kwarg] = options.pop(key)
        options.update(self.owned_options())
        # Both drivers take seconds of at least 1 here.
        options.setdefault("connect_timeout", max(1, math.ceil(connect_timeout)))
        return options

    def tls_context(self, request: TlsRequest) -> ssl.SSLContext | None:
        """The ``ssl`` argument that gives both drivers the meaning of ``request``.

        Both drivers encrypt only when the server offers TLS, and never check that it did:
        ``PREFERRED`` gets a context that verifies nothing, ``REQUIRED`` and up are checked
        after connecting (see :attr:`~PyMySQLLock.tls.TlsRequest.must_encrypt`).
        """
        if request.mode == SslMode.DISABLED:
            return None
        if request.mode == SslMode.PREFERRED and request.context is None:
            return build_context(TlsRequest(SslMode.REQUIRED))
        return build_context(request)

    async def after_connect(self, raw: Any, options: dict[str, Any]) -> None:
        """Finish setting up a new connection, before the library's first statement.

        The statements the library sends in place of the driver (``sql_mode``) run first;
        then the library's character set is set again if an option may have changed it.
        """
        if self._setup:
            cursor = await self.cursor(raw)
            try:
                for statement, params in self._setup:
                    await cursor.execute(statement, params)
            finally:
                await cursor.close()
        if self._setup or self.charset_changing_options & options.keys():
            await self.set_library_charset(raw)

    async def set_library_charset(self, raw: Any) -> None:
        """Set the session's character set back to the library's."""
        await raw.set_charset(LIBRARY_CHARSET)

    async def connect(self, options: dict[str, Any]) -> Any:
        """Open a connection with ready ``options`` (see :meth:`connect_options`).

        :returns: the driver's connection object.
        """
        return await self.module.connect(**options)

    # -- statements ---------------------------------------------------------------------------

    async def cursor(self, raw: Any) -> Any:
        """:returns: a cursor that may be reused for every statement on ``raw``."""
        cursor = raw.cursor()
        # aiomysql hands out an awaitable that makes the cursor, asyncmy the cursor itself.
        return await cursor if inspect.isawaitable(cursor) else cursor

    async def query(self, cursor: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows.

        :param cursor: a cursor from :meth:`cursor`.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders, sent through the driver's escaping.
        """
        await cursor.execute(sql, tuple(params))
        # aiomysql answers fetchall() with a done future, asyncmy with a coroutine.
        return [tuple(row) for row in await cursor.fetchall()]

    async def query_first(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> tuple[Any, ...] | None:
        """Run one statement and return its first row, or ``None`` if it returned none.

        The rest of the rows are read too (as :meth:`query` does), so the connection is ready
        for the next statement.
        """
        await cursor.execute(sql, tuple(params))
        rows = await cursor.fetchall()
        return tuple(rows[0]) if rows else None

    async def execute_write(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> tuple[int | None, int | None]:
        """Run one statement that changes rows.

        :returns: the affected-row count and the insert id of the server's OK packet (set by
            ``LAST_INSERT_ID(expr)`` too), each ``None`` when the driver has none.
        """
        await cursor.execute(sql, tuple(params))
        affected, insert_id = cursor.rowcount, cursor.lastrowid
        return (
            affected if isinstance(affected, int) and affected >= 0 else None,
            insert_id if isinstance(insert_id, int) else None,
        )

    async def caller_cursor(self, raw: Any) -> Any:
        """:returns: a new cursor for the caller's own statements, its results read in full."""
        return await self.cursor(raw)

    async def finish_caller_cursor(self, raw: Any, cursor: Any) -> bool:
        """Close a caller's cursor, reading any result it left, so the next statement can run.

        :returns: ``False`` when results are still pending that the driver cannot skip.
        """
        await cursor.close()  # both drivers read the remaining result sets here
        return True

    def close(self, raw: Any) -> None:
        """Close ``raw`` at once, without a goodbye: safe at any moment, even mid-statement.

        The server sees the socket close, ends the session and frees its lock.
        """
        with contextlib.suppress(Exception):
            raw.close()

    async def quit(self, raw: Any) -> None:
        """Close ``raw`` politely (``COM_QUIT``); the caller bounds the time it may take."""
        await raw.ensure_closed()

    def socket_watch(self, raw: Any) -> tuple[Any, Callable[[], Awaitable[None]]]:
        """What tells when the socket of ``raw`` is really closed, taken before closing it.

        Closing a TLS connection does not close its socket at once: the TLS goodbye goes on
        in the background, and a loop that stops before it ends leaves the socket open.

        :returns: the connection's transport (to abort it) and a function whose awaitable
            ends once the socket is closed (it may raise the error that closed it).
        """
        raise NotImplementedError


class AiomysqlAdapter(AsyncDriverAdapter):
    """aiomysql: PyMySQL's protocol on asyncio streams (pure Python)."""

    name = "aiomysql"
    extra = "aiomysql"
    database_kwarg = "db"

    def owned_options(self) -> dict[str, Any]:
        """Also aiomysql's plain cursor."""
        return {**super().owned_options(), "cursorclass": self.module.Cursor}

    def connect_options(self, kwargs: dict[str, Any], connect_timeout: float) -> dict[str, Any]:
        """As for every driver, and an option file aiomysql cannot read is refused at once.

        aiomysql reads ``read_default_file`` with a plain ``RawConfigParser``, which fails on
        lines the mysql client reads (``!include``, an option without a value) with a bare
        ``configparser`` error, raised from inside its connection's constructor (whose
        finalizer then fails too). The same parser is run here first, so the error is an
        :exc:`~PyMySQLLock.InvalidArgumentError` naming the option, before anything is sent.
        """
        options = super().connect_options(kwargs, connect_timeout)
        path = options.get("read_default_file")
        if isinstance(path, (str, os.PathLike)) and path:
            parser = configparser.RawConfigParser()
            try:
                parser.read(os.path.expanduser(os.fspath(path)))
            except configparser.Error as exc:
                why = " ".join(str(exc).split())
                raise InvalidArgumentError(
                    f"read_default_file: aiomysql cannot read this option file ({why}); "
                    "it takes plain 'option=value' lines only"
                ) from None
        return options

    def socket_watch(self, raw: Any) -> tuple[Any, Callable[[], Awaitable[None]]]:
        """The stream writer of aiomysql (whose ``close()`` does not wait for the socket)."""
        writer = raw._writer
        return writer.transport, writer.wait_closed


class AsyncmyAdapter(AsyncDriverAdapter):
    """asyncmy (Cython), 0.2.13 or later.

    Earlier releases left the stream out of step when a query was cancelled, so that the next
    query on the connection could receive the cancelled one's rows (asyncmy issue 103, fixed
    in 0.2.13): a lock library cannot run on them.
    """

    name = "asyncmy"
    extra = "asyncmy"
    #: The oldest safe release.
    minimum: ClassVar[tuple[int, int, int]] = (0, 2, 13)

    def owned_options(self) -> dict[str, Any]:
        """Also asyncmy's plain cursor and plain escaping of ``bytes``."""
        cursors = importlib.import_module("asyncmy.cursors")
        return {**super().owned_options(), "cursor_cls": cursors.Cursor, "binary_prefix": False}

    def socket_watch(self, raw: Any) -> tuple[Any, Callable[[], Awaitable[None]]]:
        """The transport and protocol of asyncmy (its ``close()`` does not wait for the socket)."""
        proto = raw._proto

        async def closed() -> None:
            waiter = proto._closed_waiter
            if not waiter.cancelled():
                # Shielded: a timeout here must not cancel the driver's own future.
                await asyncio.shield(waiter)
                return
            # A quit() cut short by its timeout cancelled that future; the protocol still
            # drops its transport when the socket closes.
            while proto.transport is not None:
                await asyncio.sleep(0.01)

        return raw._transport, closed

    async def set_library_charset(self, raw: Any) -> None:
        """Set the session's character set back to the library's.

        asyncmy's own ``set_charset()`` fails (it reads an attribute its ``Charset`` lacks,
        in 0.2.18), so the statement is sent here; the connection was opened with that
        character set, so its own idea of the encoding is already right.
        """
        async with raw.cursor() as cursor:
            await cursor.execute(f"SET NAMES {LIBRARY_CHARSET}")

    def __init__(self) -> None:
        super().__init__()
        #: Whether the server turned out not to offer TLS (learned under ``PREFERRED``).
        self._server_without_tls = False

    async def connect(self, options: dict[str, Any]) -> Any:
        """Open a connection; under ``PREFERRED``, in plain text if the server has no TLS.

        asyncmy starts TLS whenever it has a context, without looking whether the server
        offers it, so "encrypted when offered" is done here: try TLS, and if the server does
        not speak it, connect again without and remember that for later connections.
        """
        preferred = self.tls.mode == SslMode.PREFERRED and self.tls.context is None
        if preferred and self._server_without_tls:
            return await self.module.connect(**{**options, "ssl": None})
        try:
            return await self.module.connect(**options)
        except self.module.OperationalError as exc:
            if not preferred or "SSL" not in str(exc):
                raise
        self._server_without_tls = True
        return await self.module.connect(**{**options, "ssl": None})

    def check_version(self) -> None:
        """Refuse asyncmy releases before 0.2.13."""
        try:
            installed = importlib.metadata.version("asyncmy")
        except importlib.metadata.PackageNotFoundError:
            return  # a build without metadata: nothing to compare
        numbers = tuple(int(part) for part in re.findall(r"\d+", installed)[:3])
        if numbers < self.minimum:
            raise DriverNotInstalledError(
                f"asyncmy {installed} is installed; PyMySQLLock needs asyncmy >= 0.2.13, "
                "because earlier releases could hand a cancelled query's rows to the next "
                "query: pip install 'PyMySQLLock[asyncmy]'"
            )


_ADAPTERS: dict[str, type[AsyncDriverAdapter]] = {
    "aiomysql": AiomysqlAdapter,
    "asyncmy": AsyncmyAdapter,
}
#: The ``driver=`` names :class:`~PyMySQLLock.aio.AsyncLocker` accepts, default first.
ASYNC_DRIVER_NAMES = tuple(_ADAPTERS)


def resolve_async_adapter(driver: Any) -> AsyncDriverAdapter:
    """Find the adapter for ``driver``.

    :param driver: ``"aiomysql"``, ``"asyncmy"``, an :class:`AsyncDriverAdapter`, or
        ``None`` for the first of those importable in that order.
    :returns: a new adapter (or ``driver`` itself), its module imported.
    :raises DriverNotInstalledError: if the driver cannot be imported.
    :raises InvalidArgumentError: for an unknown driver name.
    :raises InvalidArgumentTypeError: for anything else.
    """
    if isinstance(driver, AsyncDriverAdapter):
        adapter = driver
    elif driver is None:
        for name in ASYNC_DRIVER_NAMES:
            candidate = _ADAPTERS[name]()
            with contextlib.suppress(DriverNotInstalledError):
                candidate.module  # noqa: B018 - imports it
                return candidate
        raise DriverNotInstalledError(
            "no asyncio MySQL driver is installed; install one with "
            "'pip install PyMySQLLock[aiomysql]' or 'pip install PyMySQLLock[asyncmy]'"
        )
    elif isinstance(driver, str):
        if driver not in _ADAPTERS:
            raise InvalidArgumentError(
                f"unknown asyncio driver {driver!r}; use one of "
                f"{', '.join(ASYNC_DRIVER_NAMES)} (the blocking drivers work with Locker)"
            )
        adapter = _ADAPTERS[driver]()
    else:
        raise InvalidArgumentTypeError(
            "driver must be a driver name, an AsyncDriverAdapter or None, "
            f"not {type(driver).__name__}"
        )
    adapter.module  # noqa: B018 - fail now, not at the first acquire
    return adapter
