"""Throwaway MySQL/MariaDB servers started from installed binaries.

:class:`ThrowawayServer` starts a private server (``mariadbd`` or ``mysqld``) in a temporary
directory with its own datadir, TCP port on ``127.0.0.1``, unix socket and pid file. It never
reads option files (``--no-defaults``) and never touches another server on the machine, so it is
safe to use next to a production or shared server. The test suite, the ``pymysqllock demo``
command and the benchmarks use it::

    with ThrowawayServer() as server:
        conn = pymysql.connect(**server.connect_kwargs())

Finding the binary, the datadir, ports and cleaning up after dead owners live in the sibling
modules; this one holds the server's lifecycle.

POSIX only: it relies on unix sockets and on ``SIGSTOP``/``SIGCONT``/``SIGKILL``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from . import cleanup
from .binaries import find_server_binary, probe_binary, user_args, version_tuple
from .client import driver_connect, run_sql, socket_accepts
from .datadir import MARIADB_LOG_FILE_SIZE, initialise, tail, template_for
from .errors import ServerStartError
from .ports import find_free_port

__all__ = [
    "DEFAULT_SQL_TIMEOUT",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "SSL_FILES",
    "ThrowawayServer",
]

logger = logging.getLogger("PyMySQLLock")

DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_SQL_TIMEOUT = 30.0

# sun_path is 108 bytes on Linux and 104 on the BSDs; stay clear of both.
_MAX_SOCKET_PATH = 100
# A few attempts with a new port when another process grabbed ours between the probe and the
# server's bind(); only for ports we picked ourselves.
_BIND_ATTEMPTS = 5
_PLUGIN_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_BIND_FAILURE_MARKERS = ("Bind on TCP/IP port", "Address already in use", "Do you already have")
# The files ssl_dir must contain: the names MySQL gives its own auto-generated certificates.
SSL_FILES: tuple[str, str, str] = ("ca.pem", "server-cert.pem", "server-key.pem")


class ThrowawayServer:
    """A private MySQL or MariaDB server in a temporary directory.

    The server gets its own datadir, a TCP port on ``127.0.0.1``, a unix socket and a pid file,
    all under :attr:`base_dir`, and is started with ``--no-defaults`` so no option file on the
    machine applies. The ``root`` account has an empty password and can connect over TCP from
    ``127.0.0.1`` and over the socket. After its first start the server has the database
    :attr:`database` and, on MariaDB, the requested plugins.

    Nothing runs until :meth:`start` (or ``with``); :meth:`close` stops the server and removes
    the directory, and runs by itself at interpreter exit.

    :param binary: server binary (path or command name); default ``mariadbd`` then ``mysqld``.
    :param port: TCP port; default a free port chosen at random.
    :param database: database created after the first start.
    :param plugins: MariaDB plugins (by soname, without ``.so``) installed after the first
        start; default ``("metadata_lock_info",)``. Ignored on MySQL, which has none of them.
    :param performance_schema: start with the Performance Schema enabled.
    :param ssl_dir: directory holding ``ca.pem``, ``server-cert.pem`` and ``server-key.pem``;
        when given the server is started with ``--ssl-ca``, ``--ssl-cert`` and ``--ssl-key``.
    :param extra_args: more server options, appended last so they override the defaults.
    :param base_dir: where to create the temporary directory; default the system's temporary
        directory (``/tmp`` when that path is too long for a unix socket).
    :param start_timeout: default seconds :meth:`start` waits for the server to accept
        connections.
    :param use_template: copy a datadir initialised once per process instead of initialising a
        new one for each server (much faster; the content is the same).
    :raises ServerStartError: when no server binary is found or *ssl_dir* lacks a file.
    :raises ValueError: for a plugin name that is not a plain identifier.
    """

    host = "127.0.0.1"
    user = "root"
    password = ""

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        port: int | None = None,
        database: str = "pymysqllock",
        plugins: Sequence[str] | None = None,
        performance_schema: bool = False,
        ssl_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        base_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        use_template: bool = True,
    ) -> None:
        self._binary = find_server_binary(binary)
        self._flavor, self._binary_version = probe_binary(self._binary)
        self._database = database
        if plugins is None:
            plugins = ("metadata_lock_info",) if self._flavor == "mariadb" else ()
        for plugin in plugins:
            if not _PLUGIN_NAME_RE.match(plugin):
                raise ValueError(f"invalid plugin name {plugin!r}")
        self._plugins = tuple(plugins)
        self._performance_schema = performance_schema
        self._ssl_dir = Path(ssl_dir).resolve() if ssl_dir is not None else None
        if self._ssl_dir is not None:
            missing = [name for name in SSL_FILES if not (self._ssl_dir / name).is_file()]
            if missing:
                raise ServerStartError(f"ssl_dir {self._ssl_dir} lacks {', '.join(missing)}")
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._use_template = use_template
        self._fixed_port = port is not None
        self._port = port if port is not None else find_free_port(self.host)

        self._dir = self._make_dir(base_dir)
        self._datadir = self._dir / "data"
        self._socket = self._dir / "mysql.sock"
        self._pid_file = self._dir / "mysqld.pid"
        self._error_log = self._dir / "error.log"
        self._stdout_log = self._dir / "stdout.log"
        self._files_dir = self._dir / "files"  # --secure-file-priv and --tmpdir
        self._files_dir.mkdir()

        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._closed = False
        self._initialised = False
        self._version: str | None = None
        # Fork safety: a child process inherits the object and the atexit hook, but must never
        # stop the parent's server or delete its directory.
        self._owner_pid = os.getpid()
        self._watchdog: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    # ----------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """TCP port on :attr:`host`."""
        return self._port

    @property
    def socket(self) -> str:
        """Path of the unix socket."""
        return str(self._socket)

    @property
    def database(self) -> str:
        """Database created after the first start."""
        return self._database

    @property
    def flavor(self) -> str:
        """``"mariadb"`` or ``"mysql"``."""
        return self._flavor

    @property
    def version(self) -> str:
        """``SELECT VERSION()`` once started; before that, what ``--version`` reported."""
        return self._version or self._binary_version

    @property
    def url(self) -> str:
        """``mysql://root@127.0.0.1:PORT/DATABASE``."""
        return f"mysql://{self.user}@{self.host}:{self._port}/{self._database}"

    @property
    def binary(self) -> str:
        """Absolute path of the server binary."""
        return self._binary

    @property
    def base_dir(self) -> str:
        """The temporary directory holding datadir, socket, pid file and logs."""
        return str(self._dir)

    @property
    def datadir(self) -> str:
        """The server's datadir."""
        return str(self._datadir)

    @property
    def error_log(self) -> str:
        """Path of the server's error log."""
        return str(self._error_log)

    @property
    def ssl_dir(self) -> str | None:
        """The ``ssl_dir`` given, or ``None``."""
        return str(self._ssl_dir) if self._ssl_dir is not None else None

    @property
    def pid(self) -> int | None:
        """Process id of the running (or paused) server, ``None`` when it is not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None
        return proc.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive (a paused server is alive)."""
        return self.pid is not None

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` stopped the process and :meth:`resume` has not continued it."""
        return self._paused and self.running

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``connect()`` of PyMySQL, mysqlclient and mysql-connector.

        :returns: ``{"host", "port", "user", "password", "database"}``.
        """
        return {
            "host": self.host,
            "port": self._port,
            "user": self.user,
            "password": self.password,
            "database": self._database,
        }

    def error_log_tail(self, lines: int = 40) -> str:
        """The end of the server's error log, for diagnostics.

        :param lines: how many lines.
        :returns: the lines, newline-separated.
        """
        return tail(self._error_log, lines)

    def __repr__(self) -> str:
        state = (
            "closed"
            if self._closed
            else "paused"
            if self.paused
            else ("running" if self.running else "stopped")
        )
        return (
            f"<ThrowawayServer {self._flavor} {self.version} port={self._port} "
            f"dir={self._dir} {state}>"
        )

    # ----------------------------------------------------------------- SQL

    def sql(
        self,
        statement: str,
        params: Sequence[Any] | None = None,
        *,
        timeout: float = DEFAULT_SQL_TIMEOUT,
    ) -> list[tuple[Any, ...]]:
        """Run one statement as ``root`` on a short-lived connection over the unix socket.

        :param statement: the SQL; ``%s`` placeholders when *params* is given.
        :param params: values for the placeholders, or ``None`` (then ``%`` is literal).
        :param timeout: connect and read timeout in seconds (a paused server does not answer).
        :returns: the rows as tuples; ``[]`` for statements that return no result set.
        :raises ServerStartError: when no driver is installed.
        """
        conn = driver_connect(
            unix_socket=str(self._socket), user=self.user, password=self.password, timeout=timeout
        )
        try:
            return run_sql(conn, statement, params)
        finally:
            conn.close()

    # ----------------------------------------------------------------- lifecycle

    def start(self, timeout: float | None = None) -> None:
        """Start the server (initialising its datadir the first time) and wait until it is ready.

        Does nothing when it is already running (paused included: see :meth:`resume`).

        :param timeout: seconds to wait for connections to be accepted; default the
            ``start_timeout`` given to the constructor.
        :raises ServerStartError: when the server exits, does not become ready in time, or the
            first-start setup fails; the message ends with the tail of the error log.
        """
        timeout = self._start_timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                raise ServerStartError("this ThrowawayServer is closed")
            if self.running:
                return
            began = time.monotonic()
            self._reap()
            if not self._datadir.exists():
                self._prepare_datadir()
            if self._watchdog is None:
                self._watchdog = cleanup.start_watchdog(self._dir)
            attempts = 1 if (self._fixed_port or self._initialised) else _BIND_ATTEMPTS
            for attempt in range(1, attempts + 1):
                try:
                    self._spawn_and_wait(timeout)
                    break
                except _BindError:
                    if attempt == attempts:
                        raise
                    old, self._port = self._port, find_free_port(self.host)
                    logger.info("port %d was taken, retrying on port %d", old, self._port)
            if not self._initialised:
                try:
                    self._first_start_setup()
                except BaseException:
                    # Do not leave a half-set-up server running behind the exception.
                    self.kill()
                    raise
            logger.info(
                "%s %s started on port %d (pid %d) in %.2f s",
                self._flavor,
                self.version,
                self._port,
                self.pid,
                time.monotonic() - began,
            )

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Shut the server down cleanly: ``SIGTERM``, then ``SIGKILL`` after *timeout* seconds.

        A paused server is resumed first (a stopped process cannot handle ``SIGTERM``). Does
        nothing when the server is not running.

        :param timeout: seconds to wait for the clean shutdown.
        """
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._reap()
                return
            if self._paused:
                self._signal(signal.SIGCONT)
                self._paused = False
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "server pid %d ignored SIGTERM for %.0f s, killing it", proc.pid, timeout
                )
                self._signal(signal.SIGKILL)
                proc.wait()
            logger.info("server on port %d stopped", self._port)
            self._reap()

    def restart(self, timeout: float | None = None) -> None:
        """Stop and start again with the same datadir and port.

        :param timeout: passed to :meth:`start`.
        :raises ServerStartError: as :meth:`start`.
        """
        with self._lock:
            self.stop()
            self.start(timeout)

    def kill(self) -> None:
        """``SIGKILL`` the server: no shutdown, no cleanup (InnoDB recovers on the next start)."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._reap()
                return
            self._signal(signal.SIGKILL)
            proc.wait()
            logger.info("server on port %d killed", self._port)
            self._reap()

    def pause(self) -> None:
        """``SIGSTOP`` the server: connections stay open but nothing answers.

        :raises RuntimeError: when the server is not running.
        """
        with self._lock:
            pid = self.pid
            if pid is None:
                raise RuntimeError("cannot pause: the server is not running")
            self._signal(signal.SIGSTOP)
            self._paused = True
            # SIGSTOP is delivered asynchronously; wait for it so that callers can rely on the
            # server being frozen when this returns.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and cleanup.process_state(pid) not in (
                "T",
                "t",
                None,
            ):
                time.sleep(0.005)

    def resume(self) -> None:
        """``SIGCONT`` a paused server (harmless when it is not paused)."""
        with self._lock:
            if self.pid is not None:
                self._signal(signal.SIGCONT)
            self._paused = False

    def close(self) -> None:
        """Stop the server and remove its directory.

        Idempotent, safe when the server already died, and run at interpreter exit. In a forked
        child it does nothing: the server belongs to the parent.
        """
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.stop()
            except Exception:  # close() runs from atexit and finalizers: log, never raise
                logger.exception("stopping the server on port %d failed", self._port)
                with contextlib.suppress(Exception):
                    self.kill()
            shutil.rmtree(self._dir, ignore_errors=True)
            watchdog, self._watchdog = self._watchdog, None
            cleanup.stop_watchdog(watchdog)
        atexit.unregister(self.close)

    def __enter__(self) -> ThrowawayServer:
        try:
            self.start()
        except BaseException:
            self.close()  # __exit__ will not run: do not leave the directory until exit
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- internals

    def _make_dir(self, base_dir: str | os.PathLike[str] | None) -> Path:
        parent = os.fspath(base_dir) if base_dir is not None else tempfile.gettempdir()
        # "/pymysqllock-XXXXXXXX/mysql.sock" adds 32 characters to the parent.
        if base_dir is None and len(parent) + 32 > _MAX_SOCKET_PATH:
            parent = "/tmp"  # noqa: S108 - a private mkdtemp directory, only for a short path
        cleanup.reap_orphans(Path(parent))
        path = Path(tempfile.mkdtemp(prefix="pymysqllock-", dir=parent))
        (path / cleanup.OWNER_FILE).write_text(str(os.getpid()))
        if len(str(path / "mysql.sock")) > _MAX_SOCKET_PATH:
            shutil.rmtree(path, ignore_errors=True)
            raise ServerStartError(
                f"{path} is too long for a unix socket path; pass a shorter base_dir"
            )
        return path

    def _signal(self, signum: signal.Signals) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)

    def _reap(self) -> None:
        """Forget an exited process (after collecting its status so no zombie is left)."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            self._proc = None
            self._paused = False

    def _prepare_datadir(self) -> None:
        if self._use_template:
            template = template_for(self._binary, self._initialise_datadir)
            began = time.monotonic()
            shutil.copytree(template, self._datadir, symlinks=True)
            # MySQL keeps the server UUID there; each copy must get its own.
            (self._datadir / "auto.cnf").unlink(missing_ok=True)
            logger.debug("copied template datadir in %.3f s", time.monotonic() - began)
        else:
            self._initialise_datadir(self._datadir)

    def _initialise_datadir(self, path: Path) -> None:
        initialise(self._binary, self._flavor, path, self._files_dir)

    def _server_args(self) -> list[str]:
        args = [
            self._binary,
            "--no-defaults",  # must be the first option: no my.cnf of the machine applies
            f"--datadir={self._datadir}",
            f"--socket={self._socket}",
            f"--port={self._port}",
            f"--bind-address={self.host}",
            f"--pid-file={self._pid_file}",
            f"--log-error={self._error_log}",
            f"--tmpdir={self._files_dir}",
            # Packaged builds default to a directory (/var/lib/mysql-files) that may not exist.
            f"--secure-file-priv={self._files_dir}",
            *user_args(),
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            # Durable against a killed server (the OS still has the log), not against a crashed
            # machine, which a throwaway server does not care about; much faster commits.
            "--innodb-flush-log-at-trx-commit=2",
            # Tests hold 1000+ locks, each on its own connection.
            "--max-connections=3000",
            # Tests that kill and pause servers cause handshake errors; never block 127.0.0.1.
            "--max-connect-errors=1000000000",
            f"--performance-schema={'ON' if self._performance_schema else 'OFF'}",
        ]
        if self._flavor == "mariadb":
            args.append(f"--innodb-log-file-size={MARIADB_LOG_FILE_SIZE}")
        elif version_tuple(self._binary_version) >= (8, 0):
            # X Plugin listens on 33060 by default: two servers would fight over it.
            args.append("--mysqlx=0")
        if self._ssl_dir is not None:
            ca, cert, key = (self._ssl_dir / name for name in SSL_FILES)
            args += [f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"]
        args += self._extra_args
        return args

    def _spawn_and_wait(self, timeout: float) -> None:
        """Start the process and wait until a connection over the socket succeeds.

        :raises _BindError: when the server could not bind its port.
        :raises ServerStartError: for any other failure.
        """
        # A killed server leaves its socket file behind; the new one must not find it.
        for stale in (self._socket, self._pid_file):
            stale.unlink(missing_ok=True)
        log_offset = self._error_log.stat().st_size if self._error_log.exists() else 0
        args = self._server_args()
        logger.debug("starting server: %s", " ".join(args))
        with self._stdout_log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal must not shut the server down
                # before the tests (or atexit) do.
                start_new_session=True,
            )
        proc = self._proc
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            code = proc.poll()
            if code is not None:
                self._proc = None
                log = tail(self._error_log, 40, log_offset)
                stdout = tail(self._stdout_log, 10)
                message = f"server exited with code {code} during startup"
                if any(marker in log for marker in _BIND_FAILURE_MARKERS):
                    raise _BindError(f"{message} (port {self._port} in use):\n{log}")
                raise ServerStartError(f"{message}:\n{log}\n{stdout}".rstrip())
            if self._socket.exists() and socket_accepts(self._socket):
                try:
                    conn = driver_connect(
                        unix_socket=str(self._socket),
                        user=self.user,
                        password=self.password,
                        timeout=2.0,
                    )
                except ServerStartError:
                    self._abort_start()
                    raise
                except Exception as exc:  # noqa: BLE001 - any driver's error means "not ready yet"
                    last_error = exc
                else:
                    with contextlib.closing(conn):
                        self._version = str(run_sql(conn, "SELECT VERSION()", None)[0][0])
                    return
            if time.monotonic() >= deadline:
                self._abort_start()
                raise ServerStartError(
                    f"server did not accept connections within {timeout:.0f} s "
                    f"(last error: {last_error!r}):\n{tail(self._error_log, 40, log_offset)}"
                )
            time.sleep(0.02)

    def _abort_start(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._proc = None

    def _first_start_setup(self) -> None:
        """Accounts, database and plugins, once per datadir."""
        try:
            statements = [
                # MySQL's --initialize-insecure only creates root@localhost, which a TCP
                # connection from 127.0.0.1 does not match under --skip-name-resolve.
                f"CREATE USER IF NOT EXISTS '{self.user}'@'{self.host}'",
                f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'{self.host}' WITH GRANT OPTION",
                f"CREATE DATABASE IF NOT EXISTS `{self._database.replace('`', '``')}`",
            ]
            for statement in statements:
                self.sql(statement)
            if self._flavor == "mariadb":
                for plugin in self._plugins:
                    installed = self.sql(
                        "SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_LIBRARY = %s",
                        (f"{plugin}.so",),
                    )
                    if not installed:
                        self.sql(f"INSTALL SONAME '{plugin}'")
            elif self._plugins:
                logger.debug("MySQL has no plugin %s; not installed", ", ".join(self._plugins))
            # Check the way clients will connect: TCP, as root, into the database.
            conn = driver_connect(timeout=10.0, **self.connect_kwargs())
            conn.close()
        except ServerStartError:
            raise
        except Exception as exc:
            raise ServerStartError(
                f"setting up the server on port {self._port} failed: {exc!r}\n"
                f"{self.error_log_tail(20)}"
            ) from exc
        self._initialised = True


class _BindError(ServerStartError):
    """The server could not bind its TCP port (another process took it)."""
