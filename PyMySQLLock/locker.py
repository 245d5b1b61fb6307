"""The Locker: the factory of locks, owner of their session pool and of their keepalive thread."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, TypeVar, overload

from . import listing, statements
from .callbacks import Dispatcher
from .config import parse_url
from .connection import Session, StatementFailed
from .drivers import DriverAdapter, resolve_adapter
from .errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockError,
)
from .fencing import FencedLock, FenceTable, prepare_table
from .fencing_sql import DEFAULT_TABLE
from .holds import end_run, validate_hold
from .keepalive import Keepalive, KeepaliveDeadError
from .listing import LockInfo
from .lock import Lock, OnLost
from .log import logger
from .names import server_name, validate_name, validate_namespace
from .pool import SessionPool
from .selfwait import Holders
from .server import ServerInfo
from .timeouts import (
    DEFAULT_REFRESH_INTERVAL,
    FOREVER,
    validate_driver_timeout,
)

if TYPE_CHECKING:
    # Imported by the methods that make them: most programs never use either.
    from .election import Election, Term
    from .semaphore import Semaphore

__all__ = ["Locker"]

#: Seconds a lock connection may wait for one server answer before it counts as lost.
DEFAULT_PING_TIMEOUT = 10.0
#: Connections kept open for the next acquire after their lock was released.
DEFAULT_POOL_SIZE = 8
# Connect arguments that must never appear in a repr or a message.
_SHOWN_KWARGS = ("host", "port", "unix_socket", "user", "database", "db")

_ON_BUSY = ("wait", "skip", "raise")
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_DEFAULT_INTERVAL = DEFAULT_REFRESH_INTERVAL


def _refuse_deferred_bodies(function: Callable[..., Any]) -> None:
    """Refuse a function whose call returns before its body runs (for ``synchronized``)."""
    # Imported here: inspect is large, and a process that decorates nothing (the command
    # line run by cron) would pay for it on every start.
    import inspect

    what = getattr(function, "__qualname__", repr(function))
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise InvalidArgumentTypeError(
            f"synchronized cannot decorate {what}: it is an async function, whose body would "
            "run after the lock is released; use PyMySQLLock.aio.AsyncLocker.synchronized, or "
            "'async with' an AsyncLocker's lock inside it"
        )
    if inspect.isgeneratorfunction(function):
        raise InvalidArgumentTypeError(
            f"synchronized cannot decorate {what}: it is a generator function, whose body "
            "would run after the lock is released; hold the lock inside it with "
            "'with locker.lock(name):'"
        )


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
    once to check them, and keeps that connection for the first acquire; with ``lazy=True`` it
    touches no network and the first use connects instead (for a Locker made at import time).

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
    :param lazy: connect on first use rather than now. Arguments are still checked now as far
        as possible without a server; a server that is down or hangs is reported by the first
        call that needs it, with :class:`~PyMySQLLock.LockConnectionError` (after at most
        ``ping_timeout`` seconds, or the driver's ``connect_timeout`` if set).
    :param fencing_table: the table of fencing tokens (``"table"`` or ``"database.table"``),
        used by locks made with ``fencing=True``; created on first use.
    :raises DriverNotInstalledError: if the driver cannot be imported.
    :raises LockConnectionError: if the server cannot be reached with these arguments (only
        without ``lazy``).
    :raises InvalidArgumentError: for a bad ``namespace``, ``ping_timeout`` or ``pool_size``.

    .. versionchanged:: 1.0
       ``driver``, ``namespace``, ``ping_timeout``, ``pool_size``, ``lazy`` and
       ``fencing_table`` are the Locker's own arguments, never passed to the driver;
       ``mysql_lib_connector`` must be a supported driver's ``connect``; failures raise
       :exc:`~PyMySQLLock.DriverNotInstalledError` or :exc:`~PyMySQLLock.LockConnectionError`;
       the check connection is kept for the first acquire instead of leaked; usable in a
       ``with`` statement (see :meth:`close`).
    """

    #: The class :meth:`lock` instantiates; set it to a :class:`Lock` subclass to extend locks.
    lock_class: ClassVar[type[Lock]] = Lock

    def __init__(
        self,
        *args: Any,
        driver: Any = None,
        namespace: str | None = None,
        mysql_lib_connector: Callable[..., Any] | None = None,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
        lazy: bool = False,
        fencing_table: str = DEFAULT_TABLE,
        **connect_kwargs: Any,
    ) -> None:
        self._closed = True  # until fully constructed, so close() and __del__ are no-ops
        if args and isinstance(args[0], str) and "://" in args[0]:
            raise InvalidArgumentError(
                "Locker() takes the driver's connect() arguments, not a URL; "
                "use Locker.from_url(url) for a URL"
            )
        self.namespace = validate_namespace(namespace)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int):
            raise InvalidArgumentTypeError("pool_size must be an int")
        if pool_size < 0:
            raise InvalidArgumentError("pool_size must be >= 0")
        if not isinstance(lazy, bool):
            raise InvalidArgumentTypeError("lazy must be a bool")
        ping_timeout = validate_driver_timeout(ping_timeout, "ping_timeout")
        self._fence = FenceTable(fencing_table)
        self._adapter: DriverAdapter = resolve_adapter(driver, mysql_lib_connector)
        self._adapter.check_options(connect_kwargs)
        self._kwargs = connect_kwargs
        # The user's own driver read timeout wins; ours bounds every server answer otherwise.
        self._read_timeout = self._adapter.read_timeout(connect_kwargs) or float(ping_timeout)
        self._pool = SessionPool(self._adapter, args, connect_kwargs, self._read_timeout, pool_size)
        self._listing: listing.Strategy | None = None
        self._init_state()
        self._closed = False
        _LOCKERS.add(self)
        if lazy:
            # Importing the driver is local work, and a missing one is better found now.
            self._adapter.connect_function()
        else:
            # Check the arguments now, as PyMySQLLock 0.2.0 did; the connection is kept.
            self._pool.ensure_server()

    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._held: set[Lock] = set()
        # Server name -> (the Lock holding it, the thread that acquired it): lets an acquire
        # see at once that its own thread already holds the name through another Lock.
        self._holders: Holders[Lock] = Holders()
        self._keepalive = Keepalive(
            f"PyMySQLLock-keepalive-{id(self):x}",
            self._read_timeout,
            on_death=self._keepalive_died,
        )
        self._callbacks = Dispatcher(f"PyMySQLLock-callbacks-{id(self):x}")

    @classmethod
    def from_url(cls, url: Any, **kwargs: Any) -> Locker:
        """Make a Locker from a URL such as ``mysql+pymysql://user:pw@host:3306/db``.

        See :mod:`PyMySQLLock.config` for the schemes and query options of a :class:`str`.
        A SQLAlchemy ``URL`` object is read as SQLAlchemy itself would connect with it
        (see :meth:`from_engine`), its password intact.

        :param url: the URL; the password in it may be percent-encoded.
        :param kwargs: more Locker or ``connect()`` arguments; they win over the URL's.
        :returns: a connected Locker (unless ``lazy=True``).
        :raises InvalidArgumentTypeError: if ``url`` is neither a :class:`str` nor a
            SQLAlchemy ``URL``.

        .. versionadded:: 1.0
        """
        if not isinstance(url, str) and type(url).__module__.startswith("sqlalchemy."):
            from .contrib.sqlalchemy import url_arguments

            return cls._from_arguments(url_arguments(url), kwargs)
        settings = parse_url(url)
        adapter = resolve_adapter(kwargs.pop("driver", settings.driver))
        options: dict[str, Any] = dict(settings.locker_options)
        options.update(adapter.translate_options(settings.connect_kwargs))
        options.update(kwargs)
        return cls(driver=adapter, **options)

    @classmethod
    def from_engine(cls, engine: Any, **kwargs: Any) -> Locker:
        """Make a Locker that connects as a SQLAlchemy engine does, on connections of its own.

        The driver comes from the engine's dialect (``mysql+pymysql``, ``mysql+mysqldb``,
        ``mysql+mysqlconnector``, or the same with ``mariadb+``); the connect arguments are
        the ones the engine gives its driver, ``connect_args=`` (TLS included) and password
        intact. Nothing is taken from the engine's pool, and creating the Locker sends nothing
        through the engine. Needs SQLAlchemy, imported only by this call.

        :param engine: a ``sqlalchemy.engine.Engine``.
        :param kwargs: more Locker or ``connect()`` arguments; they win over the engine's.
        :returns: a connected Locker (unless ``lazy=True``).
        :raises InvalidArgumentError: for an engine of another database, an unsupported or
            asyncio driver, or an engine made with ``creator=``.

        .. versionadded:: 1.0
        """
        from .contrib.sqlalchemy import engine_arguments

        return cls._from_arguments(engine_arguments(engine), kwargs)

    @classmethod
    def _from_arguments(cls, found: Any, kwargs: dict[str, Any]) -> Locker:
        options = {**found.kwargs, **kwargs}
        options.setdefault("driver", found.driver)
        return cls(*found.args, **options)

    def __repr__(self) -> str:
        shown = " ".join(
            f"{key}={self._kwargs[key]!r}" for key in _SHOWN_KWARGS if key in self._kwargs
        )
        state = "closed" if self._closed else f"{len(self._held)} held"
        return f"<Locker {self._adapter.name} {shown} {state}>".replace("  ", " ")

    # -- public API ---------------------------------------------------------------------------

    @property
    def pool_size(self) -> int:
        """How many idle connections are kept for later acquires (may be changed).

        .. versionadded:: 1.0
        """
        return self._pool.size

    @pool_size.setter
    def pool_size(self, size: int) -> None:
        self._pool.size = size

    @property
    def driver(self) -> DriverAdapter:
        """The driver adapter in use.

        .. versionadded:: 1.0
        """
        return self._adapter

    @property
    def server(self) -> ServerInfo:
        """The server's flavour and version, learned from the first connection.

        :raises LockConnectionError: if a lazy Locker must connect now and cannot.

        .. versionadded:: 1.0
        """
        return self._pool.ensure_server()

    @property
    def target(self) -> str:
        """Where this Locker connects, for messages (never the password).

        ``host:port as user``, ``socket PATH as user``, or the option file named by
        ``read_default_file`` when that is where the host comes from.

        .. versionadded:: 1.0
        """
        return self._pool.target()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called.

        .. versionadded:: 1.0
        """
        return self._closed

    def lock(
        self,
        name: str,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = _DEFAULT_INTERVAL,
        on_lost: OnLost | None = None,
        fencing: bool = False,
    ) -> Lock:
        """Make a lock object for ``name``; nothing is sent to the server until it is acquired.

        :param name: the lock name, any non-empty :class:`str`.
        :param timeout: the default timeout of :meth:`Lock.acquire` and of ``with``.
        :param refresh_interval_secs: the default seconds between keepalive checks.
        :param on_lost: called as ``on_lost(lock)`` once if the held lock is lost: on the
            Locker's callback thread when the keepalive finds the loss (so that a slow or
            failing callback never delays a check), or in the thread calling ``release()``
            when that is what finds it. ``lock.lost_reason`` says why.
        :param fencing: take a fencing token at each acquire, on the holding session (a
            :class:`~PyMySQLLock.fencing.FencedLock`; see :attr:`Lock.token`).
        :returns: a new :class:`Lock` (of :attr:`lock_class`).
        :raises InvalidArgumentError: for ``fencing=True`` with a :attr:`lock_class` that is not
            a :class:`~PyMySQLLock.fencing.FencedLock`.

        .. versionchanged:: 1.0
           ``timeout``, ``refresh_interval_secs`` and ``on_lost`` set the lock's defaults; a
           :attr:`lock_class` gets only those given, so a 0.2.0 subclass keeps working.
        """
        if fencing is not False:
            if fencing is not True:
                raise InvalidArgumentTypeError("fencing must be True or False")
            fenced: type[Lock] = FencedLock
            if self.lock_class is not Lock:
                if not issubclass(self.lock_class, FencedLock):
                    raise InvalidArgumentError(
                        "fencing=True needs a FencedLock: make lock_class a subclass of "
                        "PyMySQLLock.fencing.FencedLock"
                    )
                fenced = self.lock_class
            return fenced(
                self,
                name,
                timeout=timeout,
                refresh_interval_secs=refresh_interval_secs,
                on_lost=on_lost,
            )
        if self.lock_class is Lock:  # the usual case, called once per run of a job
            return Lock(
                self,
                name,
                timeout=timeout,
                refresh_interval_secs=refresh_interval_secs,
                on_lost=on_lost,
            )
        # Only the options the caller set are passed on, so that a lock_class written for
        # PyMySQLLock 0.2.0, whose constructor took just (locker, name), keeps working.
        options: dict[str, Any] = {}
        if type(timeout) is not int or timeout != FOREVER:
            options["timeout"] = timeout
        if type(refresh_interval_secs) is not int or refresh_interval_secs != _DEFAULT_INTERVAL:
            options["refresh_interval_secs"] = refresh_interval_secs
        if on_lost is not None:
            options["on_lost"] = on_lost
        return self.lock_class(self, name, **options)

    @property
    def fencing_table(self) -> str:
        """The table of fencing tokens, as given (see :meth:`create_fencing_table`).

        .. versionadded:: 1.0
        """
        return self._fence.name

    def create_fencing_table(self) -> None:
        """Create the table of fencing tokens now, if it does not exist.

        Locks made with ``fencing=True`` create it on first use; this lets an administrator
        create it ahead (``pymysqllock fencing init``), so that the application's account needs
        only ``INSERT`` and ``UPDATE`` on it.

        :raises PermissionDeniedError: if this account may not create it.
        :raises UnsupportedServerError: on a server where tokens could be wrong (Galera,
            read-only, multi-primary Group Replication).
        :raises InvalidArgumentError: if a table of that name exists with another engine, or
            there is no database to put it in.

        .. versionadded:: 1.0
        """
        self._pool.run(lambda session: prepare_table(self._fence, self.server, session))

    def semaphore(
        self,
        name: str,
        limit: int,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = _DEFAULT_INTERVAL,
        on_lost: Callable[[Semaphore], Any] | None = None,
    ) -> Semaphore:
        """Make a counting semaphore: up to ``limit`` holders of ``name`` at once.

        Nothing is sent to the server until it is acquired. See :doc:`/coordination` for how
        it waits and how fair it is.

        :param name: the semaphore's name; its slots are the locks ``name#1`` ...
            ``name#<limit>``, and waiters queue on ``name#queue``.
        :param limit: holders at once (every participant must use the same value).
        :param timeout: the default timeout of :meth:`Semaphore.acquire` and of ``with``.
        :param refresh_interval_secs: the default seconds between keepalive checks.
        :param on_lost: called as ``on_lost(semaphore)`` once if the held slot is lost.
        :returns: a new :class:`~PyMySQLLock.Semaphore`.

        .. versionadded:: 1.0
        """
        from .semaphore import Semaphore

        return Semaphore(
            self,
            name,
            limit,
            timeout=timeout,
            refresh_interval_secs=refresh_interval_secs,
            on_lost=on_lost,
        )

    def election(
        self,
        name: str,
        *,
        identity: str | None = None,
        on_elected: Callable[[Term], Any] | None = None,
        on_demoted: Callable[[Term], Any] | None = None,
        refresh_interval_secs: float = _DEFAULT_INTERVAL,
    ) -> Election:
        """Make a leader election among every process that uses ``name``; see :class:`Election`.

        Nothing happens until :meth:`Election.start` (or ``with``).

        :returns: a new :class:`~PyMySQLLock.Election`.

        .. versionadded:: 1.0
        """
        from .election import Election

        return Election(
            self,
            name,
            identity=identity,
            on_elected=on_elected,
            on_demoted=on_demoted,
            refresh_interval_secs=refresh_interval_secs,
        )

    def get_all_locks(self) -> list[str]:
        """List the names of the user locks currently held on the server, each once.

        With a namespace, only that namespace's locks, without the prefix. Hashed names are
        listed as the server stores them.

        :returns: the names.
        :raises LockListingUnavailableError: if the server exposes no lock listing; the
            message says how to enable one.

        .. versionchanged:: 1.0
           Reads ``METADATA_LOCK_INFO`` on MariaDB when installed, else the Performance Schema;
           raises :exc:`~PyMySQLLock.LockListingUnavailableError` when the server offers no listing;
           lists granted locks only, each once, only those of the namespace; reuses a pooled
           connection.
        """
        names = self._pool.run(self._list_names)
        return statements.visible_names(names, self.namespace)

    def holder(self, name: str) -> int | None:
        """Ask the server who holds ``name``.

        :param name: the lock name (as given to :meth:`lock`).
        :returns: the holder's connection id (``CONNECTION_ID()``), or ``None`` if free.

        .. versionadded:: 1.0
        """
        rows = self._admin(statements.HOLDER, (self._server_name(name),))
        return statements.holder_answer(rows[0] if rows else None)

    def is_locked(self, name: str) -> bool:
        """:returns: whether any session on the server holds ``name`` right now.

        .. versionadded:: 1.0
        """
        return self.holder(name) is not None

    def list_locks(self) -> list[LockInfo]:
        """List the locks held on the server with their holders.

        With a namespace, only that namespace's locks. User, host and age are filled in where
        the server shows them to this account.

        :returns: one :class:`~PyMySQLLock.LockInfo` per held lock.
        :raises LockListingUnavailableError: if the server exposes no lock listing.

        .. versionadded:: 1.0
        """
        rows = self._pool.run(self._list_details)
        return statements.lock_infos(rows, self.namespace)

    def force_release(self, name: str) -> bool:
        """Free ``name`` by ending the session that holds it (``KILL CONNECTION``).

        The holder's process learns of it through its own lost-lock detection. The session id
        is read from the server just before, never taken from the caller. A window of a round
        trip or two remains between that read and the ``KILL``: a
        holder that releases ``name`` and reuses its session for other work within it is
        ended instead. If that session belongs to
        PyMySQLLock, it reports whatever lock it then held as lost (never hides it); a
        waiting ``acquire()`` on it raises :class:`LockConnectionError`.

        :param name: the lock name.
        :returns: ``True`` if a holder was killed, ``False`` if the lock was free.
        :raises PermissionDeniedError: if this account may not kill the holder's session
            (MySQL needs ``CONNECTION_ADMIN`` or ``SUPER``, MariaDB ``CONNECTION ADMIN`` or
            ``SUPER``, for another account's session).

        .. versionadded:: 1.0
        """
        holder = self.holder(name)
        if holder is None:
            return False
        self._pool.kill(statements.KILL_CONNECTION, holder)
        # KILL returns before the killed session has let go of its locks on some servers.
        deadline = time.monotonic() + self._read_timeout
        while self.holder(name) == holder and time.monotonic() < deadline:
            time.sleep(0.01)
        return True

    @overload
    def synchronized(
        self,
        name: str,
        *,
        timeout: float | None = ...,
        on_busy: Literal["skip"],
        refresh_interval_secs: float = ...,
        hold_at_least: float | None = ...,
    ) -> Callable[[Callable[..., T]], Callable[..., T | None]]: ...

    @overload
    def synchronized(
        self,
        name: str,
        *,
        timeout: float | None = ...,
        on_busy: Literal["wait", "raise"] = ...,
        refresh_interval_secs: float = ...,
        hold_at_least: float | None = ...,
    ) -> Callable[[F], F]: ...

    @overload
    def synchronized(
        self,
        name: str,
        *,
        timeout: float | None = ...,
        on_busy: str,
        refresh_interval_secs: float = ...,
        hold_at_least: float | None = ...,
    ) -> Callable[[Callable[..., T]], Callable[..., T | None]]: ...

    def synchronized(
        self,
        name: str,
        *,
        timeout: float | None = None,
        on_busy: str = "wait",
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
        hold_at_least: float | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate a function so that each call runs while holding ``name``.

        Made for scheduled jobs run by several hosts: with ``on_busy="skip"`` one instance
        runs the job and the others return ``None`` at once.

        :param name: the lock name.
        :param timeout: how long a call waits for the lock; default ``-1`` (forever) for
            ``"wait"``, ``0`` (try once) for ``"skip"`` and ``"raise"``.
        :param on_busy: what a call does when the lock is not acquired in time: ``"wait"``
            and ``"raise"`` raise :class:`~PyMySQLLock.LockTimeoutError`, ``"skip"`` returns
            ``None`` without calling the function.
        :param refresh_interval_secs: keepalive interval while the function runs.
        :param hold_at_least: keep the lock until this many seconds after it was taken, even
            when the function returns (or raises) sooner, so that another host's late trigger
            finds it busy and skips (ShedLock's ``lockAtLeastFor``). The call returns at once;
            the Locker's keepalive thread releases the lock when the time is up, and closing
            the Locker releases it earlier. See :doc:`/coordination`.
        :returns: the decorator. With ``on_busy="skip"`` the decorated function's result type
            becomes ``T | None``. Decorating a coroutine function, an async generator function
            or a generator function raises :class:`~PyMySQLLock.InvalidArgumentTypeError` (a
            :class:`TypeError`): the call would only create the coroutine or generator, and
            its body would run later, without the lock.
        :raises InvalidArgumentError: for an unknown ``on_busy`` or a bad ``hold_at_least``.

        .. versionadded:: 1.0
        """
        if on_busy not in _ON_BUSY:
            raise InvalidArgumentError(f"on_busy must be one of {', '.join(_ON_BUSY)}")
        hold = validate_hold(hold_at_least)
        if timeout is None:
            timeout = -1 if on_busy == "wait" else 0
        self.lock(name, timeout=timeout, refresh_interval_secs=refresh_interval_secs)

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            _refuse_deferred_bodies(function)

            @functools.wraps(function)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                lock = self.lock(name, timeout=timeout, refresh_interval_secs=refresh_interval_secs)
                if not lock.acquire():
                    if on_busy == "skip":
                        logger.info("skipped %s: lock %r is busy", function.__qualname__, name)
                        return None
                    raise lock._timeout_error(f"lock {name!r} is busy")
                acquired_at = time.monotonic()
                # Released as a with block would: a loss during the call raises LockLostError
                # once the function has returned, unless the function itself raised. A
                # minimum hold keeps a lock that is still held.
                try:
                    result = function(*args, **kwargs)
                except BaseException as exc:
                    end_run(lock, acquired_at, hold, exc)
                    raise
                end_run(lock, acquired_at, hold, None)
                return result

            return wrapper

        return decorator

    def _server_name(self, name: str) -> str:
        return server_name(validate_name(name), self.namespace)

    def _admin(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement on an idle connection; see :meth:`SessionPool.run`."""
        return self._pool.run_all(sql, params)

    def _list_names(self, session: Session) -> list[str]:
        return self._listed(session, lambda strategy: listing.names(strategy, session))

    def _list_details(self, session: Session) -> list[listing.DetailRow]:
        return self._listed(session, lambda strategy: listing.details(strategy, session))

    def _listed(self, session: Session, read: Callable[[listing.Strategy], T]) -> T:
        """Read the server's lock listing; re-choose it once if the cached one stopped working."""
        for attempt in (1, 2):
            if self._listing is None:
                self._listing = listing.choose(session, self.server)
            try:
                return read(self._listing)
            except StatementFailed:
                self._listing = None  # e.g. the plugin was uninstalled: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Release every lock still held, stop the keepalive and close every connection.

        Idempotent (and an interrupted ``close()`` finishes when called again), and safe from
        any thread. Locks and ``acquire()`` calls of a closed Locker raise :class:`LockError`,
        including an ``acquire()`` waiting in another thread when ``close()`` is called: its
        connection is cut (never closed under it) and it raises at once. Returns within about
        one ``ping_timeout`` even when the server hangs: the locks not released by then are let
        go by closing their connections, which the server treats as a release.

        .. versionadded:: 1.0
        """
        # No early return when already closed: a close() cut short (by a KeyboardInterrupt,
        # say) finishes when called again, and a finished one finds nothing left to do.
        self._closed = True
        self._pool.refuse("this Locker is closed", closing=True)
        deadline = time.monotonic() + self._read_timeout
        for lock in list(self._held):
            try:
                if time.monotonic() < deadline:
                    lock.release()
                else:
                    lock._drop()
            except LockError:
                logger.debug("lock %r was not held at close", lock.name)
        self._pool.abort_in_use()
        self._keepalive.stop()
        self._pool.close_idle()
        _LOCKERS.discard(self)

    def __del__(self) -> None:
        # A Locker dropped without close() (as 0.2.0 code does) holds no lock (held locks
        # keep it alive), so only idle connections are left: close them now instead of
        # whenever the driver objects happen to be collected.
        # At interpreter exit modules may already be torn down: never let that show.
        with contextlib.suppress(Exception):
            if getattr(self, "_closed", True) or getattr(self, "_pid", None) != os.getpid():
                return
            self._pool.close_all_now()

    def __enter__(self) -> Locker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- held locks (used by Lock) ------------------------------------------------------------

    # No mutex for _held: set.add and set.discard are atomic, and close() copies the set in
    # one step; acquirers then never queue behind each other or the keepalive here.

    def _lock_held(self, lock: Lock, interval: float) -> None:
        """Start watching a lock just acquired; :raises LockError: if this Locker refuses.

        Added to :attr:`_held` before the refusal is read, and close() sets the refusal
        before it copies :attr:`_held`: a close() racing this acquire either releases the
        lock or makes this raise (and the caller then closes the lock's session).
        """
        self._held.add(lock)
        # Called by the acquiring thread; no other Lock of this Locker can hold the same name
        # now (the server grants it to one session), so the entry is this lock's alone.
        self._holders.granted(lock.server_name, lock, threading.get_ident())
        refusal = self._pool.refusal
        if refusal is not None:
            raise LockError(refusal)
        try:
            self._keepalive.watch(lock, interval)
        except KeepaliveDeadError as exc:
            # The thread may still be reporting its locks, before it calls _keepalive_died.
            raise LockError(self._pool.refusal or str(exc)) from None

    def _keepalive_died(self, reason: str) -> None:
        """Called by a keepalive thread that ended unexpectedly (after it reported its locks)."""
        self._pool.refuse(
            f"this Locker's keepalive thread ended ({reason}), so it cannot guard new locks; "
            "make a new Locker"
        )

    def _lock_released(self, lock: Lock) -> None:
        self._held.discard(lock)
        # Before RELEASE_LOCK is sent: no new holder of the name can have registered yet.
        self._holders.forget(lock.server_name, lock)
        self._keepalive.unwatch(lock)

    # -- fork ---------------------------------------------------------------------------------

    def _forget_parent(self) -> None:
        """In a forked child: make the parent's connections harmless and start empty.

        The child's copies of the parent's locks report not held (see ``Lock``); the child may
        take new locks through this Locker on new connections.
        """
        self._pool.forget_parent()
        self._init_state()
