"""The servers a run uses: throwaway MariaDB servers and private Redis and PostgreSQL instances.

Nothing here ever connects to a server the run did not start: each one gets its own temporary
directory and a free port on 127.0.0.1, and is stopped (by its own process id) when the run
ends. A peer whose binaries are missing is reported as skipped by the caller.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyMySQLLock.testing import ThrowawayServer

__all__ = [
    "MySQLTarget",
    "PeerUnavailable",
    "PgTarget",
    "PrivatePostgres",
    "PrivateRedis",
    "RedisTarget",
    "free_port",
    "mariadb",
]

#: The main server's connection limit: 10,000 locks of one process, plus the others' headroom.
MAX_CONNECTIONS = 12_000
# The shared instances on this machine listen on the default ports; never pick those.
_RESERVED_PORTS = frozenset({3306, 5432, 6379})


class PeerUnavailable(RuntimeError):
    """A peer server cannot be started here (binary missing, start failed)."""


@dataclass(frozen=True)
class MySQLTarget:
    """Where a MySQL/MariaDB server listens; picklable, for spawned workers."""

    host: str
    port: int
    user: str
    password: str
    database: str
    version: str = ""

    def kwargs(self) -> dict[str, Any]:
        """Connect keyword arguments understood by all three drivers."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }


@dataclass(frozen=True)
class RedisTarget:
    """Where the private Redis listens."""

    host: str
    port: int
    version: str = ""


@dataclass(frozen=True)
class PgTarget:
    """Where the private PostgreSQL listens (trust authentication)."""

    host: str
    port: int
    user: str
    dbname: str
    version: str = ""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now and is none of the shared servers' default ports."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in _RESERVED_PORTS:
            return port


def mariadb() -> tuple[ThrowawayServer, MySQLTarget]:
    """Start a throwaway MariaDB/MySQL server (the caller closes it).

    ``max_connections`` is raised to :data:`MAX_CONNECTIONS`: the asyncio scale benchmark holds
    10,000 locks, each on a connection of its own (the server raises its open-file limit to
    match, within the hard limit).
    """
    server = ThrowawayServer(extra_args=[f"--max-connections={MAX_CONNECTIONS}"])
    server.start()
    target = MySQLTarget(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.database,
        version=server.version,
    )
    return server, target


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"exited with code {proc.returncode} during startup")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise PeerUnavailable(f"did not listen on {host}:{port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes] | None, signum: int, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signum)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivateRedis:
    """A ``redis-server`` of our own: no persistence, a free loopback port, a temporary dir."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self.target: RedisTarget | None = None

    def start(self) -> RedisTarget:
        """Start the server.

        :raises PeerUnavailable: when ``redis-server`` is missing or does not start.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise PeerUnavailable("redis-server is not installed")
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.split()
        label = next((part[2:] for part in version if part.startswith("v=")), "?")
        self._dir = tempfile.mkdtemp(prefix="pymysqllock-bench-redis-")
        port = free_port()
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir,
            "--daemonize",
            "no",
        ]
        log = Path(self._dir, "redis.log").open("wb")  # noqa: SIM115 - closed by the child's exit
        with log:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_for_port("127.0.0.1", port, self._proc, 15.0)
        except PeerUnavailable:
            self.close()
            raise
        self.target = RedisTarget("127.0.0.1", port, label)
        return self.target

    def close(self) -> None:
        """Stop the server and remove its directory."""
        _stop(self._proc, signal.SIGTERM)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _postgres_bindir() -> str | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if os.access(os.path.join(bindir, "initdb"), os.X_OK):
            return bindir
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _wait_until_accepting(port: int, timeout: float) -> None:
    """Listening is not ready: during recovery the server refuses logins for a while."""
    try:
        import psycopg
    except ImportError:
        return  # the benchmarks skip PostgreSQL without psycopg anyway
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"does not accept logins: {exc}") from None
            time.sleep(0.05)
        else:
            return


class PrivatePostgres:
    """A PostgreSQL cluster of our own, made with ``initdb`` in a temporary directory.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
    account (the server process is started under it directly, not through ``su``, so that the
    process id we stop is the server's own).
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self.target: PgTarget | None = None

    def start(self) -> PgTarget:
        """Initialise and start the cluster.

        :raises PeerUnavailable: when the binaries are missing or a step fails.
        """
        bindir = _postgres_bindir()
        if bindir is None:
            raise PeerUnavailable("PostgreSQL server binaries (initdb) are not installed")
        owner: dict[str, Any] = {}
        if os.geteuid() == 0:
            import pwd

            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PeerUnavailable("running as root and there is no postgres account") from None
            owner = {"user": account.pw_uid, "group": account.pw_gid}
        self._dir = tempfile.mkdtemp(prefix="pymysqllock-bench-pg-")
        data = os.path.join(self._dir, "data")
        if owner:
            os.chown(self._dir, owner["user"], owner["group"])
        log_path = os.path.join(self._dir, "postgres.log")
        try:
            init = subprocess.run(
                [
                    os.path.join(bindir, "initdb"),
                    *("-D", data, "-A", "trust", "-U", "postgres"),
                    *("--no-sync", "--no-instructions"),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
                cwd=self._dir,
                **owner,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.close()
            raise PeerUnavailable(f"initdb failed: {exc}") from exc
        if init.returncode != 0:
            self.close()
            raise PeerUnavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
        port = free_port()
        args = [
            os.path.join(bindir, "postgres"),
            "-D",
            data,
            "-p",
            str(port),
            "-k",
            self._dir,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=100",
        ]
        with open(log_path, "wb") as log:
            if owner:
                os.chown(log_path, owner["user"], owner["group"])
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
                **owner,
            )
        try:
            _wait_for_port("127.0.0.1", port, self._proc, 30.0)
            _wait_until_accepting(port, 30.0)
        except PeerUnavailable as exc:
            self.close()
            raise PeerUnavailable(f"postgres: {exc}") from None
        version = subprocess.run(
            [os.path.join(bindir, "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
        label = version[2] if len(version) > 2 else "?"
        self.target = PgTarget("127.0.0.1", port, "postgres", "postgres", label)
        return self.target

    def close(self) -> None:
        """Fast shutdown (SIGINT), then remove the cluster."""
        _stop(self._proc, signal.SIGINT)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
