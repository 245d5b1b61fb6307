"""The ``pymysqllock`` command line: run a command under a lock, inspect and free locks, demo.

Installed as the ``pymysqllock`` console script and runnable as ``python -m PyMySQLLock``; the
reference page is ``docs/cli.rst``. POSIX only (``run`` supervises its command with signals).

The password is never put on a command line of ours, never logged and never printed: give it
through ``PYMYSQLLOCK_URL`` or an option file rather than ``-pSECRET``, which other users can
read in ``ps``.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from . import optionfile
from .config import parse_url
from .drivers import resolve_adapter
from .errors import (
    DriverNotInstalledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockError,
    PermissionDeniedError,
)
from .listing import LockInfo
from .lock import Lock
from .locker import Locker
from .names import server_name, validate_name
from .timeouts import FOREVER
from .version import __version__

__all__ = [
    "CONNECTION_ID_ENV",
    "EXIT_BUSY",
    "EXIT_CANNOT_EXECUTE",
    "EXIT_CODES_HELP",
    "EXIT_LOST",
    "EXIT_NOT_FOUND",
    "EXIT_NO_PERMISSION",
    "EXIT_OK",
    "EXIT_SIGNAL_BASE",
    "EXIT_SOFTWARE",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "LOCK_NAME_ENV",
    "URL_ENV",
    "Connection",
    "UsageError",
    "build_parser",
    "lock_record",
    "main",
    "open_locker",
    "parse_args",
    "resolve_connection",
]

logger = logging.getLogger("PyMySQLLock")

PROG = "pymysqllock"
#: The environment variable holding the connection URL.
URL_ENV = "PYMYSQLLOCK_URL"
#: Set for the command of ``run``: the lock name, and the id of the session that holds it.
LOCK_NAME_ENV = "PYMYSQLLOCK_LOCK_NAME"
CONNECTION_ID_ENV = "PYMYSQLLOCK_CONNECTION_ID"

# Exit codes. Our own failures use the sysexits.h numbers, which commands rarely use for
# themselves, so that "run" can pass the command's status through and still be told apart.
EXIT_OK = 0
#: run: the lock is busy (the default of -E, as flock); status: held; release: was free.
EXIT_BUSY = 1
#: Bad arguments, URL, option file or driver.
EXIT_USAGE = 2
#: The server cannot be reached, refused a statement, or cannot list locks.
EXIT_UNAVAILABLE = 69
#: A bug: an unexpected exception.
EXIT_SOFTWARE = 70
#: run: the lock was lost while the command ran; the command was stopped.
EXIT_LOST = 75
#: release --force: this account may not end the holder's session.
EXIT_NO_PERMISSION = 77
#: run: the command cannot be executed / was not found (as a shell reports them).
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
#: A death by signal N is reported as 128 + N, as a shell does.
EXIT_SIGNAL_BASE = 128

EXIT_CODES_HELP = f"""\
exit codes:
  0    success; run: the command's own exit status is passed through
  1    run: lock busy (-n, or -w expired; change with -E); status: held;
       release: the lock was free; demo: critical sections overlapped
  2    usage error: bad arguments, URL, option file or driver
  {EXIT_UNAVAILABLE}   server unreachable, server error, or lock listing unavailable
  {EXIT_SOFTWARE}   internal error
  {EXIT_LOST}   run: the lock was lost while the command ran; it was sent SIGTERM
       (SIGKILL after --grace seconds)
  {EXIT_NO_PERMISSION}   release --force: not allowed to end the holder's session
  126  run: the command cannot be executed
  127  run: the command was not found
  128+N  run: the command died of signal N, or pymysqllock got signal N while
       waiting for the lock

environment:
  {URL_ENV}  connection URL, e.g. mysql://app:s%40cret@db:3306/app
"""


def _signals(*names: str) -> frozenset[int]:
    # getattr: list, status and release also work where some signals do not exist (Windows).
    return frozenset(getattr(signal, name) for name in names if hasattr(signal, name))


# The signals "run" passes on to its command.
_FORWARDED = _signals("SIGINT", "SIGTERM", "SIGHUP")
# Signals that Python ignores at startup; the command must start with the default action.
_RESET_IN_CHILD = _signals("SIGPIPE", "SIGXFSZ")
# siginfo.si_code of a signal sent by the kernel, e.g. by the terminal for Ctrl-C (Linux).
_SI_KERNEL = 0x80
# Longest sleep of the supervising loop: only a safety net, every event also wakes it.
_MAX_SLEEP = 1.0


class UsageError(Exception):
    """The command line cannot be carried out as given (exit 2)."""


# --------------------------------------------------------------------------- parsing


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _positive(text: str) -> float:
    value = _nonnegative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _exit_code(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"must be an exit code from 0 to 255: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        return optionfile.parse_port(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 2 <= value <= 32:
        raise argparse.ArgumentTypeError(f"must be a number from 2 to 32: {text!r}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--help", action="help", help="show this help and exit")
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr: -v progress, -vv debugging details",
    )
    return common


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group(
        "connection",
        "Where the server is: --url, else --defaults-file, else $PYMYSQLLOCK_URL, else\n"
        "the mysql client's option files ([client] of /etc/my.cnf, /etc/mysql/my.cnf,\n"
        "~/.my.cnf). The other flags below override single settings of any of these.",
    )
    group.add_argument("--url", help="mysql[+DRIVER]://USER:PASSWORD@HOST:PORT/DATABASE")
    group.add_argument("-h", "--host", help="server host (a TCP connection unless 'localhost')")
    group.add_argument("-P", "--port", type=_port, help="server TCP port")
    group.add_argument("-u", "--user", help="account user name")
    group.add_argument(
        "--password",
        metavar="PASSWORD",
        help="also -pPASSWORD; -p alone asks for it. Visible to other users in ps: prefer "
        "$PYMYSQLLOCK_URL or an option file",
    )
    # "-p" and "--password" without a value are rewritten to this before parsing.
    group.add_argument("--password-prompt", action="store_true", help=argparse.SUPPRESS)
    group.add_argument(
        "-S", "--socket", help="unix socket path (used when the host is localhost or not set)"
    )
    group.add_argument("-D", "--database", help="database to connect to")
    group.add_argument("--defaults-file", metavar="FILE", help="read only this option file")
    group.add_argument(
        "--defaults-extra-file", metavar="FILE", help="read this option file after the global ones"
    )
    group.add_argument("--no-defaults", action="store_true", help="read no option file")
    group.add_argument(
        "--driver", help="pymysql, mysql.connector or MySQLdb (default: the first installed)"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """Make the argument parser of ``pymysqllock``.

    :returns: the parser; each sub-command sets ``handler`` in the parsed namespace.
    """
    formatter = argparse.RawDescriptionHelpFormatter
    common = _common_options()
    connection = _connection_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Named locks shared by every process that uses the same MySQL or MariaDB\n"
        "server (GET_LOCK). 'pymysqllock COMMAND --help' describes each command.",
        epilog=EXIT_CODES_HELP,
        formatter_class=formatter,
        add_help=False,
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", dest="verbose_before", action="count", default=0, help=argparse.SUPPRESS
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], text: str, *, server: bool
    ) -> argparse.ArgumentParser:
        parents = [common, connection] if server else [common]
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EXIT_CODES_HELP,
            formatter_class=formatter,
            parents=parents,
            add_help=False,
        )
        sub.set_defaults(handler=handler)
        return sub

    run = command(
        "run",
        _cmd_run,
        "Run COMMAND while holding the lock NAME, like flock(1) for a fleet of machines.",
        server=True,
    )
    run.usage = (
        "%(prog)s NAME [-w SECS | -n] [-E CODE] [--refresh SECS] [--grace SECS] "
        "[connection options] -- COMMAND [ARGS...]"
    )
    run.add_argument("name", metavar="NAME", help="the lock name")
    waiting = run.add_mutually_exclusive_group()
    waiting.add_argument(
        "-w",
        "--wait",
        "--timeout",
        dest="wait",
        type=_nonnegative,
        metavar="SECS",
        help="give up when the lock is not acquired within SECS (default: wait forever)",
    )
    waiting.add_argument(
        "-n", "--nonblock", action="store_true", help="give up at once when the lock is busy"
    )
    run.add_argument(
        "-E",
        "--conflict-exit-code",
        type=_exit_code,
        default=EXIT_BUSY,
        metavar="CODE",
        help="exit status when the lock is busy (default 1)",
    )
    run.add_argument(
        "--refresh",
        type=_positive,
        default=10.0,
        metavar="SECS",
        help="check every SECS that the lock is still held (default 10)",
    )
    run.add_argument(
        "--grace",
        type=_nonnegative,
        default=10.0,
        metavar="SECS",
        help="after a lost lock, SIGKILL the command SECS after SIGTERM (default 10)",
    )
    run.add_argument("command", nargs="*", metavar="COMMAND", help="the command, after --")

    listing = command(
        "list", _cmd_list, "List the locks held on the server and their holders.", server=True
    )
    listing.add_argument("--prefix", metavar="P", help="only names starting with P")
    listing.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of objects with name, server_name, connection_id, user, host "
        "and held_for_seconds",
    )

    status = command(
        "status", _cmd_status, "Tell whether NAME is free (exit 0) or held (exit 1).", server=True
    )
    status.add_argument("name", metavar="NAME", help="the lock name")

    release = command(
        "release",
        _cmd_release,
        "Free NAME by ending the session that holds it (KILL CONNECTION).",
        server=True,
    )
    release.add_argument(
        "--force",
        action="store_true",
        help="required: ends the holder's whole server session, and its work may still be running",
    )
    release.add_argument("name", metavar="NAME", help="the lock name")

    demo = command(
        "demo",
        _cmd_demo,
        "Show worker processes taking turns on one lock, with a live timeline. Without --url "
        "or $PYMYSQLLOCK_URL it starts (and removes) a throwaway local MariaDB/MySQL server.",
        server=False,
    )
    demo.add_argument("--url", help="use this server instead of a throwaway one")
    demo.add_argument(
        "--workers", type=_workers, default=4, metavar="N", help="worker processes (default 4)"
    )
    demo.add_argument("--driver", help="pymysql, mysql.connector or MySQLdb")
    return parser


def _rewrite_password_flags(tokens: Sequence[str]) -> list[str]:
    """Give ``-p`` the mysql client's meaning: ``-pSECRET`` is the password, ``-p`` prompts.

    argparse would take the next word as the value of a bare ``-p``; the mysql client never
    does. The mapping is one token to one token.
    """
    rewritten = []
    for token in tokens:
        if token in ("-p", "--password"):
            rewritten.append("--password-prompt")
        elif token.startswith("-p") and not token.startswith("--"):
            rewritten.append("--password=" + token[2:])
        else:
            rewritten.append(token)
    return rewritten


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line (without the program name).

    :param argv: the arguments.
    :returns: the namespace; ``command`` holds what follows ``--``.
    :raises SystemExit: for ``--help``, ``--version`` and usage errors, as argparse does.
    """
    tokens = list(argv)
    after: list[str] | None = None
    if "--" in tokens:
        split = tokens.index("--")
        tokens, after = tokens[:split], tokens[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(_rewrite_password_flags(tokens))
    if not hasattr(args, "handler"):
        parser.print_usage(sys.stderr)
        parser.exit(
            EXIT_USAGE, f"{PROG}: error: a command is required (run, list, status, release, demo)\n"
        )
    if after is not None:
        if args.handler is not _cmd_run or args.command:
            parser.exit(EXIT_USAGE, f"{PROG}: error: unexpected arguments after --\n")
        args.command = after
    args.verbose = getattr(args, "verbose", 0) + args.verbose_before
    return args


# --------------------------------------------------------------------------- connection


@dataclass
class Connection:
    """Where and how to connect, resolved from the command line, environment and files.

    :param driver: the driver name, or ``None`` for the first installed.
    :param connect_kwargs: driver-neutral ``connect()`` arguments.
    :param locker_options: ``Locker`` options from a URL (``namespace``, ...).
    :param source: where the settings came from, for messages.
    """

    driver: str | None = None
    connect_kwargs: dict[str, Any] = field(default_factory=dict)
    locker_options: dict[str, Any] = field(default_factory=dict)
    source: str = "defaults"

    def __repr__(self) -> str:
        return f"<Connection {self.describe()} from {self.source}>"

    def describe(self) -> str:
        """:returns: ``user@host:port`` or ``user@socket``, never the password."""
        kwargs = self.connect_kwargs
        where = kwargs.get("unix_socket") or (
            f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 3306)}"
        )
        user = kwargs.get("user")
        return where if user is None else f"{user}@{where}"


def resolve_connection(
    args: argparse.Namespace,
    environ: dict[str, str] | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
) -> Connection:
    """Work out the connection settings, asking for the password when told to.

    Precedence: ``--url``, then ``--defaults-file``/``--defaults-extra-file``, then
    ``$PYMYSQLLOCK_URL``, then the default option files (unless ``--no-defaults``); the
    single-setting flags override any of them.

    :param args: the parsed command line.
    :param environ: the environment; default :data:`os.environ`.
    :param prompt: asks for the password.
    :returns: the settings.
    :raises UsageError: for contradicting options or a password prompt without an answer.
    :raises InvalidArgumentError: for a bad URL or option file.
    """
    env = dict(os.environ) if environ is None else environ
    named_files = [path for path in (args.defaults_file, args.defaults_extra_file) if path]
    if args.url and named_files:
        raise UsageError("--url cannot be combined with --defaults-file or --defaults-extra-file")
    if args.defaults_file and args.defaults_extra_file:
        raise UsageError("--defaults-file reads only that file: drop --defaults-extra-file")
    env_url = env.get(URL_ENV, "").strip()
    if args.url or (env_url and not named_files):
        url = args.url or env_url
        settings = parse_url(url)
        connection = Connection(
            settings.driver,
            dict(settings.connect_kwargs),
            dict(settings.locker_options),
            "--url" if args.url else f"${URL_ENV}",
        )
    else:
        if args.defaults_file:
            files = [args.defaults_file]
        else:
            files = [] if args.no_defaults else optionfile.default_files(env, env.get("HOME"))
            if args.defaults_extra_file:
                # The mysql client reads the extra file just before the user's ~/.my.cnf.
                files.insert(max(len(files) - 1, 0), args.defaults_extra_file)
        options = optionfile.read_files(files, required=named_files)
        connection = Connection(
            connect_kwargs=optionfile.connect_options(options),
            source=", ".join(str(path) for path in files) or "no option file",
        )
    kwargs = connection.connect_kwargs
    for name, keyword in (
        ("host", "host"),
        ("port", "port"),
        ("user", "user"),
        ("socket", "unix_socket"),
        ("database", "database"),
        ("password", "password"),
    ):
        value = getattr(args, name)
        if value is not None:
            kwargs[keyword] = value
    if args.driver:
        connection.driver = args.driver
    host = kwargs.get("host")
    if host not in (None, "", "localhost") and kwargs.pop("unix_socket", None) is not None:
        # The mysql client's rule: a socket is only for localhost.
        logger.debug("host %s is not localhost: the socket setting is not used", host)
    if args.password_prompt or ("password" in kwargs and kwargs["password"] is optionfile.PROMPT):
        try:
            kwargs["password"] = prompt("Enter password: ")
        except EOFError:
            raise UsageError("no password was entered") from None
    return connection


def open_locker(connection: Connection) -> Locker:
    """Connect.

    :param connection: the settings.
    :returns: a connected :class:`Locker`.
    :raises LockError: when the driver is missing or the server cannot be reached.
    """
    adapter = resolve_adapter(connection.driver)
    options: dict[str, Any] = dict(connection.locker_options)
    options.update(adapter.translate_options(connection.connect_kwargs))
    logger.info(
        "connecting to %s with %s (settings from %s)",
        connection.describe(),
        adapter.name,
        connection.source,
    )
    return Locker(driver=adapter, **options)


def _show(name: str) -> str:
    """A lock name fit for one line of output: quoted when it has unprintable characters."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)


# --------------------------------------------------------------------------- list, status, release


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _account(info: LockInfo) -> str:
    if info.user is None and info.host is None:
        return "-"
    return f"{info.user or '?'}@{info.host or '?'}"


def lock_record(info: LockInfo) -> dict[str, Any]:
    """The JSON form of a held lock, as ``list --json`` prints it.

    :param info: the lock.
    :returns: ``name``, ``server_name``, ``connection_id``, ``user``, ``host`` and
        ``held_for_seconds`` (``null`` where the server does not tell).
    """
    return {
        "name": info.name,
        "server_name": info.server_name,
        "connection_id": info.connection_id,
        "user": info.user,
        "host": info.host,
        "held_for_seconds": info.held_for,
    }


def _cmd_list(args: argparse.Namespace) -> int:
    connection = resolve_connection(args)
    with open_locker(connection) as locker:
        locks = locker.list_locks()
    if args.prefix:
        locks = [info for info in locks if info.name.startswith(args.prefix)]
    locks.sort(key=lambda info: info.name)
    if args.json:
        print(json.dumps([lock_record(info) for info in locks], indent=2))
        return EXIT_OK
    if not locks:
        print("no locks held")
        return EXIT_OK
    rows = [("NAME", "HOLDER", "USER@HOST", "HELD FOR")]
    rows += [
        (
            _show(info.name),
            "-" if info.connection_id is None else str(info.connection_id),
            _account(info),
            _duration(info.held_for),
        )
        for info in locks
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return EXIT_OK


def _holder_details(locker: Locker, name: str, holder: int) -> str:
    """``" (app@10.0.0.5:40112) for 3.2s"`` when the server lists it, else ``""``."""
    try:
        locks = locker.list_locks()
    except LockError as exc:
        logger.debug("no holder details: %s", exc)
        return ""
    stored = server_name(validate_name(name), locker.namespace)
    for info in locks:
        if info.server_name == stored and info.connection_id == holder:
            details = f" ({_account(info)})"
            if info.held_for is not None:
                details += f" for {_duration(info.held_for)}"
            return details
    return ""


def _cmd_status(args: argparse.Namespace) -> int:
    validate_name(args.name)
    connection = resolve_connection(args)
    with open_locker(connection) as locker:
        holder = locker.holder(args.name)
        if holder is None:
            print(f"{_show(args.name)}: free")
            return EXIT_OK
        details = _holder_details(locker, args.name, holder)
    print(f"{_show(args.name)}: held by connection {holder}{details}")
    return EXIT_BUSY


def _cmd_release(args: argparse.Namespace) -> int:
    if not args.force:
        raise UsageError(
            "release needs --force: it ends the holder's whole server session, while the "
            "holder's work may still be running"
        )
    validate_name(args.name)
    connection = resolve_connection(args)
    with open_locker(connection) as locker:
        holder = locker.holder(args.name)
        killed = locker.force_release(args.name)
    if not killed:
        print(f"{_show(args.name)}: was free")
        return EXIT_BUSY
    shown = "" if holder is None else f" (ended connection {holder})"
    print(f"{_show(args.name)}: released{shown}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo  # only the demo needs the sandbox and worker plumbing

    url = args.url or os.environ.get(URL_ENV, "").strip() or None
    # Argument errors first, before a throwaway server is started for nothing.
    if url is not None:
        parse_url(url)
    if args.driver:
        resolve_adapter(args.driver)
    return demo.run_demo(url, workers=args.workers, driver=args.driver)


# --------------------------------------------------------------------------- run


def _inheritable_fds() -> set[int]:
    """The open descriptors above 2 that a command would inherit."""
    directory = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    found = set()
    for entry in os.listdir(directory):
        fd = int(entry)
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            if fd > 2 and os.get_inheritable(fd):
                found.add(fd)
    return found


class _Signals:
    """The supervising thread's view of signals: blocked, then taken with ``sigtimedwait``.

    Taking signals synchronously tells who sent them (siginfo), and lets other threads wake the
    supervisor by sending it ``SIGCHLD``. Every thread started inside the ``with`` block
    inherits the blocked mask, so no signal runs a handler or a default action there.
    """

    WATCHED = _FORWARDED | _signals("SIGCHLD")

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        self._saved: set[int] | None = None

    def __enter__(self) -> _Signals:
        self._saved = signal.pthread_sigmask(signal.SIG_BLOCK, self.WATCHED)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Signals that came after the last look are dropped: we are about to exit anyway.
        while signal.sigtimedwait(self.WATCHED, 0) is not None:
            pass
        if self._saved is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._saved)

    def wake(self) -> None:
        """Make :meth:`wait` return now (callable from any thread)."""
        signal.pthread_kill(self._thread, signal.SIGCHLD)

    def wait(self, timeout: float) -> Any:
        """:returns: the siginfo of a signal, or ``None`` after ``timeout`` seconds."""
        return signal.sigtimedwait(self.WATCHED, max(timeout, 0.0))


def _from_terminal(info: Any, pid: int) -> bool:
    """Whether the terminal sent this signal to our process group, which the command is in."""
    if not sys.platform.startswith("linux") or info.si_code != _SI_KERNEL:
        return False
    try:
        return os.getpgid(pid) == os.getpgrp()
    except OSError:
        return False


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return EXIT_SIGNAL_BASE - code if code < 0 else code


class _Runner:
    """``pymysqllock run``: hold a lock while a command runs, and stop it if the lock is lost."""

    def __init__(self, args: argparse.Namespace, signals: _Signals, inherited: set[int]) -> None:
        self.args = args
        self.signals = signals
        self.inherited = inherited
        self.lost = threading.Event()

    def _on_lost(self, lock: Lock) -> None:
        self.lost.set()
        self.signals.wake()

    def run(self, locker: Locker) -> int:
        args = self.args
        lock = locker.lock(args.name, refresh_interval_secs=args.refresh, on_lost=self._on_lost)
        timeout = 0 if args.nonblock else (FOREVER if args.wait is None else args.wait)
        acquired, signum = self._acquire(lock, timeout)
        if signum is not None:
            logger.info("got signal %d while waiting for lock %r", signum, args.name)
            return EXIT_SIGNAL_BASE + signum
        if not acquired:
            if logger.isEnabledFor(logging.INFO):
                holder = locker.holder(args.name)
                logger.info("lock %r is busy (held by connection %s)", args.name, holder)
            return int(args.conflict_exit_code)
        try:
            pid = self._spawn(lock)
        except OSError as exc:
            _error(f"cannot run {args.command[0]!r}: {exc.strerror}")
            return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
        status, stopped = self._supervise(pid)
        if lock.locked():
            lock.release()  # reports a loss found at release through on_lost
        if self.lost.is_set() or lock.lost:
            if stopped:
                _error(
                    f"lock {args.name!r} was lost while the command ran; the command (pid "
                    f"{pid}) was stopped"
                )
            else:
                _error(
                    f"lock {args.name!r} was lost before the command ended; its work may have "
                    "overlapped with another holder's"
                )
            return EXIT_LOST
        logger.info("command exited with status %d; lock %r released", status, args.name)
        return status

    def _acquire(self, lock: Lock, timeout: float) -> tuple[bool, int | None]:
        """Wait for the lock in a thread, so that a signal can cancel the wait.

        :returns: whether acquired, and the signal that ended the wait (``None`` if none).
        """
        outcome: list[Any] = []

        def acquire() -> None:
            try:
                outcome.append(lock.acquire(timeout))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome.append(exc)
            finally:
                self.signals.wake()

        thread = threading.Thread(target=acquire, name="pymysqllock-acquire", daemon=True)
        logger.debug("waiting for lock %r (timeout %s)", self.args.name, timeout)
        thread.start()
        while not outcome:
            info = self.signals.wait(_MAX_SLEEP)
            if info is not None and info.si_signo in _FORWARDED:
                lock.cancel()
                thread.join()
                if lock.locked():  # granted before the cancel: give it back
                    lock.release()
                return False, int(info.si_signo)
        thread.join()
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return bool(result), None

    def _spawn(self, lock: Lock) -> int:
        command = self.args.command
        env = dict(os.environ)
        env[LOCK_NAME_ENV] = self.args.name
        env[CONNECTION_ID_ENV] = str(lock.connection_id)
        # Our own connections must not live on in the command: if they did, the server would
        # keep the lock when we die. Descriptors we inherited are passed on, as flock does.
        close = [(os.POSIX_SPAWN_CLOSE, fd) for fd in sorted(_inheritable_fds() - self.inherited)]
        pid = os.posix_spawnp(
            command[0],
            command,
            env,
            file_actions=close,
            setsigmask=set(),
            setsigdef=_RESET_IN_CHILD,
        )
        logger.info("lock %r acquired; started %s (pid %d)", self.args.name, command[0], pid)
        return pid

    def _supervise(self, pid: int) -> tuple[int, bool]:
        """Forward signals to the command, stop it if the lock is lost, and wait for it.

        :returns: the command's exit status (128 + N for a death by signal N), and whether we
            stopped it because the lock was lost.
        """
        grace = float(self.args.grace)
        kill_at: float | None = None
        killed = False
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                return _exit_status(wait_status), kill_at is not None
            now = time.monotonic()
            if self.lost.is_set() and kill_at is None:
                logger.info("lock %r lost: sending SIGTERM to pid %d", self.args.name, pid)
                _kill(pid, signal.SIGTERM)
                kill_at = now + grace
            if kill_at is not None and not killed and now >= kill_at:
                logger.warning("pid %d outlived the %.1fs grace period: SIGKILL", pid, grace)
                _kill(pid, signal.SIGKILL)
                killed = True
            sleep = _MAX_SLEEP if kill_at is None or killed else min(_MAX_SLEEP, kill_at - now)
            info = self.signals.wait(sleep)
            if info is not None and info.si_signo in _FORWARDED:
                if _from_terminal(info, pid):
                    logger.debug(
                        "signal %d came from the terminal to the command too", info.si_signo
                    )
                else:
                    logger.info("forwarding signal %d to pid %d", info.si_signo, pid)
                    _kill(pid, info.si_signo)


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _cmd_run(args: argparse.Namespace) -> int:
    if not args.command:
        raise UsageError("run needs a command: pymysqllock run NAME -- COMMAND [ARGS...]")
    if not hasattr(signal, "sigtimedwait") or not hasattr(os, "posix_spawnp"):
        raise UsageError("run needs sigtimedwait() and posix_spawnp(), which this platform lacks")
    validate_name(args.name)
    # Inherited "ignore SIGCHLD" would make the kernel reap the command before we can learn
    # its exit status (and would pass on to the command).
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    inherited = _inheritable_fds()
    connection = resolve_connection(args)  # before blocking signals: Ctrl-C ends a prompt
    with _Signals() as signals:
        runner = _Runner(args, signals, inherited)
        with open_locker(connection) as locker:
            return runner.run(locker)


# --------------------------------------------------------------------------- main


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


@contextlib.contextmanager
def _logging(verbose: int) -> Iterator[None]:
    """Send the library's log to stderr while the command runs; undone afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    if verbose <= 0:
        level, layout = logging.WARNING, f"{PROG}: %(levelname)s: %(message)s"
    else:
        level = logging.INFO if verbose == 1 else logging.DEBUG
        layout = f"%(asctime)s {PROG}[%(process)d] %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(layout))
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)


def _fail(code: int, message: str) -> int:
    _error(message)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pymysqllock``.

    :param argv: the arguments without the program name; default ``sys.argv[1:]``.
    :returns: the exit status (see :data:`EXIT_CODES_HELP`).
    """
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else EXIT_OK
    with _logging(args.verbose):
        try:
            return int(args.handler(args))
        except UsageError as exc:
            return _fail(EXIT_USAGE, str(exc))
        except (InvalidArgumentError, InvalidArgumentTypeError, DriverNotInstalledError) as exc:
            return _fail(EXIT_USAGE, str(exc))
        except PermissionDeniedError as exc:
            return _fail(EXIT_NO_PERMISSION, f"permission denied: {exc}")
        except LockError as exc:
            return _fail(EXIT_UNAVAILABLE, str(exc))
        except KeyboardInterrupt:
            return EXIT_SIGNAL_BASE + signal.SIGINT
        except BrokenPipeError:
            # "pymysqllock list | head -1": the reader left. Exit as a shell's SIGPIPE death
            # would, and keep the interpreter from complaining when it flushes stdout.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_SIGNAL_BASE + 13
        except Exception as exc:
            logger.debug("unexpected error", exc_info=True)
            return _fail(EXIT_SOFTWARE, f"unexpected {type(exc).__name__}: {exc}")
