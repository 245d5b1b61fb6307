r"""MySQL client option files (``my.cnf``), read the way the ``mysql`` client reads them.

Used by the ``pymysqllock`` command line, so that a host already set up for the ``mysql``
client (``~/.my.cnf`` with a ``[client]`` section) needs no more configuration, and so that a
password can live in a file instead of on the command line. The rules followed:

* Files are read in order and options in file order; the last value of an option wins.
* Only the groups in :data:`CLIENT_GROUPS` are used; other groups are skipped.
* ``#`` and ``;`` start a comment line; ``#`` also ends a value unless it is inside quotes.
* Spaces around names and values are dropped. A value may be quoted with ``'`` or ``"``, and
  the escapes ``\n \t \r \b \s \\ \" \'`` are understood.
* ``-`` and ``_`` are the same in option names, and a ``loose-`` prefix is ignored.
* ``!include FILE`` and ``!includedir DIR`` (its ``*.cnf`` files, sorted) are followed.
* A world-writable file is ignored, as the ``mysql`` client does, since anyone could have put
  a different server there; a file named by the user (``--defaults-file``) is an error then.
* ``password`` without a value means "ask for it", as for the ``mysql`` client.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError

__all__ = [
    "CLIENT_GROUPS",
    "PROMPT",
    "OptionFileError",
    "check_driver_file",
    "connect_options",
    "default_files",
    "parse_port",
    "parse_text",
    "read_files",
    "unread_tls_options",
]

logger = logging.getLogger("PyMySQLLock")

#: The groups read, as the MariaDB and MySQL clients read them, plus this tool's own group.
CLIENT_GROUPS: tuple[str, ...] = ("client", "client-server", "client-mariadb", "pymysqllock")
#: The value of an option given without ``=value`` (only ``password`` accepts that: "prompt").
PROMPT = None
# Options understood, as (option file name, driver-neutral connect() keyword).
_KNOWN = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "socket": "unix_socket",
    "database": "database",
    "ssl-mode": "ssl_mode",
    "ssl-ca": "ssl_ca",
    "ssl-cert": "ssl_cert",
    "ssl-key": "ssl_key",
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", "\\": "\\", '"': '"', "'": "'"}
#: The largest option file read: option files are a few lines, and anything larger (a log, a
#: device) is a mistake that must not fill memory.
MAX_FILE_BYTES = 1024 * 1024
# Includes that include each other must not loop forever.
_MAX_INCLUDE_DEPTH = 10

Options = dict[str, "str | None"]


class OptionFileError(InvalidArgumentError):
    """An option file cannot be read or does not parse; the message names file and line."""


def default_files(
    environ: Mapping[str, str] | None = None, home: str | os.PathLike[str] | None = None
) -> list[Path]:
    """The files the ``mysql`` client reads when not given ``--defaults-file``, in order.

    :param environ: the environment (for ``MARIADB_HOME`` / ``MYSQL_HOME``); default
        :data:`os.environ`.
    :param home: the user's home directory; default ``~``.
    :returns: the paths, whether they exist or not.
    """
    env = os.environ if environ is None else environ
    files = [Path("/etc/my.cnf"), Path("/etc/mysql/my.cnf")]
    server_home = env.get("MARIADB_HOME") or env.get("MYSQL_HOME")
    if server_home:
        files.append(Path(server_home) / "my.cnf")
    user_home = Path(home) if home is not None else Path.home()
    files.append(user_home / ".my.cnf")
    return files


def read_files(
    files: Sequence[str | os.PathLike[str]],
    *,
    required: Sequence[str | os.PathLike[str]] = (),
    groups: Sequence[str] = CLIENT_GROUPS,
) -> Options:
    """Read option files and return the client options they set.

    :param files: the files, in order; missing ones are skipped unless listed in ``required``.
    :param required: files that must exist (those the user named, such as ``--defaults-file``).
    :param groups: the groups to read.
    :returns: option name (``-`` form, e.g. ``"ssl-ca"``) to value; :data:`PROMPT` for a
        ``password`` without a value. Only the options in ``_KNOWN`` are returned.
    :raises OptionFileError: for a required file that is missing or unreadable, a file that is
        not UTF-8, a line that does not parse, or a bad value.
    """
    must_exist = {os.fspath(path) for path in required}
    options: Options = {}
    for path in files:
        _read_file(Path(path), os.fspath(path) in must_exist, groups, options, 0)
    return options


def parse_text(
    text: str, *, source: str = "<text>", groups: Sequence[str] = CLIENT_GROUPS
) -> Options:
    """Parse option-file text; ``!include`` lines are resolved relative to the current directory.

    :param text: the content of an option file.
    :param source: the name used in error messages.
    :param groups: the groups to read.
    :returns: as :func:`read_files`.
    :raises OptionFileError: as :func:`read_files`.
    """
    options: Options = {}
    _parse(text, Path(source), groups, options, 0)
    return options


def connect_options(options: Mapping[str, str | None]) -> dict[str, Any]:
    """Turn option-file options into driver-neutral ``connect()`` keyword arguments.

    :param options: as returned by :func:`read_files`.
    :returns: e.g. ``{"host": "db", "port": 3306, "unix_socket": "/run/mysqld/mysqld.sock"}``;
        ``password`` is :data:`PROMPT` when the file asks for a prompt.
    :raises OptionFileError: for a port that is not a number from 1 to 65535.
    """
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        keyword = _KNOWN.get(name)
        if keyword is None:
            continue
        if keyword == "port" and value is not None:
            kwargs[keyword] = parse_port(value)
        else:
            kwargs[keyword] = value
    return kwargs


def unread_tls_options(options: Mapping[str, str | None]) -> list[str]:
    """The TLS options among ``options`` that :func:`connect_options` does not use.

    Ignoring them silently would weaken what the file asks for (``ssl-verify-server-cert``,
    ``ssl-capath``, ``tls-version``...), so the command line refuses them unless told the TLS
    to use.

    :param options: as returned by :func:`read_files`.
    :returns: their names, sorted.
    """
    return sorted(name for name in options if name not in _KNOWN and _is_tls(name))


def _is_tls(name: str) -> bool:
    """Whether an option is about TLS: ``ssl``, ``ssl-capath``, ``skip-ssl``, ``tls-version``..."""
    return bool({"ssl", "tls"} & set(name.split("-")))


def parse_port(value: str) -> int:
    """:returns: ``value`` as a TCP port number.

    :raises OptionFileError: unless it is a number from 1 to 65535.
    """
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise OptionFileError(f"port must be a number from 1 to 65535, not {value!r}")
    return port


def _read_file(
    path: Path, required: bool, groups: Sequence[str], options: Options, depth: int
) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        if required:
            raise OptionFileError(f"option file {path} does not exist") from None
        return
    except OSError as exc:
        raise OptionFileError(f"cannot read option file {path}: {exc.strerror}") from None
    if stat.S_ISREG(info.st_mode) and info.st_mode & stat.S_IWOTH:
        if required:
            # Never fall back to other settings (maybe another server) for a named file.
            raise OptionFileError(f"option file {path} is world-writable: chmod o-w it")
        logger.warning("ignoring world-writable option file %s", path)
        return
    try:
        text = _read_limited(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OptionFileError(f"option file {path} is not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        if not required and isinstance(exc, PermissionError):
            # A system-wide file this user may not read is the administrator's business.
            logger.debug("cannot read option file %s: %s", path, exc.strerror)
            return
        raise OptionFileError(f"cannot read option file {path}: {exc.strerror}") from None
    logger.debug("reading option file %s", path)
    _parse(text, path, groups, options, depth)


def _read_limited(path: Path) -> bytes:
    """Read an option file that is a regular file of at most :data:`MAX_FILE_BYTES`.

    Opened without blocking and checked on the open descriptor, so that a FIFO (which would
    wait forever for a writer) or a device such as ``/dev/zero`` (endless) is refused, also
    when the path is swapped between a check and the read.

    :raises OptionFileError: for anything else than such a file.
    :raises OSError: when it cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OptionFileError(f"option file {path} is not a regular file")
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OptionFileError(
            f"option file {path} is larger than {MAX_FILE_BYTES // 1024} KiB; "
            "an option file is a few lines"
        )
    return data


def _parse(text: str, path: Path, groups: Sequence[str], options: Options, depth: int) -> None:
    wanted = {group.lower() for group in groups}
    group: str | None = None
    for number, raw_line in enumerate(text.splitlines(), 1):
        where = f"{path}, line {number}"
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "!":
            _directive(line, where, path, groups, options, depth)
            continue
        if line[0] == "[":
            end = line.find("]")
            if end < 0:
                raise OptionFileError(f"{where}: a group name must end with ']'")
            group = line[1:end].strip().lower()
            continue
        if group is None:
            raise OptionFileError(f"{where}: an option must come after a [group] line")
        if group not in wanted:
            continue
        name, value = _option(line, where)
        if name in _KNOWN:
            if value is PROMPT and name != "password":
                raise OptionFileError(f"{where}: option {name!r} needs a value")
            if name == "port" and value is not None:
                try:
                    parse_port(value)
                except OptionFileError as exc:
                    raise OptionFileError(f"{where}: {exc}") from None
            options[name] = value
        elif _is_tls(name):
            options[name] = value  # kept to be refused: see unread_tls_options()
        else:
            logger.debug("%s: option %r is not used", where, name)


def _directive(
    line: str, where: str, path: Path, groups: Sequence[str], options: Options, depth: int
) -> None:
    for target, required in _included(line, where, path, depth):
        _read_file(target, required, groups, options, depth + 1)


def _included(line: str, where: str, path: Path, depth: int) -> list[tuple[Path, bool]]:
    """The files an ``!include`` or ``!includedir`` line names, each with whether it must exist.

    :raises OptionFileError: for another ``!`` line, or includes nested too deep.
    """
    word, _, argument = line.partition(" ")
    argument = argument.strip()
    if word not in ("!include", "!includedir") or not argument:
        raise OptionFileError(f"{where}: expected '!include FILE' or '!includedir DIR'")
    if depth >= _MAX_INCLUDE_DEPTH:
        raise OptionFileError(f"{where}: includes nested more than {_MAX_INCLUDE_DEPTH} deep")
    target = path.parent / argument  # an absolute argument replaces the directory
    if word == "!include":
        return [(target, True)]
    try:
        names = sorted(entry.name for entry in os.scandir(target) if entry.name.endswith(".cnf"))
    except OSError as exc:
        # As the mysql client does: a missing include directory is not an error.
        logger.debug("%s: cannot list %s: %s", where, target, exc.strerror)
        return []
    return [(target / name, False) for name in names]


def check_driver_file(path: str | os.PathLike[str]) -> None:
    """Refuse an option file that a driver would read forever, before the driver reads it.

    The drivers read ``read_default_file`` (mysql-connector: ``option_files``) themselves,
    with a plain ``open()`` and ``read()``: a FIFO waits for a writer forever, ``/dev/zero``
    fills memory. The file, and every file it includes, must be a regular file of at most
    :data:`MAX_FILE_BYTES`, and includes may nest :data:`_MAX_INCLUDE_DEPTH` deep. Nothing
    else is judged: a file that is missing, unreadable or does not parse is the driver's to
    report, as it always was.

    :param path: the file, ``~`` expanded as the drivers do.
    :raises OptionFileError: for a file that is not regular or too large, or includes nested
        too deep.
    """
    _check_driver_file(Path(os.path.expanduser(os.fspath(path))), 0)


def _check_driver_file(path: Path, depth: int) -> None:
    try:
        text = _read_limited(path).decode("utf-8", errors="replace")
    except OSError:
        return  # missing or unreadable: the driver says so
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line.startswith("!"):
            continue
        try:
            targets = _included(line, f"{path}, line {number}", path, depth)
        except OptionFileError:
            if depth >= _MAX_INCLUDE_DEPTH:
                raise
            continue  # a line the driver may read its own way
        for target, _required in targets:
            _check_driver_file(target, depth + 1)


def _option(line: str, where: str) -> tuple[str, str | None]:
    """Split an option line into its normalised name and its decoded value."""
    line = _strip_comment(line)
    name, equals, value = line.partition("=")
    name = name.strip().lower().replace("_", "-")
    if name.startswith("loose-"):
        name = name[len("loose-") :]
    if not name:
        raise OptionFileError(f"{where}: an option name is missing before '='")
    if not equals:
        return name, PROMPT
    value = value.strip()
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    return name, _unescape(value)


def _strip_comment(line: str) -> str:
    """Cut a line at the first ``#`` that is outside quotes."""
    quote = ""
    escaped = False
    for index, char in enumerate(line):
        if char in "'\"" and not escaped:
            if not quote:
                quote = char
            elif char == quote:
                quote = ""
        if char == "#" and not quote:
            return line[:index].rstrip()
        # A backslash protects the next character only inside quotes, as in the mysql client.
        escaped = bool(quote) and char == "\\" and not escaped
    return line


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(range(len(value)))
    for index in chars:
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            following = value[index + 1]
            # An unknown escape keeps its backslash, so Windows-style paths survive.
            out.append(_ESCAPES.get(following, "\\" + following))
            next(chars)
            continue
        out.append(char)
    return "".join(out)
