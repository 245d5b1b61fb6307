"""The Locker: the factory of locks, owner of their connections and of their keepalive thread."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from types import TracebackType
from typing import Any, Callable, ClassVar, Optional

from . import listing
from .connection import Session, SessionLost, StatementFailed
from .drivers import DriverAdapter, resolve_adapter
from .errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockConnectionError,
    LockError,
)
from .keepalive import Keepalive
from .lock import Lock, OnLost
from .names import strip_namespace, validate_namespace
from .server import ServerInfo
from .timeouts import FOREVER

__all__ = ["Locker"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds a lock connection may wait for one server answer before it counts as lost.
DEFAULT_PING_TIMEOUT = 10.0
#: Connections kept open for the next acquire after their lock was released.
DEFAULT_POOL_SIZE = 8
# Connect arguments that must never appear in a repr or a message.
_SECRET_KWARGS = frozenset({"password", "passwd", "password1", "password2", "password3"})
_SHOWN_KWARGS = ("host", "port", "unix_socket", "user", "database", "db")

# Driver connections a forked child inherited but could not make harmless (unknown socket):
# they are kept alive so that garbage collection never sends COM_QUIT on the parent's socket.
_FORK_ORPHANS: list[Any] = []
_LOCKERS: weakref.WeakSet[Locker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for locker in list(_LOCKERS):
        locker._forget_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Locker:
    """Hands out :class:`Lock` objects that share a server, its connections and a keepalive.

    ``*args`` and ``**connect_kwargs`` go to the driver's ``connect()``, for example
    ``Locker(host="db", user="app", password="...", database="app")``. The constructor connects
    once to check them, and keeps that connection for the first acquire.

    :param driver: ``"pymysql"``, ``"mysql.connector"``, ``"MySQLdb"``, a
        :class:`~PyMySQLLock.drivers.DriverAdapter`, or ``None`` for the first of those
        importable in that order.
    :param namespace: prefixes every lock name with ``namespace + "."``; :meth:`get_all_locks`
        then lists only this namespace.
    :param mysql_lib_connector: a driver ``connect`` callable (PyMySQLLock 0.2.0); its module
        picks the driver.
    :param ping_timeout: seconds any answer from the server may take before the connection
        counts as lost; bounds how long a hung server goes unnoticed.
    :param pool_size: how many idle connections to keep for later acquires.
    :raises DriverNotInstalledError: if the driver cannot be imported.
    :raises LockConnectionError: if the server cannot be reached with these arguments.
    :raises InvalidArgumentError: for a bad ``namespace``, ``ping_timeout`` or ``pool_size``.
    """

    #: The class :meth:`lock` instantiates; set it to a :class:`Lock` subclass to extend locks.
    lock_class: ClassVar[type[Lock]] = Lock

    def __init__(
        self,
        *args: Any,
        driver: Any = None,
        namespace: Optional[str] = None,
        mysql_lib_connector: Optional[Callable[..., Any]] = None,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
        **connect_kwargs: Any,
    ) -> None:
        self._closed = True  # until fully constructed, so close() and __del__ are no-ops
        self.namespace = validate_namespace(namespace)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int):
            raise InvalidArgumentTypeError("pool_size must be an int")
        if pool_size < 0:
            raise InvalidArgumentError("pool_size must be >= 0")
        if isinstance(ping_timeout, bool) or not isinstance(ping_timeout, (int, float)):
            raise InvalidArgumentTypeError("ping_timeout must be a number")
        if not 0 < ping_timeout < float("inf"):
            raise InvalidArgumentError("ping_timeout must be a positive, finite number")
        self._adapter: DriverAdapter = resolve_adapter(driver, mysql_lib_connector)
        self._args = args
        self._kwargs = connect_kwargs
        self.pool_size = pool_size
        # The user's own driver read timeout wins; ours bounds every server answer otherwise.
        self._read_timeout = self._adapter.read_timeout(connect_kwargs) or float(ping_timeout)
        # A server-side wait must end (and answer) before the read timeout fires.
        self._max_wait_chunk = max(self._read_timeout - 1.5, self._read_timeout / 2)
        self._server: Optional[ServerInfo] = None
        self._listing: Optional[listing.Strategy] = None
        self._init_state()
        self._closed = False
        _LOCKERS.add(self)
        # Check the arguments now, as PyMySQLLock 0.2.0 did; the connection is kept for later.
        self._checkin(self._checkout()[0])

    def _init_state(self) -> None:
        self._mutex = threading.Lock()
        self._idle: list[Session] = []
        self._in_use: set[Session] = set()
        self._held: set[Lock] = set()
        self._keepalive = Keepalive(f"PyMySQLLock-keepalive-{id(self):x}")

    def __repr__(self) -> str:
        shown = " ".join(
            f"{key}={self._kwargs[key]!r}" for key in _SHOWN_KWARGS if key in self._kwargs
        )
        state = "closed" if self._closed else f"{len(self._held)} held"
        return f"<Locker {self._adapter.name} {shown} {state}>".replace("  ", " ")

    # -- public API ---------------------------------------------------------------------------

    @property
    def driver(self) -> DriverAdapter:
        """The driver adapter in use."""
        return self._adapter

    @property
    def server(self) -> ServerInfo:
        """The server's flavour and version, learned from the first connection."""
        if self._server is None:  # pragma: no cover - set by the constructor's connection
            self._checkin(self._checkout()[0])
        assert self._server is not None
        return self._server

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def lock(
        self,
        name: str,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = 10,
        on_lost: Optional[OnLost] = None,
    ) -> Lock:
        """Make a lock object for ``name``; nothing is sent to the server until it is acquired.

        :param name: the lock name, any non-empty :class:`str`.
        :param timeout: the default timeout of :meth:`Lock.acquire` and of ``with``.
        :param refresh_interval_secs: the default seconds between keepalive checks.
        :param on_lost: called as ``on_lost(lock)`` once, from the keepalive thread, if the
            held lock is lost.
        :returns: a new :class:`Lock` (of :attr:`lock_class`).
        """
        return self.lock_class(
            self,
            name,
            timeout=timeout,
            refresh_interval_secs=refresh_interval_secs,
            on_lost=on_lost,
        )

    def get_all_locks(self) -> list[str]:
        """List the names of the user locks currently held on the server, each once.

        With a namespace, only that namespace's locks, without the prefix. Hashed names are
        listed as the server stores them.

        :returns: the names.
        :raises LockListingUnavailableError: if the server exposes no lock listing; the
            message says how to enable one.
        """
        session, _ = self._checkout()
        try:
            with session.mutex:
                names = self._list_names(session)
        except SessionLost as lost:
            self._discard(session)
            raise LockConnectionError(f"lost the connection while listing locks: {lost}") from (
                lost.__cause__
            )
        except BaseException:
            self._checkin(session)
            raise
        self._checkin(session)
        shown = (strip_namespace(name, self.namespace) for name in names)
        return list(dict.fromkeys(name for name in shown if name is not None))

    def _list_names(self, session: Session) -> list[str]:
        """Run the server's lock listing; re-choose it once if the cached one stopped working."""
        for attempt in (1, 2):
            if self._listing is None:
                self._listing = listing.choose(session, self.server)
            try:
                return self._listing.names(session)
            except StatementFailed as failure:
                self._listing = None  # e.g. the plugin was uninstalled: look again
                if attempt == 2:
                    raise LockError(f"listing locks failed: {failure.message}") from (
                        failure.__cause__
                    )
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Release every lock still held, stop the keepalive and close every connection.

        Idempotent. Locks and ``acquire()`` calls of a closed Locker raise :class:`LockError`.
        """
        if self._closed:
            return
        for lock in list(self._held):
            try:
                lock.release()
            except LockError:
                logger.debug("lock %r was not held at close", lock.name)
        with self._mutex:
            self._closed = True
            sessions = [*self._idle, *self._in_use]
            self._idle.clear()
            self._in_use.clear()
        self._keepalive.stop()
        for session in sessions:
            session.close()
        _LOCKERS.discard(self)

    def __enter__(self) -> Locker:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- connections (used by Lock) -----------------------------------------------------------

    def _fractional_timeouts(self) -> bool:
        return self.server.fractional_timeouts

    def _checkout(self, fresh: bool = False) -> tuple[Session, bool]:
        """Take an idle connection, or open one.

        :returns: the session and whether it came from the pool.
        """
        with self._mutex:
            if self._closed:
                raise LockError("this Locker is closed")
            if self._idle and not fresh:
                session = self._idle.pop()
                self._in_use.add(session)
                return session, True
        session = self._connect()
        with self._mutex:
            if self._closed:
                session.close()
                raise LockError("this Locker is closed")
            self._in_use.add(session)
        return session, False

    def _checkin(self, session: Session) -> None:
        """Give back a healthy connection whose session holds no lock."""
        with self._mutex:
            self._in_use.discard(session)
            if not self._closed and not session.broken and len(self._idle) < self.pool_size:
                self._idle.append(session)
                return
        session.close()

    def _discard(self, session: Session) -> None:
        """Close a connection that must not be reused."""
        with self._mutex:
            self._in_use.discard(session)
        session.close()

    def _connect(self) -> Session:
        try:
            raw = self._adapter.connect(self._args, self._kwargs, self._read_timeout)
        except TypeError as exc:
            raise InvalidArgumentTypeError(
                f"{self._adapter.name}.connect() rejected the arguments: {self._redact(exc)}"
            ) from exc
        except Exception as exc:
            if not (isinstance(exc, OSError) or self._adapter.is_driver_error(exc)):
                raise
            raise LockConnectionError(
                f"cannot connect to the MySQL server ({self._target()}) with "
                f"{self._adapter.name}: {self._redact(exc)}"
            ) from exc
        session = Session(self._adapter, raw)
        if self._server is None:
            self._server = ServerInfo.from_version_string(self._adapter.server_version(raw))
            logger.debug("connected to %s", self._server.label)
        return session

    def _target(self) -> str:
        kwargs = self._kwargs
        if "unix_socket" in kwargs:
            where = f"socket {kwargs['unix_socket']}"
        else:
            where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 3306)}"
        user = kwargs.get("user")
        return where if user is None else f"{where} as {user}"

    def _redact(self, exc: BaseException) -> str:
        """The exception's message, with any secret from the connect arguments masked."""
        message = str(exc)
        for key in _SECRET_KWARGS:
            secret = self._kwargs.get(key)
            if isinstance(secret, (str, bytes)) and secret:
                text = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
                message = message.replace(text, "***")
        return message

    # -- held locks (used by Lock) ------------------------------------------------------------

    def _lock_held(self, lock: Lock, interval: float) -> None:
        with self._mutex:
            self._held.add(lock)
        self._keepalive.watch(lock, interval)

    def _lock_released(self, lock: Lock) -> None:
        with self._mutex:
            self._held.discard(lock)
        self._keepalive.unwatch(lock)

    # -- fork ---------------------------------------------------------------------------------

    def _forget_parent(self) -> None:
        """In a forked child: make the parent's connections harmless and start empty.

        The child's copies of the parent's locks report not held (see ``Lock``); the child may
        take new locks through this Locker on new connections.
        """
        sessions = [*self._idle, *self._in_use]
        for session in sessions:
            if not self._adapter.detach_after_fork(session.raw):
                _FORK_ORPHANS.append(session.raw)
        self._init_state()
