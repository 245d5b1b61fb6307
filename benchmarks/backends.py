"""The lock implementations a benchmark compares, behind one small interface.

A :class:`Spec` names a backend and says where its server is; it is picklable, so spawned
workers rebuild the backend from it. ``Spec.factory()`` makes a :class:`Factory`, which opens
:class:`Backend` objects (one per thread: each holds at most one lock at a time) and shares
whatever the backend shares between threads (the Locker; the Redis client).

Backends:

* ``raw``: the limit. One persistent autocommit connection; ``SELECT GET_LOCK(%s, 10)`` and
  ``SELECT RELEASE_LOCK(%s)``.
* ``lib``: PyMySQLLock on a warm Locker, a fresh Lock object per cycle, ``acquire(timeout=10)``.
* ``lib-fenced``: the same with ``fencing=True`` (one more statement: the token's increment).
* ``lib-fenced-cursor``: ``lib-fenced`` plus one ``SELECT`` through ``lock.cursor()`` while held;
  a session that ran the caller's statements is closed at release, so every acquire connects.
* ``cpa``: PyMySQLLock 0.2.0's strategy, written out here: a new connection and a refresh
  thread for every acquire; ``DO RELEASE_LOCK`` and close at release.
* ``redis-lock``: python-redis-lock on the private Redis, a fresh ``redis_lock.Lock`` per cycle.
* ``pg-advisory``: ``pg_advisory_lock`` / ``pg_advisory_unlock`` on one psycopg connection.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from PyMySQLLock.drivers import DRIVER_NAMES

from .servers import MySQLTarget, PgTarget, RedisTarget

__all__ = ["DRIVERS", "Backend", "Factory", "Spec", "admin_connect", "driver_available"]

#: The drivers, by the name ``Locker(driver=...)`` takes (the library's registry).
DRIVERS: tuple[str, ...] = DRIVER_NAMES
#: The backends that are PyMySQLLock itself, on a shared Locker.
_LIBRARY_KINDS = frozenset({"lib", "lib-fenced", "lib-fenced-cursor"})
#: What a lock wait may take before a benchmark counts it as broken.
WAIT_SECONDS = 10
# How often the 0.2.0-style refresh thread would ping; never reached within a cycle.
_CPA_REFRESH_SECONDS = 10.0


class Backend(Protocol):
    """One lock user: acquire a name, release it; at most one lock at a time."""

    def acquire(self, name: str) -> None:
        """Wait for ``name``; raise when it was not acquired."""

    def release(self) -> None:
        """Release the lock acquired last."""

    def close(self) -> None:
        """Let go of the connection."""


def driver_available(driver: str) -> bool:
    """Whether the driver module imports."""
    try:
        importlib.import_module(driver)
    except ImportError:
        return False
    return True


def _raw_connect(driver: str, target: MySQLTarget, **extra: Any) -> Any:
    """An autocommit connection with the driver's defaults, as an application would open it."""
    module = importlib.import_module(driver)
    options: dict[str, Any] = {**target.kwargs(), "autocommit": True, "charset": "utf8mb4"}
    return module.connect(**options, **extra)


def admin_connect(target: MySQLTarget) -> Any:
    """A connection for the benchmark's own statements (status counters, KILL), with the first
    driver that imports."""
    for driver in DRIVERS:
        if driver_available(driver):
            return _raw_connect(driver, target)
    raise RuntimeError("no MySQL driver is installed")


def _one_value(cursor: Any, sql: str, params: tuple[Any, ...]) -> Any:
    cursor.execute(sql, params)
    rows = cursor.fetchall()
    return rows[0][0] if rows else None


class _Raw:
    def __init__(self, driver: str, target: MySQLTarget) -> None:
        self._conn = _raw_connect(driver, target)
        self._cursor = self._conn.cursor()
        self._name = ""

    def acquire(self, name: str) -> None:
        if _one_value(self._cursor, "SELECT GET_LOCK(%s, 10)", (name,)) != 1:
            raise RuntimeError(f"GET_LOCK({name!r}) failed")
        self._name = name

    def release(self) -> None:
        if _one_value(self._cursor, "SELECT RELEASE_LOCK(%s)", (self._name,)) != 1:
            raise RuntimeError(f"RELEASE_LOCK({self._name!r}) failed")

    def close(self) -> None:
        self._conn.close()


class _ConnectPerAcquire:
    """PyMySQLLock 0.2.0's strategy: connect, GET_LOCK and start a refresh thread per acquire."""

    def __init__(self, driver: str, target: MySQLTarget) -> None:
        self._driver = driver
        self._target = target
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = ""

    def acquire(self, name: str) -> None:
        conn = _raw_connect(self._driver, self._target)
        cursor = conn.cursor()
        if _one_value(cursor, "SELECT GET_LOCK(%s, %s)", (name, WAIT_SECONDS)) != 1:
            conn.close()
            raise RuntimeError(f"GET_LOCK({name!r}) failed")
        self._conn, self._name = conn, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, args=(conn, self._stop), daemon=True)
        self._thread.start()

    @staticmethod
    def _refresh(conn: Any, stop: threading.Event) -> None:
        while not stop.wait(_CPA_REFRESH_SECONDS):  # pragma: no cover - never in a benchmark
            conn.ping()

    def release(self) -> None:
        cursor = self._conn.cursor()
        cursor.execute("DO RELEASE_LOCK(%s)", (self._name,))
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._conn.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class _Library:
    def __init__(self, locker: Any, *, fencing: bool = False, cursor: bool = False) -> None:
        self._locker = locker
        self._lock: Any = None
        self._fencing = fencing
        self._cursor = cursor

    def acquire(self, name: str) -> None:
        lock = self._locker.lock(name, fencing=True) if self._fencing else self._locker.lock(name)
        if not lock.acquire(timeout=WAIT_SECONDS):
            raise RuntimeError(f"acquire({name!r}) timed out")
        self._lock = lock
        if self._cursor:
            with lock.cursor() as cursor:
                cursor.execute("SELECT %s", (lock.token,))
                cursor.fetchall()

    def release(self) -> None:
        self._lock.release()

    def close(self) -> None:
        """The Locker is the factory's."""


class _RedisLock:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock: Any = None

    def acquire(self, name: str) -> None:
        import redis_lock  # type: ignore[import-untyped]

        lock = redis_lock.Lock(self._client, name)
        if not lock.acquire(blocking=True, timeout=WAIT_SECONDS):
            raise RuntimeError(f"redis lock {name!r} timed out")
        self._lock = lock

    def release(self) -> None:
        self._lock.release()

    def close(self) -> None:
        """The client is the factory's."""


def _pg_key(name: str) -> int:
    # pg advisory locks take a bigint; a stable hash of the name stands in for it.
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


class _PgAdvisory:
    def __init__(self, target: PgTarget) -> None:
        import psycopg

        self._conn = psycopg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            dbname=target.dbname,
            autocommit=True,
        )
        self._cursor = self._conn.cursor()
        self._key = 0

    def acquire(self, name: str) -> None:
        key = _pg_key(name)
        self._cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
        self._cursor.fetchall()
        self._key = key

    def release(self) -> None:
        self._cursor.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        if self._cursor.fetchall()[0][0] is not True:
            raise RuntimeError("pg_advisory_unlock failed")

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True)
class Spec:
    """A backend and its server.

    :param kind: ``raw``, ``lib``, ``lib-fenced``, ``lib-fenced-cursor``, ``cpa``,
        ``redis-lock`` or ``pg-advisory``.
    :param driver: the MySQL driver (``""`` for the peers).
    :param target: where the server listens.
    """

    kind: str
    driver: str
    target: MySQLTarget | RedisTarget | PgTarget

    @property
    def label(self) -> str:
        """``lib/pymysql``, ``raw/MySQLdb``, ``redis-lock``..."""
        return f"{self.kind}/{self.driver}" if self.driver else self.kind

    def factory(self) -> Factory:
        """:returns: a factory of backends of this kind (in the calling process)."""
        return Factory(self)


class Factory:
    """Opens backends of one :class:`Spec`; what they share lives here until :meth:`close`."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._shared: Any = None
        self._opened: list[Backend] = []
        self._mutex = threading.Lock()

    def shared(self) -> Any:
        """The Locker (``lib``) or Redis client (``redis-lock``), made on first use."""
        with self._mutex:
            if self._shared is None:
                target = self.spec.target
                if self.spec.kind in _LIBRARY_KINDS:
                    from PyMySQLLock import Locker

                    assert isinstance(target, MySQLTarget)
                    self._shared = Locker(driver=self.spec.driver, **target.kwargs())
                elif self.spec.kind == "redis-lock":
                    import redis

                    assert isinstance(target, RedisTarget)
                    self._shared = redis.Redis(host=target.host, port=target.port)
            return self._shared

    def open(self) -> Backend:
        """A new backend (its own connection, except what the kind shares)."""
        kind, target = self.spec.kind, self.spec.target
        backend: Backend
        if kind == "raw":
            assert isinstance(target, MySQLTarget)
            backend = _Raw(self.spec.driver, target)
        elif kind == "cpa":
            assert isinstance(target, MySQLTarget)
            backend = _ConnectPerAcquire(self.spec.driver, target)
        elif kind in _LIBRARY_KINDS:
            backend = _Library(
                self.shared(),
                fencing=kind != "lib",
                cursor=kind == "lib-fenced-cursor",
            )
        elif kind == "redis-lock":
            backend = _RedisLock(self.shared())
        elif kind == "pg-advisory":
            assert isinstance(target, PgTarget)
            backend = _PgAdvisory(target)
        else:
            raise ValueError(f"unknown backend kind {kind!r}")
        with self._mutex:
            self._opened.append(backend)
        return backend

    def close(self) -> None:
        """Close every backend opened here, then the shared Locker or client."""
        with self._mutex:
            opened, self._opened = self._opened, []
            shared, self._shared = self._shared, None
        for backend in opened:
            backend.close()
        if shared is not None:
            shared.close()
