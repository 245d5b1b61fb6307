"""The AsyncLocker: the factory of asyncio locks, owner of their sessions and keepalive."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any, Callable, ClassVar, Literal, TypeVar, overload

from ..config import parse_url
from ..connection import StatementFailed
from ..errors import InvalidArgumentError, InvalidArgumentTypeError, LockError
from ..fencing import FenceTable
from ..fencing_sql import DEFAULT_TABLE
from ..holds import validate_hold
from ..names import server_name, validate_name, validate_namespace
from ..selfwait import Holders
from ..server import ServerInfo
from ..statements import (
    HOLDER,
    KILL_CONNECTION,
    PERFORMANCE_READY,
    DetailRow,
    Listing,
    LockInfo,
    holder_answer,
    kill_failure,
    listed_details,
    listed_names,
    listing_candidates,
    listing_missing,
    lock_infos,
    no_listing_error,
    performance_schema_problem,
    visible_names,
)
from ..timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER, validate_driver_timeout
from .drivers import ASYNC_DRIVER_NAMES, AsyncDriverAdapter, resolve_async_adapter
from .election import AsyncElection, TermCallback
from .fencing import AsyncFencedLock, prepare_table
from .holds import end_run
from .keepalive import AsyncKeepalive
from .lock import AsyncLock, AsyncOnLost
from .pool import AsyncPool
from .semaphore import AsyncSemaphore
from .session import AsyncSession
from .waits import AbandonedWaits

__all__ = ["AsyncLocker"]

logger = logging.getLogger("PyMySQLLock")

#: Seconds a lock session may wait for one server answer before it counts as lost.
DEFAULT_PING_TIMEOUT = 10.0
#: Sessions kept open for the next acquire after their lock was released.
DEFAULT_POOL_SIZE = 8
_ON_BUSY = ("wait", "skip", "raise")
_DEFAULT_INTERVAL = DEFAULT_REFRESH_INTERVAL
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
T = TypeVar("T")


def _task_in(tasks: set[asyncio.Task[T]], work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``work`` as a task kept in ``tasks`` while it runs.

    :meth:`AsyncLocker.close` waits for or ends each set's tasks; the set also keeps a running
    task from being collected.
    """
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


class AsyncLocker:
    """Hands out :class:`AsyncLock` objects that share a server, its sessions and a keepalive.

    ``**connect_kwargs`` go to the driver's ``connect()``, for example
    ``AsyncLocker(host="db", user="app", password="...", database="app")``. Nothing is sent
    until the first lock or call needs the server; ``async with locker:`` (or
    :meth:`connect`) connects at once, which checks the arguments early.

    Use an AsyncLocker from one event loop, and close it (:meth:`close` or ``async with``)
    before that loop ends.

    :param driver: ``"aiomysql"``, ``"asyncmy"``, an
        :class:`~PyMySQLLock.aio.drivers.AsyncDriverAdapter`, or ``None`` for the first of
        those importable in that order.
    :param namespace: prefixes every lock name with ``namespace + "."``; :meth:`get_all_locks`
        then lists only this namespace.
    :param ping_timeout: seconds any answer from the server may take before the session
        counts as lost (a ``read_timeout`` connect argument overrides it).
    :param pool_size: how many idle sessions to keep for later acquires.
    :param fencing_table: the table of fencing tokens (``"table"`` or ``"database.table"``),
        used by locks made with ``fencing=True``; created on first use. The blocking
        :class:`~PyMySQLLock.Locker` uses the same table, so their tokens are one sequence.
    :raises DriverNotInstalledError: if the driver cannot be imported.
    :raises InvalidArgumentError: for a bad ``namespace``, ``ping_timeout`` or ``pool_size``,
        and for a URL (use :meth:`from_url`).
    :raises InvalidArgumentTypeError: for any other positional argument.
    """

    #: The class :meth:`lock` instantiates; set it to an :class:`AsyncLock` subclass.
    lock_class: ClassVar[type[AsyncLock]] = AsyncLock

    def __init__(
        self,
        *args: Any,
        driver: Any = None,
        namespace: str | None = None,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
        fencing_table: str = DEFAULT_TABLE,
        **connect_kwargs: Any,
    ) -> None:
        if args:
            # Without this, a URL passed here is Python's bare "takes 1 positional argument".
            if isinstance(args[0], str) and "://" in args[0]:
                raise InvalidArgumentError(
                    "AsyncLocker() takes the driver's connect() arguments, not a URL; "
                    "use AsyncLocker.from_url(url) for a URL"
                )
            raise InvalidArgumentTypeError(
                "AsyncLocker() takes keyword arguments only (host=..., user=...); "
                "use AsyncLocker.from_url(url) for a URL"
            )
        self._closed = False
        self._fence = FenceTable(fencing_table)
        self.namespace = validate_namespace(namespace)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int):
            raise InvalidArgumentTypeError("pool_size must be an int")
        if pool_size < 0:
            raise InvalidArgumentError("pool_size must be >= 0")
        read_timeout = validate_driver_timeout(ping_timeout, "ping_timeout")
        if connect_kwargs.get("read_timeout") is not None:
            read_timeout = validate_driver_timeout(connect_kwargs["read_timeout"], "read_timeout")
        connect_kwargs.pop("read_timeout", None)
        self._adapter = resolve_async_adapter(driver)
        self._kwargs = connect_kwargs
        self._pool = AsyncPool(self._adapter, connect_kwargs, read_timeout, pool_size)
        self._keepalive = AsyncKeepalive()
        self._held: set[AsyncLock] = set()
        # Server name -> (the AsyncLock holding it, the task that acquired it): lets an
        # acquire see at once that its own task already holds the name through another lock.
        self._holders: Holders[AsyncLock] = Holders()
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._elections: set[AsyncElection] = set()
        self._kept: set[asyncio.Task[None]] = set()
        self._tracked: set[asyncio.Task[None]] = set()
        self._abandoned = AbandonedWaits(self._pool, self._track)
        self._listing: Listing | None = None

    @classmethod
    def from_url(cls, url: Any, **kwargs: Any) -> AsyncLocker:
        """Make an AsyncLocker from a URL such as ``mysql+aiomysql://user:pw@host:3306/db``.

        The schemes are ``mysql+aiomysql``, ``mysql+asyncmy`` and plain ``mysql`` (the default
        driver), also spelled ``mariadb...``; the query options are those of
        :mod:`PyMySQLLock.config`. A SQLAlchemy ``URL`` object (``mysql+aiomysql`` or
        ``mysql+asyncmy``, or ``mariadb+``) is read as SQLAlchemy itself would connect with
        it, its password intact (see :meth:`from_engine`).

        :param url: the URL; the password in it may be percent-encoded.
        :param kwargs: more AsyncLocker or ``connect()`` arguments; they win over the URL's.
        :returns: an AsyncLocker (not yet connected).
        :raises InvalidArgumentError: for a blocking driver's scheme, or a bad URL.

        .. versionchanged:: 1.0
           Also a SQLAlchemy ``URL``.
        """
        if not isinstance(url, str) and type(url).__module__.startswith("sqlalchemy."):
            from ..contrib.sqlalchemy import url_arguments

            found = url_arguments(url, for_asyncio=True)
            return cls(**{"driver": found.driver, **found.kwargs, **kwargs})
        settings = parse_url(url)
        if settings.driver is not None and settings.driver not in ASYNC_DRIVER_NAMES:
            raise InvalidArgumentError(
                f"the URL names the blocking driver {settings.driver!r}: use "
                "PyMySQLLock.Locker.from_url, or mysql+aiomysql:// or mysql+asyncmy:// here"
            )
        options: dict[str, Any] = {"driver": settings.driver}
        options.update(settings.locker_options)
        options.update(settings.connect_kwargs)
        options.update(kwargs)
        return cls(**options)

    @classmethod
    def from_engine(cls, engine: Any, **kwargs: Any) -> AsyncLocker:
        """Make an AsyncLocker that connects as a SQLAlchemy engine does, on connections of its own.

        The driver comes from the engine's dialect (``mysql+aiomysql``, ``mysql+asyncmy``, or
        the same with ``mariadb+``); the connect arguments are the ones the engine gives its
        driver, ``connect_args=`` (TLS included) and password intact. They are read without
        connecting and without an event loop; nothing is taken from the engine's pool. Needs
        SQLAlchemy, imported only by this call.

        :param engine: a ``sqlalchemy.ext.asyncio.AsyncEngine`` (or the ``Engine`` it wraps).
        :param kwargs: more AsyncLocker or ``connect()`` arguments; they win over the engine's.
        :returns: an AsyncLocker (not yet connected).
        :raises InvalidArgumentError: for an engine of another database, a blocking or
            unsupported driver, or an engine made with ``creator=``.

        .. versionadded:: 1.0
        """
        from ..contrib.sqlalchemy import engine_arguments

        found = engine_arguments(engine, for_asyncio=True)
        return cls(**{"driver": found.driver, **found.kwargs, **kwargs})

    def __repr__(self) -> str:
        shown = " ".join(
            f"{key}={self._kwargs[key]!r}"
            for key in ("host", "port", "unix_socket", "user", "database", "db")
            if key in self._kwargs
        )
        state = "closed" if self._closed else f"{len(self._held)} held"
        return f"<AsyncLocker {self._adapter.name} {shown} {state}>".replace("  ", " ")

    # -- public API ---------------------------------------------------------------------------

    @property
    def driver(self) -> AsyncDriverAdapter:
        """The driver adapter in use."""
        return self._adapter

    @property
    def server(self) -> ServerInfo:
        """The server's flavour and version, learned from the first connection.

        :raises LockError: before the first connection (see :meth:`connect`).
        """
        server = self._pool.server
        if server is None:
            raise LockError("not connected yet: await locker.connect() first")
        return server

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pool_size(self) -> int:
        """How many idle sessions are kept."""
        return self._pool.size

    async def connect(self) -> AsyncLocker:
        """Connect now (once), to check the arguments and learn the server.

        :returns: this AsyncLocker.
        :raises LockConnectionError: if the server cannot be reached with these arguments.
        """
        await self._pool.ensure_server()
        return self

    def lock(
        self,
        name: str,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = _DEFAULT_INTERVAL,
        on_lost: AsyncOnLost | None = None,
        fencing: bool = False,
    ) -> AsyncLock:
        """Make a lock object for ``name``; nothing is sent to the server until it is acquired.

        :param name: the lock name, any non-empty :class:`str`.
        :param timeout: the default timeout of :meth:`AsyncLock.acquire` and ``async with``.
        :param refresh_interval_secs: the default seconds between keepalive checks.
        :param on_lost: called as ``on_lost(lock)`` once if the held lock is lost; a coroutine
            function runs as a task, which :meth:`close` waits for.
        :param fencing: take a fencing token at each acquire, on the holding session (an
            :class:`~PyMySQLLock.aio.fencing.AsyncFencedLock`; see
            :class:`PyMySQLLock.fencing.FencedLock`).
        :returns: a new :class:`AsyncLock` (of :attr:`lock_class`).
        :raises InvalidArgumentError: for ``fencing=True`` with a :attr:`lock_class` that is not
            an :class:`~PyMySQLLock.aio.fencing.AsyncFencedLock`.
        """
        cls = self.lock_class
        if fencing is not False:
            if fencing is not True:
                raise InvalidArgumentTypeError("fencing must be True or False")
            if cls is AsyncLock:
                cls = AsyncFencedLock
            elif not issubclass(cls, AsyncFencedLock):
                raise InvalidArgumentError(
                    "fencing=True needs an AsyncFencedLock: make lock_class a subclass of "
                    "PyMySQLLock.aio.fencing.AsyncFencedLock"
                )
        return cls(
            self,
            name,
            timeout=timeout,
            refresh_interval_secs=refresh_interval_secs,
            on_lost=on_lost,
        )

    def semaphore(
        self,
        name: str,
        limit: int,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = _DEFAULT_INTERVAL,
        on_lost: Callable[[AsyncSemaphore], Any] | None = None,
    ) -> AsyncSemaphore:
        """Make a counting semaphore: up to ``limit`` holders of ``name`` at once.

        The same semaphore as :meth:`PyMySQLLock.Locker.semaphore` (its slots are the locks
        ``name#1`` ... ``name#<limit>``); nothing is sent until it is acquired.

        :param name: the semaphore's name.
        :param limit: holders at once (every participant must use the same value).
        :param timeout: the default timeout of its ``acquire()`` and ``async with``.
        :param refresh_interval_secs: the default seconds between keepalive checks.
        :param on_lost: called as ``on_lost(semaphore)`` once if the held slot is lost; a
            coroutine function runs as a task.
        :returns: a new :class:`~PyMySQLLock.aio.semaphore.AsyncSemaphore`.
        """
        return AsyncSemaphore(
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
        on_elected: TermCallback | None = None,
        on_demoted: TermCallback | None = None,
        refresh_interval_secs: float = _DEFAULT_INTERVAL,
    ) -> AsyncElection:
        """Make a leader election among every process that uses ``name``.

        The same election as :meth:`PyMySQLLock.Locker.election` (blocking and asyncio
        candidates of one name elect one leader); nothing happens until
        :meth:`~PyMySQLLock.aio.election.AsyncElection.start` or ``async with``. The
        callbacks may be coroutine functions.

        :returns: a new :class:`~PyMySQLLock.aio.election.AsyncElection`.
        """
        return AsyncElection(
            self,
            name,
            identity=identity,
            on_elected=on_elected,
            on_demoted=on_demoted,
            refresh_interval_secs=refresh_interval_secs,
        )

    @property
    def fencing_table(self) -> str:
        """The table of fencing tokens, as given."""
        return self._fence.name

    async def create_fencing_table(self) -> None:
        """Create the table of fencing tokens now, if it does not exist.

        See :meth:`PyMySQLLock.Locker.create_fencing_table`.
        """
        server = await self._pool.ensure_server()
        await self._pool.on_idle(lambda session: prepare_table(self._fence, server, session))

    async def holder(self, name: str) -> int | None:
        """Ask the server who holds ``name``.

        :returns: the holder's connection id (``CONNECTION_ID()``), or ``None`` if free.
        """
        key = server_name(validate_name(name), self.namespace)
        return await self._pool.on_idle(lambda session: self._holder(session, key))

    @staticmethod
    async def _holder(session: AsyncSession, key: str) -> int | None:
        return holder_answer(await session.run(HOLDER, (key,)))

    async def is_locked(self, name: str) -> bool:
        """:returns: whether any session on the server holds ``name`` right now."""
        return await self.holder(name) is not None

    async def get_all_locks(self) -> list[str]:
        """List the names of the user locks held on the server, each once.

        :raises LockListingUnavailableError: if the server exposes no lock listing.
        """
        names = await self._pool.on_idle(lambda session: self._listed(session, self._names))
        return visible_names(names, self.namespace)

    async def list_locks(self) -> list[LockInfo]:
        """List the locks held on the server with their holders.

        :returns: one :class:`~PyMySQLLock.LockInfo` per held lock.
        :raises LockListingUnavailableError: if the server exposes no lock listing.
        """
        rows = await self._pool.on_idle(lambda session: self._listed(session, self._details))
        return lock_infos(rows, self.namespace)

    async def force_release(self, name: str) -> bool:
        """Free ``name`` by ending the session that holds it (``KILL CONNECTION``).

        :returns: ``True`` if a holder was killed, ``False`` if the lock was free.
        :raises PermissionDeniedError: if this account may not kill the holder's session.
        """
        holder = await self.holder(name)
        if holder is None:
            return False
        try:
            await self._pool.on_idle(lambda session: session.run(KILL_CONNECTION, (holder,)))
        except LockError as exc:
            if kill_failure(exc.server_code, str(exc)) is not None:
                raise
        # KILL returns before the killed session has let go of its locks on some servers.
        deadline = time.monotonic() + self._pool.read_timeout
        while await self.holder(name) == holder and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
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
    ) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T | None]]]: ...

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
    ) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T | None]]]: ...

    def synchronized(
        self,
        name: str,
        *,
        timeout: float | None = None,
        on_busy: str = "wait",
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
        hold_at_least: float | None = None,
    ) -> Callable[[Any], Any]:
        """Decorate a coroutine function so that each call runs while holding ``name``.

        :param name: the lock name.
        :param timeout: how long a call waits for the lock; default ``-1`` (forever) for
            ``"wait"``, ``0`` (try once) for ``"skip"`` and ``"raise"``.
        :param on_busy: what a call does when the lock is not acquired in time: ``"wait"``
            and ``"raise"`` raise :class:`~PyMySQLLock.LockTimeoutError`, ``"skip"`` returns
            ``None`` without calling the function.
        :param refresh_interval_secs: keepalive interval while the function runs.
        :param hold_at_least: keep the lock until this many seconds after it was taken, even
            when the function returns (or raises) sooner, so that another host's late trigger
            finds it busy and skips, as :meth:`PyMySQLLock.Locker.synchronized`. The call
            returns at once; a timer of the loop releases the lock when the time is up, and
            :meth:`close` releases it earlier.
        :returns: the decorator.
        :raises InvalidArgumentError: for an unknown ``on_busy`` or a bad ``hold_at_least``.
        :raises InvalidArgumentTypeError: when the decorated function is not a coroutine
            function: use :meth:`PyMySQLLock.Locker.synchronized` for plain functions, and hold
            the lock inside a generator or an async generator, whose body runs after the call
            returned.
        """
        if on_busy not in _ON_BUSY:
            raise InvalidArgumentError(f"on_busy must be one of {', '.join(_ON_BUSY)}")
        hold = validate_hold(hold_at_least)
        if timeout is None:
            timeout = -1 if on_busy == "wait" else 0
        self.lock(name, timeout=timeout, refresh_interval_secs=refresh_interval_secs)

        def decorator(function: F) -> F:
            if not inspect.iscoroutinefunction(function):
                what = getattr(function, "__qualname__", function)
                if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
                    # Its body runs as it is iterated, after the call returned: no decorator
                    # can hold the lock for it (Locker.synchronized refuses these too).
                    advice = (
                        "its body runs after the call returns; hold the lock inside it with "
                        "'async with locker.lock(name):'"
                    )
                else:
                    advice = "use PyMySQLLock.Locker.synchronized for plain functions"
                raise InvalidArgumentTypeError(
                    "AsyncLocker.synchronized needs a coroutine function (async def), and "
                    f"{what!r} is not one: {advice}"
                )

            @functools.wraps(function)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                lock = self.lock(name, timeout=timeout, refresh_interval_secs=refresh_interval_secs)
                if not await lock.acquire():
                    if on_busy == "skip":
                        logger.info("skipped %s: lock %r is busy", function.__qualname__, name)
                        return None
                    raise await lock._timeout_error(f"lock {name!r} is busy")
                acquired_at = time.monotonic()
                # Released as an async with block would: a loss during the call raises
                # LockLostError once the function has returned, unless it raised itself. A
                # minimum hold keeps a lock that is still held.
                try:
                    result = await function(*args, **kwargs)
                except BaseException as exc:
                    await end_run(lock, acquired_at, hold, exc)
                    raise
                await end_run(lock, acquired_at, hold, None)
                return result

            return wrapper  # type: ignore[return-value]

        return decorator

    async def close(self) -> None:
        """Release every lock still held, stop the keepalive and close every session.

        Idempotent. Locks and calls of a closed AsyncLocker raise :class:`~PyMySQLLock.LockError`.
        """
        if self._closed:
            return
        self._closed = True
        for election in list(self._elections):
            await election.stop()  # resigns first, so that on_demoted runs before the release
        # Semaphores ending their waits (nothing of theirs may stay held), and the kills of
        # the server-side waits of cancelled acquires (no wait of ours may stay on the server).
        if self._tracked:
            await asyncio.gather(*self._tracked, return_exceptions=True)
        for lock in list(self._held):
            try:
                await lock.release()
            except LockError:
                logger.debug("lock %r was not held at close", lock.name)
        for waiting in list(self._kept):
            waiting.cancel()  # minimum holds: their locks were just released
        if self._kept:
            await asyncio.gather(*self._kept, return_exceptions=True)
        await self._keepalive.stop()
        await self._pool.close()
        if self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)

    async def __aenter__(self) -> AsyncLocker:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- listing ------------------------------------------------------------------------------

    @staticmethod
    async def _names(listing: Listing, session: AsyncSession) -> list[str]:
        return listed_names(await session.run_all(listing.names_sql))

    @staticmethod
    async def _details(listing: Listing, session: AsyncSession) -> list[DetailRow]:
        for number, sql in enumerate(listing.details_sql, 1):
            try:
                rows = await session.run_all(sql)
            except StatementFailed:
                if number == len(listing.details_sql):
                    raise
                continue
            return listed_details(rows)
        return []  # pragma: no cover - details_sql is never empty

    async def _listed(
        self,
        session: AsyncSession,
        read: Callable[[Listing, AsyncSession], Awaitable[T]],
    ) -> T:
        """Read the lock listing; re-choose it once if the cached one stopped working."""
        for attempt in (1, 2):
            if self._listing is None:
                self._listing = await self._choose(session)
            try:
                return await read(self._listing, session)
            except StatementFailed:
                self._listing = None  # e.g. the plugin was uninstalled: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _choose(self, session: AsyncSession) -> Listing:
        server = self.server
        problems = []
        for candidate in listing_candidates(server):
            try:
                if candidate.present_sql is not None:
                    await session.run_all(candidate.present_sql)
                    return candidate
                problem = performance_schema_problem(await session.run(PERFORMANCE_READY))
            except StatementFailed as failure:
                problems.append(listing_missing(candidate, failure.message))
                continue
            if problem is None:
                return candidate
            problems.append(problem)
        raise no_listing_error(server, problems)

    # -- held locks (used by AsyncLock) -------------------------------------------------------

    def _lock_held(self, lock: AsyncLock, hold: object, interval: float) -> None:
        self._held.add(lock)
        # Called by the acquiring task; the server grants a name to one session at a time,
        # so no other lock of this AsyncLocker has an entry for it now.
        self._holders.granted(lock.server_name, lock, asyncio.current_task())
        self._keepalive.watch(lock, hold, interval)

    def _lock_released(self, lock: AsyncLock) -> None:
        self._held.discard(lock)
        # Before RELEASE_LOCK is sent: no new holder of the name can have registered yet.
        self._holders.forget(lock.server_name, lock)
        self._keepalive.unwatch()

    def _keep(self, release: Coroutine[Any, Any, None]) -> None:
        """Run the release at the end of a minimum hold as a task; :meth:`close` ends it."""
        _task_in(self._kept, release)

    def _track(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` as a task that :meth:`close` waits for before releasing the locks."""
        return _task_in(self._tracked, work)

    def _wait_abandoned(self, session: AsyncSession, name: str) -> None:
        """End the server-side wait of ``session``, closed by a cancelled acquire (a task).

        Its ``GET_LOCK`` of the lock ``name`` (a server name) may still wait on the server, or
        have been granted; see :mod:`.waits`.
        """
        if not self._closed:  # close() would not wait for a new task, nor the pool serve it
            self._abandoned.add(session.connection_id, name)

    def _run_callback(self, name: str, awaitable: Awaitable[Any]) -> None:
        """Run a coroutine ``on_lost`` as a task; :meth:`close` waits for it."""

        async def run() -> None:
            try:
                await awaitable
            except Exception:
                logger.exception("on_lost callback for lock %r raised", name)

        _task_in(self._callbacks, run())
