"""Cleaning up after processes that die with a throwaway server still running.

Each server directory records its owner's pid; the next process reaps directories whose owner
is gone (:func:`reap_orphans`), and a watchdog process per directory kills the server and
removes the directory as soon as the owner ends in any way (:func:`start_watchdog`). The
``/proc`` readers here identify processes without ever hitting a recycled pid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

__all__ = [
    "OWNER_FILE",
    "cmdline",
    "pid_alive",
    "process_state",
    "reap_orphans",
    "start_watchdog",
    "stop_watchdog",
]

logger = logging.getLogger("PyMySQLLock")

# Each directory records the pid of the process that made it. When that process died without
# running its atexit hooks (SIGKILL, os._exit from a test-timeout handler), its server keeps
# running and its directory stays; the next process reaps both.
OWNER_FILE = "owner.pid"
_reaped_parents: set[str] = set()


def pid_alive(pid: int) -> bool:
    """Whether a process *pid* exists (someone else's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def cmdline(pid: int) -> list[str] | None:
    """A process's arguments from ``/proc`` (``None`` when unavailable or gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def reap_orphans(parent: Path) -> None:
    """Kill the servers and remove the directories left in *parent* by dead processes.

    Only directories named ``pymysqllock-*``, owned by this user, with an owner file naming a
    process that no longer exists are touched; a server is killed only when its command line
    shows it runs on that very directory's datadir.

    :param parent: the directory the temporary directories are made in.
    """
    key = str(parent)
    if key in _reaped_parents:
        return
    _reaped_parents.add(key)
    try:
        entries = list(parent.glob("pymysqllock-*"))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_symlink() or entry.stat().st_uid != os.geteuid():
                continue
            owner = int((entry / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if pid_alive(owner):
            continue
        try:
            server_pid: int | None = int((entry / "mysqld.pid").read_text().strip())
        except (OSError, ValueError):
            server_pid = None
        if server_pid is not None and pid_alive(server_pid):
            args = cmdline(server_pid)
            if args is None:
                continue  # cannot tell whether it is our server: leave everything alone
            if f"--datadir={entry / 'data'}" in args:
                logger.info("killing orphaned server pid %d in %s", server_pid, entry)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server_pid, signal.SIGKILL)
        logger.info("removing orphaned directory %s", entry)
        shutil.rmtree(entry, ignore_errors=True)


# The watchdog: a tiny process per server that blocks reading a pipe whose only writer is the
# process owning the server. When that process ends in any way, atexit or not (SIGTERM,
# SIGKILL, os._exit), the read returns and the watchdog kills the server and removes its
# directory. The server is found through its pid file and killed only if its command line
# names this directory's datadir, so a recycled pid is never hit. After a normal close() there
# is nothing left for it to do.
_WATCHDOG_CODE = """
import os, shutil, signal, sys
base = sys.argv[1]
try:
    sys.stdin.buffer.read()
except BaseException:
    pass
try:
    with open(os.path.join(base, "mysqld.pid")) as f:
        pid = int(f.read().strip())
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        args = f.read().split(b"\\0")
    if ("--datadir=" + os.path.join(base, "data")).encode() in args:
        os.kill(pid, signal.SIGKILL)
except (OSError, ValueError):
    pass
shutil.rmtree(base, ignore_errors=True)
"""


def start_watchdog(directory: Path) -> subprocess.Popen[bytes] | None:
    """Start a watchdog that cleans *directory* up when this process ends.

    :param directory: a server's (or the templates') temporary directory.
    :returns: the watchdog process, or ``None`` when it could not be started.
    """
    if not sys.executable:
        return None
    try:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and code
            # -I -S: no site, no environment: starts in ~10 ms and imports nothing of ours.
            [sys.executable, "-I", "-S", "-c", _WATCHDOG_CODE, str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Like the server: a Ctrl-C in the terminal is not meant for it.
            start_new_session=True,
        )
    except OSError as exc:  # only a convenience: the orphan reaper is the fallback
        logger.warning("cannot start a watchdog for %s: %s", directory, exc)
        return None


def stop_watchdog(watchdog: subprocess.Popen[bytes] | None) -> None:
    """Let a watchdog finish, after its directory was cleaned up the normal way."""
    if watchdog is None:
        return
    if watchdog.stdin is not None:
        watchdog.stdin.close()  # EOF: it finds no server and an already removed directory
    try:
        watchdog.wait(5.0)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def process_state(pid: int) -> str | None:
    """The one-letter state of a process from ``/proc`` (``None`` when unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] if fields else None
