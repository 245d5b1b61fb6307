"""The ``pymysqllock`` command line: run a command under a lock, inspect and free locks, demo.

Installed as the ``pymysqllock`` console script and runnable as ``python -m PyMySQLLock``; the
reference page is ``docs/cli.rst``. POSIX only (``run`` supervises its command with signals).
This module holds the argument parser, the sub-commands and :func:`main`; how ``run``
supervises its command is in :mod:`PyMySQLLock.runner`, and how the connection settings are
found in :mod:`PyMySQLLock.cliconnect`.

The password is never put on a command line of ours, never logged and never printed: give it
through ``PYMYSQLLOCK_URL`` or an option file rather than ``-pSECRET``, which other users can
read in ``ps``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import math
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from .cliconnect import URL_ENV, UsageError, open_locker, resolve_connection
from .config import parse_url
from .drivers import DRIVER_NAMES, one_of, resolve_adapter
from .errors import (
    DriverNotInstalledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockError,
    PermissionDeniedError,
)
from .fencing_sql import DEFAULT_TABLE, validate_table
from .holds import validate_hold
from .listing import LockInfo
from .locker import Locker
from .log import NAME as LOGGER_NAME, cancel, logger, when_imported
from .names import server_name, validate_name
from .runner import (
    CONNECTION_ID_ENV,
    EXIT_CANNOT_EXECUTE,
    EXIT_LOST,
    EXIT_NOT_FOUND,
    EXIT_SIGNAL_BASE,
    LOCK_NAME_ENV,
    Runner,
    Signals,
    inheritable_fds,
)
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
    "UsageError",
    "build_parser",
    "list_locks",
    "lock_record",
    "lock_status",
    "main",
    "open_locker",
    "parse_args",
    "release_lock",
    "resolve_connection",
    "split_command_line",
]

PROG = "pymysqllock"
_DRIVER_CHOICES = one_of(DRIVER_NAMES)

# Exit codes. Our own failures use the sysexits.h numbers, which commands rarely use for
# themselves, so that "run" can pass the command's status through and still be told apart.
# The statuses only "run" produces (EXIT_LOST, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND,
# EXIT_SIGNAL_BASE) are defined in .runner, which returns them; they are re-exported here.
EXIT_OK = 0
#: run: the lock is busy (the default of -E, as flock); status: held; release: was free.
EXIT_BUSY = 1
#: Bad arguments, URL, option file or driver.
EXIT_USAGE = 2
#: The server cannot be reached, refused a statement, or cannot list locks.
EXIT_UNAVAILABLE = 69
#: A bug: an unexpected exception.
EXIT_SOFTWARE = 70
#: release --force: this account may not end the holder's session.
EXIT_NO_PERMISSION = 77

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


def _hold_seconds(text: str) -> float:
    try:
        return validate_hold(float(text), "--hold-at-least")
    except (ValueError, LockError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _exit_code(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"must be an exit code from 0 to 255: {text!r}")
    return value


def _port(text: str) -> int:
    from .optionfile import parse_port  # only here: most runs give no port flag

    try:
        return parse_port(text)
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


@functools.cache  # argparse makes a formatter per option: ask the terminal once per process
def _terminal_width() -> int:
    """The width help is formatted for: ``$COLUMNS``, else the terminal's, else 80 (less 2)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    # argparse keeps 2 columns free, as it does with the width it finds itself.
    return (columns or 80) - 2


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, told the width instead of asking ``shutil`` for it.

    argparse makes a formatter for every option it adds, and its own asks
    ``shutil.get_terminal_size()``: importing shutil (and the compression modules it imports)
    was a noticeable share of a ``run`` that cron starts again and again.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_width())


def _parser(**options: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with our formatter and no automatic ``-h`` (``-h`` is the host)."""
    return argparse.ArgumentParser(formatter_class=_HelpFormatter, add_help=False, **options)


def _common_options() -> argparse.ArgumentParser:
    common = _parser()
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
    parent = _parser()
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
        "--ssl-mode",
        metavar="MODE",
        help="DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY, as for mysql "
        "(default: VERIFY_CA with --ssl-ca, else PREFERRED)",
    )
    group.add_argument("--ssl-ca", metavar="FILE", help="CA certificate the server's must chain to")
    group.add_argument("--ssl-cert", metavar="FILE", help="client certificate")
    group.add_argument("--ssl-key", metavar="FILE", help="client key")
    group.add_argument("--driver", help=f"{_DRIVER_CHOICES} (default: the first installed)")
    return parent


def _run_options(sub: argparse.ArgumentParser) -> None:
    sub.usage = (
        "%(prog)s [-w SECS | -n] [-E CODE] [--refresh SECS] [--grace SECS] "
        "[--hold-at-least SECS] [--max-runtime SECS] "
        "[connection options] NAME [--] COMMAND [ARGS...]\n\n"
        "Options end at NAME, as for flock(1): everything after NAME is the command."
    )
    sub.add_argument("name", metavar="NAME", help="the lock name")
    waiting = sub.add_mutually_exclusive_group()
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
    sub.add_argument(
        "-E",
        "--conflict-exit-code",
        type=_exit_code,
        default=EXIT_BUSY,
        metavar="CODE",
        help="exit status when the lock is busy (default 1)",
    )
    sub.add_argument(
        "--refresh",
        type=_positive,
        default=10.0,
        metavar="SECS",
        help="check every SECS that the lock is still held (default 10)",
    )
    sub.add_argument(
        "--grace",
        type=_nonnegative,
        default=10.0,
        metavar="SECS",
        help="after a lost lock or --max-runtime, SIGKILL the command SECS after SIGTERM "
        "(default 10)",
    )
    sub.add_argument(
        "--max-runtime",
        type=_positive,
        metavar="SECS",
        help="stop COMMAND after SECS: SIGTERM to its process group, SIGKILL after --grace",
    )
    sub.add_argument(
        "--hold-at-least",
        type=_hold_seconds,
        metavar="SECS",
        help="keep the lock SECS after it was taken even if COMMAND ends sooner, so that "
        "another host's late trigger finds it busy (a signal ends the wait early)",
    )
    sub.add_argument(
        "--keep-url-password",
        action="store_true",
        help=f"pass ${URL_ENV} on to the command with its password (by default it is removed)",
    )
    sub.add_argument(
        "command", nargs="*", metavar="COMMAND", help="the command and its arguments, after NAME"
    )


def _list_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--prefix", metavar="P", help="only names starting with P")
    sub.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of objects with name, server_name, connection_id, user, host "
        "and held_for_seconds",
    )


def _status_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("name", metavar="NAME", help="the lock name")


def _release_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--force",
        action="store_true",
        help="required: ends the holder's whole server session, and its work may still be running",
    )
    sub.add_argument("name", metavar="NAME", help="the lock name")


def _fencing_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("action", choices=["init"], help="init: create the table")
    sub.add_argument(
        "--table",
        default=DEFAULT_TABLE,
        metavar="NAME",
        help=f"the table, 'table' or 'database.table' (default {DEFAULT_TABLE})",
    )


def _demo_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--url", help="use this server instead of a throwaway one")
    sub.add_argument(
        "--workers", type=_workers, default=4, metavar="N", help="worker processes (default 4)"
    )
    sub.add_argument("--driver", help=_DRIVER_CHOICES)


#: A sub-command: its name, handler, description, whether it talks to a server (and so takes
#: the connection options), and the function that adds its own options.
_Command = tuple[
    str, Callable[[argparse.Namespace], int], str, bool, Callable[[argparse.ArgumentParser], None]
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Make the argument parser of ``pymysqllock``.

    :param only: the one sub-command wanted (a line that starts with it needs no other, nor
        the top-level help that lists them all); ``None``: all of them. Building every option
        of every sub-command was a noticeable share of a ``run`` that cron starts again and
        again.
    :returns: the parser; each sub-command sets ``handler`` in the parsed namespace.
    """
    wanted = [entry for entry in _COMMAND_TABLE if only in (None, entry[0])]
    common = _common_options()
    connection = _connection_options() if any(entry[3] for entry in wanted) else None
    parser = _parser(
        prog=PROG,
        description="Named locks shared by every process that uses the same MySQL or MariaDB\n"
        "server (GET_LOCK). 'pymysqllock COMMAND --help' describes each command.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", dest="verbose_before", action="count", default=0, help=argparse.SUPPRESS
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, handler, text, server, add_options in wanted:
        sub = subparsers.add_parser(
            name,
            help=text,
            description=text,
            epilog=EXIT_CODES_HELP,
            formatter_class=_HelpFormatter,
            parents=[common, connection] if server and connection is not None else [common],
            add_help=False,
        )
        sub.set_defaults(handler=handler)
        add_options(sub)
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


def _value_options(parser: argparse.ArgumentParser) -> frozenset[str]:
    """The option strings of ``parser`` and its sub-commands that take a value."""
    found: set[str] = set()
    for action in parser._actions:  # argparse has no public list of its options
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _value_options(sub)
        elif action.nargs != 0:
            found.update(action.option_strings)
    return frozenset(found)


def _option_width(token: str, takes_value: frozenset[str]) -> int:
    """How many tokens the option ``token`` spans: 2 when its value is the next token."""
    if token.startswith("--"):
        return 2 if "=" not in token and token in takes_value else 1
    # "-w5" and "-P3306" carry their value; "-w" alone takes the next token.
    return 2 if token in takes_value else 1


def split_command_line(
    tokens: Sequence[str], takes_value: frozenset[str]
) -> tuple[list[str], list[str] | None]:
    """Arrange a command line the way flock(1) and the mysql client read theirs.

    Connection options may come before the sub-command: they are moved after it. For ``run``,
    options end at the lock name, and everything after the name is the command, taken as it
    is (an optional ``--`` right after the name is dropped): ``run -w 5 NAME cmd --url x``
    passes ``--url x`` to ``cmd``. The older ``run NAME [options] -- COMMAND`` still works. A
    ``-h`` with no value after it asks for help (elsewhere ``-h`` is the host, as for mysql).

    :param tokens: the arguments without the program name.
    :param takes_value: the option strings that take a value.
    :returns: the tokens for argparse (for ``run``, ending with ``-- NAME``; ``-p`` flags
        rewritten) and the command of ``run`` (``None`` for the other sub-commands).
    """
    tokens = list(tokens)
    # "--password" alone asks for the password (see _rewrite_password_flags): no value.
    takes_value = takes_value - {"--password"}
    if tokens == ["-h"]:
        return ["--help"], None
    before: list[str] = []
    index = 0
    while index < len(tokens) and tokens[index] not in COMMANDS:
        if tokens[index] == "--":
            break
        width = _option_width(tokens[index], takes_value) if tokens[index][:1] == "-" else 1
        before += tokens[index : index + width]
        index += width
    if index >= len(tokens) or tokens[index] not in COMMANDS:
        return tokens, None
    # Only --help/--version/-v belong to the top-level parser; the rest go to the command.
    leading = [t for t in before if t in ("--help", "--version")]
    moved = [t for t in before if t not in ("--help", "--version")]
    command, rest = tokens[index], tokens[index + 1 :]
    if command != "run":
        if rest[-1:] == ["-h"]:
            rest[-1] = "--help"
        return _rewrite_password_flags([*leading, command, *moved, *rest]), None
    options: list[str] = []
    position = 0
    while position < len(rest) and rest[position][:1] == "-" and rest[position] != "-":
        if rest[position] == "--":
            position += 1
            break
        if rest[position] == "-h" and position == len(rest) - 1:
            options.append("--help")
            position += 1
            break
        width = _option_width(rest[position], takes_value)
        options += rest[position : position + width]
        position += width
    if position >= len(rest):
        return _rewrite_password_flags([*leading, command, *moved, *options]), []
    name, after = rest[position], rest[position + 1 :]
    if after[:1] == ["--"]:
        after = after[1:]
    elif after and after[0][:1] == "-" and "--" in after:
        # The 1.0 form "run NAME [options] -- COMMAND": options between the name and "--".
        split = after.index("--")
        options += after[:split]
        after = after[split + 1 :]
    # Only our own options get the mysql client's -p meaning, never the command's.
    return [*_rewrite_password_flags([*leading, command, *moved, *options]), "--", name], after


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line (without the program name).

    :param argv: the arguments.
    :returns: the namespace; for ``run``, ``command`` holds the command and its arguments.
    :raises SystemExit: for ``--help``, ``--version`` and usage errors, as argparse does.
    """
    # The usual command line starts with its sub-command: only that one's options are needed.
    # Options before the sub-command need all of them, to tell values from the sub-command.
    first = argv[0] if argv else None
    parser = build_parser(first if first in COMMANDS else None)
    tokens, command = split_command_line(argv, _value_options(parser))
    args = parser.parse_args(tokens)
    if not hasattr(args, "handler"):
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_USAGE, f"{PROG}: error: a command is required ({', '.join(COMMANDS)})\n")
    if command is not None:
        args.command = command
    args.verbose = getattr(args, "verbose", 0) + args.verbose_before
    return args


# --------------------------------------------------------------------------- list, status, release


def _show(name: str) -> str:
    """A lock name fit for one line of output: quoted when it has unprintable characters."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)


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
    # Account names and hosts come from the server: anyone who can log in chooses them.
    return f"{_show(info.user or '?')}@{_show(info.host or '?')}"


def _printable(text: str) -> str:
    """``text`` with every unprintable character (terminal escapes...) shown as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


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
        return list_locks(locker, prefix=args.prefix, as_json=args.json)


def list_locks(locker: Locker, *, prefix: str | None = None, as_json: bool = False) -> int:
    """Print the locks held on ``locker``'s server, as ``pymysqllock list`` does.

    :param locker: the Locker to ask.
    :param prefix: only names starting with it.
    :param as_json: print JSON (see :func:`lock_record`) instead of a table.
    :returns: the exit status.
    """
    locks = locker.list_locks()
    if prefix:
        locks = [info for info in locks if info.name.startswith(prefix)]
    locks.sort(key=lambda info: info.name)
    if as_json:
        import json  # only here: a cron wrapper's every run would pay for it

        print(json.dumps([lock_record(info) for info in locks], indent=2))
        return EXIT_OK
    if not locks:
        print(f"no locks held on {locker.target}")
        return EXIT_OK
    print(f"locks held on {locker.target}:")
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
        return lock_status(locker, args.name)


def lock_status(locker: Locker, name: str) -> int:
    """Print whether ``name`` is free or who holds it, as ``pymysqllock status`` does.

    :param locker: the Locker to ask.
    :param name: the lock name.
    :returns: :data:`EXIT_OK` when free, :data:`EXIT_BUSY` when held.
    """
    holder = locker.holder(name)
    if holder is None:
        print(f"{_show(name)}: free on {locker.target}")
        return EXIT_OK
    details = _holder_details(locker, name, holder)
    print(f"{_show(name)}: held by connection {holder}{details} on {locker.target}")
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
        return release_lock(locker, args.name)


def release_lock(locker: Locker, name: str) -> int:
    """Free ``name`` by ending its holder's session and print what happened.

    :param locker: the Locker to use.
    :param name: the lock name.
    :returns: :data:`EXIT_OK` when a holder was ended, :data:`EXIT_BUSY` when it was free.
    """
    holder = locker.holder(name)
    killed = locker.force_release(name)
    if not killed:
        print(f"{_show(name)}: was free")
        return EXIT_BUSY
    shown = "" if holder is None else f" (ended connection {holder})"
    print(f"{_show(name)}: released{shown}")
    return EXIT_OK


def _cmd_fencing(args: argparse.Namespace) -> int:
    validate_table(args.table)
    connection = resolve_connection(args)
    with open_locker(connection, fencing_table=args.table) as locker:
        locker.create_fencing_table()
    print(f"fencing table {args.table} is ready")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo  # only the demo needs the throwaway server and worker plumbing

    url = args.url or os.environ.get(URL_ENV, "").strip() or None
    # Argument errors first, before a throwaway server is started for nothing.
    if url is not None:
        parse_url(url)
    if args.driver:
        resolve_adapter(args.driver)
    return demo.run_demo(url, workers=args.workers, driver=args.driver)


# --------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    if not args.command:
        raise UsageError("run needs a command: pymysqllock run NAME -- COMMAND [ARGS...]")
    if not hasattr(signal, "sigtimedwait") or not hasattr(os, "posix_spawnp"):
        raise UsageError("run needs sigtimedwait() and posix_spawnp(), which this platform lacks")
    validate_name(args.name)
    # Inherited "ignore SIGCHLD" would make the kernel reap the command before we can learn
    # its exit status (and would pass on to the command).
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    inherited = inheritable_fds()
    connection = resolve_connection(args)  # before blocking signals: Ctrl-C ends a prompt
    with Signals() as signals:
        runner = Runner(args, signals, inherited, _error)
        with open_locker(connection) as locker:
            return runner.run(locker)


# --------------------------------------------------------------------------- sub-commands

#: The sub-commands, in the order of the help.
_COMMAND_TABLE: tuple[_Command, ...] = (
    (
        "run",
        _cmd_run,
        "Run COMMAND while holding the lock NAME, like flock(1) for a fleet of machines.",
        True,
        _run_options,
    ),
    (
        "list",
        _cmd_list,
        "List the locks held on the server and their holders.",
        True,
        _list_options,
    ),
    (
        "status",
        _cmd_status,
        "Tell whether NAME is free (exit 0) or held (exit 1).",
        True,
        _status_options,
    ),
    (
        "release",
        _cmd_release,
        "Free NAME by ending the session that holds it (KILL CONNECTION).",
        True,
        _release_options,
    ),
    (
        "fencing",
        _cmd_fencing,
        (
            "Fencing tokens: 'init' creates their table (CREATE TABLE IF NOT EXISTS), so that "
            "the application's account needs only INSERT and UPDATE on it."
        ),
        True,
        _fencing_options,
    ),
    (
        "demo",
        _cmd_demo,
        (
            "Show worker processes taking turns on one lock, with a live timeline. Without "
            "--url or $PYMYSQLLOCK_URL it starts (and removes) a throwaway local MariaDB/MySQL "
            "server."
        ),
        False,
        _demo_options,
    ),
)
#: The sub-command names.
COMMANDS = tuple(entry[0] for entry in _COMMAND_TABLE)


# --------------------------------------------------------------------------- main


def _error(message: str) -> None:
    print(f"{PROG}: error: {_printable(message)}", file=sys.stderr)


@contextlib.contextmanager
def _logging(verbose: int) -> Iterator[None]:
    """Send the library's log to stderr while the command runs; undone afterwards.

    Without ``-v`` only warnings are shown, and most runs have none: the handler is then added
    when the first record comes (:func:`PyMySQLLock.log.when_imported`), so that such a run
    never imports :mod:`logging`.
    """
    added: list[tuple[Any, int]] = []

    def add() -> None:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        if verbose <= 0:
            level, layout = logging.WARNING, f"{PROG}: %(levelname)s: %(message)s"
        else:
            level = logging.INFO if verbose == 1 else logging.DEBUG
            layout = f"%(asctime)s {PROG}[%(process)d] %(levelname)s %(message)s"
        handler.setFormatter(logging.Formatter(layout))
        library = logging.getLogger(LOGGER_NAME)
        added.append((handler, library.level))
        library.addHandler(handler)
        library.setLevel(level)

    if verbose > 0 or "logging" in sys.modules:
        add()
    else:
        when_imported(add)
    try:
        yield
    finally:
        cancel(add)
        for handler, saved_level in added:
            import logging

            library = logging.getLogger(LOGGER_NAME)
            library.removeHandler(handler)
            library.setLevel(saved_level)


def _fail(code: int, message: str) -> int:
    _error(message)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pymysqllock``.

    :param argv: the arguments without the program name; default ``sys.argv[1:]``, which
        also means that the process ends when this returns (the console script and ``python
        -m PyMySQLLock`` call it so, through ``PyMySQLLock.__main__.main``).
    :returns: the exit status (see :data:`EXIT_CODES_HELP`).
    """
    if argv is not None:
        return _main(argv)
    try:
        return _main(sys.argv[1:])
    finally:
        # The process is about to exit. At exit the interpreter runs the cyclic garbage
        # collector over every object of every imported module, which took longer than the
        # whole lock round trip of "run NAME -- true" (a cron wrapper run again and again).
        # Frozen objects are left to the normal teardown; the work is done and the Locker
        # closed, so no finalizer is waiting for that collection.
        gc.freeze()


def _main(argv: Sequence[str]) -> int:
    try:
        args = parse_args(argv)
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
