"""Finding a MySQL/MariaDB server binary and telling which server and version it is."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import ServerStartError

__all__ = [
    "BINARY_NAMES",
    "INSTALL_DB_NAMES",
    "SEARCH_DIRS",
    "find_install_db",
    "find_server_binary",
    "probe_binary",
    "user_args",
    "version_tuple",
]

#: Directories searched after ``PATH`` for the server binary.
SEARCH_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin")
#: Server binary names, preferred first.
BINARY_NAMES: tuple[str, ...] = ("mariadbd", "mysqld")
#: MariaDB's datadir initialisation scripts, preferred first (the second is the pre-10.4 name).
INSTALL_DB_NAMES = ("mariadb-install-db", "mysql_install_db")


def find_server_binary(binary: str | os.PathLike[str] | None = None) -> str:
    """Locate the server binary.

    :param binary: an explicit path or command name; ``None`` searches ``mariadbd`` then
        ``mysqld`` on ``PATH`` and in ``SEARCH_DIRS`` of this module.
    :returns: the absolute path of an executable server binary.
    :raises ServerStartError: when no usable binary is found.
    """
    if binary is not None:
        name = os.fspath(binary)
        found = shutil.which(name) if os.sep not in name else None
        path = found or name
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
        raise ServerStartError(f"server binary {name!r} not found or not executable")
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return os.path.abspath(found)
        for directory in SEARCH_DIRS:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    raise ServerStartError(
        "no MySQL/MariaDB server binary found: looked for "
        f"{' or '.join(BINARY_NAMES)} on PATH and in {', '.join(SEARCH_DIRS)}; "
        "install mariadb-server (or MySQL) or pass binary="
    )


@functools.cache
def probe_binary(binary: str) -> tuple[str, str]:
    """Ask the binary for its version; cached because every server of a run asks the same.

    :param binary: absolute path of the server binary.
    :returns: ``(flavor, version)`` where flavor is ``"mariadb"`` or ``"mysql"``.
    :raises ServerStartError: when the binary does not run or prints no version.
    """
    try:
        out = subprocess.run(  # noqa: S603 - the binary was located by find_server_binary
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerStartError(f"cannot run {binary} --version: {exc}") from exc
    text = out.stdout + out.stderr
    match = re.search(r"\bVer\s+(\S+)", text)
    if out.returncode != 0 or match is None:
        raise ServerStartError(f"{binary} --version failed ({out.returncode}): {text.strip()}")
    flavor = "mariadb" if "mariadb" in text.lower() else "mysql"
    return flavor, match.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    """Turn ``"10.11.19-MariaDB-0+deb12u1"`` into ``(10, 11, 19)``."""
    match = re.match(r"(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def find_install_db(binary: str) -> tuple[str, str | None]:
    """Find MariaDB's install script that belongs to *binary*.

    :param binary: absolute path of ``mariadbd``.
    :returns: ``(script, basedir)``; basedir is ``None`` for the ``/usr`` layout the script
        assumes by default.
    :raises ServerStartError: when no script is found.
    """
    # Prefer the script of the same installation: <prefix>/sbin/mariadbd goes with
    # <prefix>/bin/mariadb-install-db, a tarball's <prefix>/bin/mariadbd with <prefix>/scripts/.
    prefix = Path(binary).resolve().parent.parent
    for name in INSTALL_DB_NAMES:
        for sub in ("bin", "scripts"):
            candidate = prefix / sub / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                basedir = None if str(prefix) == "/usr" else str(prefix)
                return str(candidate), basedir
    for name in INSTALL_DB_NAMES:
        found = shutil.which(name)
        if found:
            return found, None
    raise ServerStartError(
        f"{binary} is MariaDB but neither of {', '.join(INSTALL_DB_NAMES)} was found "
        "to initialise a datadir"
    )


def user_args() -> list[str]:
    """The ``--user`` option every run of the binary needs (none unless running as root).

    :returns: ``["--user=root"]`` as root, ``[]`` otherwise.
    """
    # mysqld refuses to run as root unless told to; as anyone else it needs no --user.
    return ["--user=root"] if os.geteuid() == 0 else []
