"""A throwaway server's datadir: initialising one, the per-process templates, reading logs."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import cleanup
from .binaries import find_install_db, user_args
from .errors import ServerStartError

__all__ = ["MARIADB_LOG_FILE_SIZE", "initialise", "tail", "template_for"]

logger = logging.getLogger("PyMySQLLock")

# Redo log size for MariaDB; the 96 MiB default makes every copied datadir 5 times larger.
MARIADB_LOG_FILE_SIZE = "8M"


def tail(path: Path, lines: int, offset: int = 0) -> str:
    """The last *lines* lines of a log file from byte *offset* on ("" when unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


def initialise(binary: str, flavor: str, datadir: Path, files_dir: Path) -> None:
    """Create the system tables in the (not yet existing) directory *datadir*.

    :param binary: absolute path of the server binary.
    :param flavor: ``"mariadb"`` or ``"mysql"`` (they initialise differently).
    :param datadir: the datadir to create; its parent gets the ``init.log``.
    :param files_dir: the server's ``--secure-file-priv`` directory (MySQL checks it).
    :raises ServerStartError: when the initialisation fails; the message ends with its log.
    """
    log = datadir.parent / "init.log"
    env = dict(os.environ)
    if flavor == "mariadb":
        script, basedir = find_install_db(binary)
        cmd = [
            script,
            "--no-defaults",
            f"--datadir={datadir}",
            # Without this the script also creates root@<hostname>, which the server then
            # warns about in --skip-name-resolve mode.
            "--skip-name-resolve",
            f"--innodb-log-file-size={MARIADB_LOG_FILE_SIZE}",
            *user_args(),
        ]
        # Pass the newer options only to scripts that know them (an unknown option would
        # be handed on to the server, which refuses it). The script is a shell script.
        try:
            known = Path(script).read_text(errors="replace")
        except OSError:
            known = ""
        if "auth-root-authentication-method" in known:
            # 10.4+ default to unix_socket auth for root; the tests connect over TCP.
            cmd.append("--auth-root-authentication-method=normal")
        if "skip-test-db" in known:
            cmd.append("--skip-test-db")
        if basedir is not None:
            cmd.append(f"--basedir={basedir}")
        # Make the script bootstrap with our binary, not the one it would guess.
        env["MYSQLD_BOOTSTRAP"] = binary
    else:
        cmd = [
            binary,
            "--no-defaults",  # must be the first option
            "--initialize-insecure",  # root@localhost with an empty password
            f"--datadir={datadir}",
            f"--secure-file-priv={files_dir}",
            "--skip-log-bin",
            *user_args(),
        ]
    logger.debug("initialising datadir: %s", " ".join(cmd))
    began = time.monotonic()
    with log.open("wb") as out:
        try:
            result = subprocess.run(  # noqa: S603 - our own binary and arguments
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerStartError(f"initialising {datadir} failed: {exc}") from exc
    if result.returncode != 0:
        raise ServerStartError(
            f"initialising {datadir} failed with exit code {result.returncode}:\n{tail(log, 30)}"
        )
    logger.debug("initialised datadir in %.2f s", time.monotonic() - began)


# Initialising a datadir takes ~0.5 s (MariaDB) to several seconds (MySQL); copying an already
# initialised one takes a few tens of milliseconds. Each process initialises once per binary and
# copies that template for every server it starts.
_template_lock = threading.Lock()
_templates: dict[tuple[str, int], Path] = {}
_template_root: list[Path] = []  # at most one entry; a list so no ``global`` is needed
_template_watchdog: list[subprocess.Popen[bytes] | None] = []


def _remove_template_root(owner_pid: int) -> None:
    # A forked child inherits this atexit hook; only the process that made the templates
    # removes them.
    if os.getpid() == owner_pid:
        for root in _template_root:
            shutil.rmtree(root, ignore_errors=True)
        for watchdog in _template_watchdog:
            cleanup.stop_watchdog(watchdog)


def template_for(binary: str, init: Callable[[Path], None]) -> Path:
    """The template datadir for *binary*, made by ``init(datadir)`` on first use.

    :param binary: server binary the template belongs to.
    :param init: callable that initialises an empty datadir at the given path.
    :returns: the template datadir.
    """
    key = (binary, os.geteuid())
    with _template_lock:
        template = _templates.get(key)
        if template is not None and template.is_dir():
            return template
        if not _template_root:
            root = Path(tempfile.mkdtemp(prefix="pymysqllock-templates-"))
            (root / cleanup.OWNER_FILE).write_text(str(os.getpid()))
            _template_root.append(root)
            _template_watchdog.append(cleanup.start_watchdog(root))
            atexit.register(_remove_template_root, os.getpid())
        template = _template_root[0] / f"t{len(_templates)}" / "data"
        # A failed earlier attempt may have left a partial datadir behind.
        shutil.rmtree(template, ignore_errors=True)
        template.parent.mkdir(parents=True, exist_ok=True)
        init(template)
        _templates[key] = template
        return template
