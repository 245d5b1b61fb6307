"""Where the test suite's MySQL/MariaDB server comes from.

The session server is chosen by :func:`server_from_environment`, first match wins:

1. ``PYMYSQLLOCK_TEST_URL=mysql://user:pass@host:port/db``: an existing server, wrapped in
   :class:`ExternalServer`. The suite never stops, restarts or pauses it; tests that need to
   are skipped (its lifecycle methods call :func:`pytest.skip`).
2. ``PYMYSQLLOCK_TEST_CONTAINER=mysql:8.4`` (or ``mariadb:11``, any MySQL/MariaDB image): a
   container started with testcontainers, see :class:`ContainerServer`.
3. Otherwise a :class:`~PyMySQLLock.testing.ThrowawayServer` from the installed ``mariadbd`` or
   ``mysqld`` binaries.

Every kind offers the same interface (:class:`Server`): ``host``, ``port``, ``user``,
``password``, ``database``, ``flavor``, ``version``, ``url``, ``connect_kwargs()``, ``sql()``
and ``close()``; only the throwaway server really implements ``start``, ``stop``, ``restart``,
``pause``, ``resume`` and ``kill``.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import pytest

from PyMySQLLock.testing import ServerStartError, ThrowawayServer, find_server_binary
from PyMySQLLock.testing.client import driver_connect, run_sql

__all__ = [
    "CONTAINER_ENV",
    "URL_ENV",
    "ContainerServer",
    "ExternalServer",
    "Server",
    "ServerStartError",
    "ServerURL",
    "ThrowawayServer",
    "describe",
    "external_mode",
    "parse_url",
    "server_from_environment",
    "server_source",
    "throwaway_possible",
]

URL_ENV = "PYMYSQLLOCK_TEST_URL"
CONTAINER_ENV = "PYMYSQLLOCK_TEST_CONTAINER"

LIFECYCLE_SKIP = (
    "needs a throwaway server it may stop, kill, pause or restart; the session server is {kind} "
    "({url}). Unset PYMYSQLLOCK_TEST_URL / PYMYSQLLOCK_TEST_CONTAINER to use one."
)


class Server(Protocol):
    """What every session server offers the tests."""

    host: str
    user: str
    password: str

    @property
    def port(self) -> int: ...
    @property
    def database(self) -> str: ...
    @property
    def flavor(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def url(self) -> str: ...
    def connect_kwargs(self) -> dict[str, Any]: ...
    def sql(
        self, statement: str, params: Sequence[Any] | None = None, *, timeout: float = ...
    ) -> list[tuple[Any, ...]]: ...
    def start(self, timeout: float | None = None) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...
    def restart(self, timeout: float | None = None) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class ServerURL:
    """The parts of a ``mysql://user:password@host:port/database`` URL."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, *, hide_password: bool = False) -> str:
        """Back to a URL; the password is replaced by ``***`` when *hide_password*."""
        user = urllib.parse.quote(self.user, safe="")
        if self.password:
            secret = "***" if hide_password else urllib.parse.quote(self.password, safe="")
            user = f"{user}:{secret}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mysql://{user}@{host}:{self.port}/{urllib.parse.quote(self.database)}"


def parse_url(url: str, *, default_database: str = "pymysqllock") -> ServerURL:
    """Parse ``mysql://user:pass@host:port/db``.

    ``mariadb://`` and driver-qualified schemes (``mysql+pymysql://``) are accepted too. User and
    password may be percent-encoded. Defaults: user ``root``, empty password, port 3306, the
    database *default_database*.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.split("+")[0] not in ("mysql", "mariadb"):
        raise ValueError(f"{url!r}: expected a mysql:// or mariadb:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    try:
        port = parts.port or 3306
    except ValueError as exc:  # a port that is not a number
        raise ValueError(f"{url!r}: {exc}") from None
    database = urllib.parse.unquote(parts.path.lstrip("/")) or default_database
    return ServerURL(
        host=parts.hostname,
        port=port,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
        database=database,
    )


# --------------------------------------------------------------------------- external


class ExternalServer:
    """A server the suite did not start and must not stop: connection details only.

    On construction it connects once to read the version and creates the database when it is
    missing (ignoring a lack of privilege for that). Its lifecycle methods skip the calling test.
    """

    kind = "external"
    supports_lifecycle = False

    def __init__(self, url: str) -> None:
        self._url = parse_url(url)
        self.host = self._url.host
        self.user = self._url.user
        self.password = self._url.password
        self._version = ""
        self._prepare()

    def _prepare(self) -> None:
        conn = self._connect(database=None, timeout=10.0)
        try:
            self._version = str(run_sql(conn, "SELECT VERSION()", None)[0][0])
            with contextlib.suppress(Exception):
                run_sql(conn, f"CREATE DATABASE IF NOT EXISTS `{self.database}`", None)
        finally:
            conn.close()

    def _connect(self, *, database: str | None, timeout: float) -> Any:
        return driver_connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            timeout=timeout,
        )

    @property
    def port(self) -> int:
        return self._url.port

    @property
    def database(self) -> str:
        return self._url.database

    @property
    def version(self) -> str:
        return self._version

    @property
    def flavor(self) -> str:
        return "mariadb" if "mariadb" in self._version.lower() else "mysql"

    @property
    def url(self) -> str:
        return self._url.url()

    @property
    def display_url(self) -> str:
        """The URL with the password hidden, for reports."""
        return self._url.url(hide_password=True)

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def sql(
        self, statement: str, params: Sequence[Any] | None = None, *, timeout: float = 30.0
    ) -> list[tuple[Any, ...]]:
        """Run one statement on a short-lived TCP connection; returns the rows."""
        conn = self._connect(database=None, timeout=timeout)
        try:
            return run_sql(conn, statement, params)
        finally:
            conn.close()

    def _no_lifecycle(self) -> NoReturn:
        pytest.skip(LIFECYCLE_SKIP.format(kind=self.kind, url=self.display_url))

    def start(self, timeout: float | None = None) -> None:
        """Nothing to start: the server is someone else's."""

    def stop(self, timeout: float = 30.0) -> None:
        self._no_lifecycle()

    def restart(self, timeout: float | None = None) -> None:
        self._no_lifecycle()

    def pause(self) -> None:
        self._no_lifecycle()

    def resume(self) -> None:
        self._no_lifecycle()

    def kill(self) -> None:
        self._no_lifecycle()

    def close(self) -> None:
        """Nothing to close: no connection is kept."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.version} {self.display_url}>"


# --------------------------------------------------------------------------- container


class ContainerServer(ExternalServer):
    """A MySQL or MariaDB Docker image started with testcontainers.

    Selected by ``PYMYSQLLOCK_TEST_CONTAINER=<image>``, e.g. ``mysql:8.4`` or ``mariadb:11``.
    Needs the ``containers`` extra (``pip install 'testcontainers[mysql]'``) and a reachable
    Docker engine (``DOCKER_HOST`` or the default socket); without either the session fails
    with a message saying so, rather than silently testing against something else.

    The container runs the official image's entrypoint with an empty root password
    (``MYSQL_ALLOW_EMPTY_PASSWORD`` / ``MARIADB_ALLOW_EMPTY_ROOT_PASSWORD``, which also sidesteps
    caching_sha2_password's RSA exchange on MySQL 8+), the database ``pymysqllock`` and the
    same server options as the throwaway server. On MariaDB images ``metadata_lock_info`` is
    installed when the image ships it.

    Not exercised on the development machines (they have no Docker engine): written from the
    testcontainers and image documentation.
    """

    kind = "container"
    SERVER_ARGS: tuple[str, ...] = (
        "--max-connections=3000",
        "--max-connect-errors=1000000000",
        "--performance-schema=OFF",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
    )

    def __init__(self, image: str, *, start_timeout: float = 180.0) -> None:
        try:
            from testcontainers.core.container import DockerContainer
        except ImportError as exc:
            raise ServerStartError(
                f"{CONTAINER_ENV}={image} needs testcontainers: "
                "pip install 'testcontainers[mysql]' (the 'containers' extra)"
            ) from exc
        try:
            import docker

            docker.from_env().ping()
        except Exception as exc:
            raise ServerStartError(
                f"{CONTAINER_ENV}={image} needs a reachable Docker engine: {exc}"
            ) from exc
        self.image = image
        self._container = (
            DockerContainer(image)
            .with_env("MYSQL_ALLOW_EMPTY_PASSWORD", "yes")
            .with_env("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "yes")
            .with_env("MYSQL_DATABASE", "pymysqllock")
            .with_exposed_ports(3306)
            .with_command(" ".join(self.SERVER_ARGS))
        )
        self._container.start()
        try:
            host = self._container.get_container_host_ip()
            port = int(self._container.get_exposed_port(3306))
            url = f"mysql://root@{host}:{port}/pymysqllock"
            self._wait_ready(url, start_timeout)
            super().__init__(url)
            if self.flavor == "mariadb":
                with contextlib.suppress(Exception):
                    self.sql("INSTALL SONAME 'metadata_lock_info'")
        except BaseException:
            self._container.stop()
            raise

    @staticmethod
    def _wait_ready(url: str, timeout: float) -> None:
        # The image's entrypoint first runs a temporary server without networking; a TCP
        # connection only succeeds once the real server is up.
        parsed = parse_url(url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = driver_connect(
                    host=parsed.host,
                    port=parsed.port,
                    user=parsed.user,
                    password=parsed.password,
                    timeout=5.0,
                )
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"container server at {url} not ready after {timeout:.0f} s: {exc!r}"
                    ) from exc
                time.sleep(0.5)
            else:
                conn.close()
                return

    @property
    def display_url(self) -> str:
        return f"{self.image}, {self.host}:{self.port}"

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()


# --------------------------------------------------------------------------- choosing


def server_from_environment(environ: Mapping[str, str] | None = None) -> Server:
    """Make the session server as described in the module docstring.

    :raises ServerStartError: when the chosen kind cannot be had (no binary, no Docker...).
    """
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV, "").strip()
    if url:
        return ExternalServer(url)
    image = env.get(CONTAINER_ENV, "").strip()
    if image:
        return ContainerServer(image)
    server = ThrowawayServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def server_source(environ: Mapping[str, str] | None = None) -> str:
    """Where :func:`server_from_environment` gets the server, for messages (no password)."""
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV, "").strip()
    if url:
        try:
            url = parse_url(url).url(hide_password=True)
        except ValueError:
            url = "<unparsable URL>"
        return f"{URL_ENV}={url}"
    image = env.get(CONTAINER_ENV, "").strip()
    if image:
        return f"{CONTAINER_ENV}={image}"
    return "the installed server binaries"


def throwaway_possible() -> bool:
    """Whether a :class:`ThrowawayServer` can be made here (a server binary is installed)."""
    try:
        find_server_binary()
    except ServerStartError:
        return False
    return True


def external_mode(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the session server comes from the environment rather than the binaries."""
    env = os.environ if environ is None else environ
    return bool(env.get(URL_ENV, "").strip() or env.get(CONTAINER_ENV, "").strip())


def describe(server: Server) -> str:
    """One line for the report header, e.g. ``MariaDB 10.11.19 (throwaway, /tmp/x, port 4)``."""
    name = "MariaDB" if server.flavor == "mariadb" else "MySQL"
    version = server.version.split("-")[0]
    if isinstance(server, ThrowawayServer):
        where = f"throwaway, {server.base_dir}, port {server.port}"
    elif isinstance(server, ExternalServer):
        where = f"{server.kind}, {server.display_url}"
    else:
        where = repr(server)
    return f"{name} {version} ({where})"
