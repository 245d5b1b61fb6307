"""How ``pymysqllock run`` supervises its command: hold the lock, pass signals on, stop on loss.

The command line module decides *what* to run; this module holds the part that must get
POSIX process handling right: signals are blocked and taken synchronously with
``sigtimedwait`` so that the lock wait can be cancelled, the command is started with
``posix_spawnp`` in a process group of its own (given the terminal when we had it) without
our own descriptors, every signal that would end pymysqllock is passed on to that group
instead, and a lost lock or a shutdown ends the whole group with SIGTERM, then SIGKILL: no
process of the job runs on without the lock. Kept apart from the argument parsing and the other
sub-commands because it is the one piece that needs threads, signals and child processes,
and reads best on its own.

The exit statuses that only ``run`` produces are defined here; the command line re-exports
them. Messages for the user go through the ``error`` callable that the command line passes
in, so this module never imports the command line module (which imports this one).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .cliconnect import URL_ENV
from .lock import Lock
from .locker import Locker
from .log import INFO, logger
from .timeouts import FOREVER

__all__ = [
    "CONNECTION_ID_ENV",
    "EXIT_CANNOT_EXECUTE",
    "EXIT_LOST",
    "EXIT_NOT_FOUND",
    "EXIT_SIGNAL_BASE",
    "LOCK_NAME_ENV",
    "Runner",
    "Signals",
    "inheritable_fds",
    "redact_url",
]

#: Set for the command of ``run``: the lock name, and the id of the session that holds it.
LOCK_NAME_ENV = "PYMYSQLLOCK_LOCK_NAME"
CONNECTION_ID_ENV = "PYMYSQLLOCK_CONNECTION_ID"

# The statuses of "run" itself. EXIT_LOST is a sysexits.h number, which commands rarely use
# for themselves, so that "run" can pass the command's status through and still be told apart.
#: run: the lock was lost while the command ran; the command was stopped.
EXIT_LOST = 75
#: run: the command cannot be executed / was not found (as a shell reports them).
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
#: A death by signal N is reported as 128 + N, as a shell does.
EXIT_SIGNAL_BASE = 128


def _signals(*names: str) -> frozenset[int]:
    # getattr: the command line imports this module for every command, and list, status and
    # release also work where some signals do not exist (Windows).
    return frozenset(getattr(signal, name) for name in names if hasattr(signal, name))


# Signals that ask the job to end: while waiting for the lock they end the wait, and once the
# command has ended, its group is made to end too.
_SHUTDOWN = _signals("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
# Every other signal whose default action would end pymysqllock and leave the command running
# without the lock. They are passed on to the command's group (which may handle them) instead.
# The fault signals (SIGSEGV, SIGBUS, ...) are left alone: blocking them is undefined.
_FORWARDED = (
    _SHUTDOWN
    | _signals(
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGVTALRM",
        "SIGPROF",
        "SIGXCPU",
        "SIGIO",
        "SIGPWR",
        "SIGSTKFLT",
    )
    | frozenset(range(signal.SIGRTMIN, signal.SIGRTMAX + 1) if hasattr(signal, "SIGRTMIN") else ())
)
# Signals that Python ignores at startup; the command must start with the default action.
_RESET_IN_CHILD = _signals("SIGPIPE", "SIGXFSZ")
# Longest sleep of the supervising loop: only a safety net, every event also wakes it.
_MAX_SLEEP = 1.0
# How often the group is looked at once the command itself has ended (its members are not
# our children, so nothing wakes us when they end).
_GROUP_POLL = 0.05
# Seconds to wait for the acquiring thread after a cancel: on a hung server it may still be
# opening a connection, which must not delay the exit.
_JOIN_AFTER_CANCEL = 0.3
#: Query options of a URL that carry a secret, removed with its password.
_SECRET_QUERY_WORDS = ("pass", "pwd", "secret")


def redact_url(url: str) -> str:
    """``url`` without its password (and any query option naming one), for a child's environment.

    :returns: the URL unchanged when it has no password, else the same URL without it.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}@{hostport}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not any(word in key.lower() for word in _SECRET_QUERY_WORDS)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


def inheritable_fds() -> set[int]:
    """The open descriptors above 2 that a command would inherit."""
    directory = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    found = set()
    for entry in os.listdir(directory):
        fd = int(entry)
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            if fd > 2 and os.get_inheritable(fd):
                found.add(fd)
    return found


class Signals:
    """The supervising thread's view of signals: blocked, then taken with ``sigtimedwait``.

    Taking signals synchronously tells who sent them (siginfo), and lets other threads wake the
    supervisor by sending it ``SIGCHLD``. Every thread started inside the ``with`` block
    inherits the blocked mask, so no signal runs a handler or a default action there.
    """

    WATCHED = _FORWARDED | _signals("SIGCHLD")
    # Blocked but never waited for: with SIGTTOU blocked, handing the terminal back to our own
    # process group from the background works instead of stopping us.
    BLOCKED = WATCHED | _signals("SIGTTOU")

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        self._saved: set[int] | None = None

    def __enter__(self) -> Signals:
        self._saved = signal.pthread_sigmask(signal.SIG_BLOCK, self.BLOCKED)
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


def _foreground_terminal() -> int | None:
    """The descriptor of our controlling terminal when our process group is its foreground."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
        except OSError:
            continue
    return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return EXIT_SIGNAL_BASE - code if code < 0 else code


class Runner:
    """``pymysqllock run``: hold a lock while a command runs, and stop it if the lock is lost.

    :param args: the parsed ``run`` command line (name, waiting, refresh, grace, command).
    :param signals: the blocked signals, entered by the caller before any thread starts.
    :param inherited: the descriptors we inherited, which the command inherits too.
    :param error: prints a message for the user in the command line's own format.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        signals: Signals,
        inherited: set[int],
        error: Callable[[str], None],
    ) -> None:
        self.args = args
        self.signals = signals
        self.inherited = inherited
        self.error = error
        self.lost = threading.Event()
        #: The shutdown signal received while the command ran, if any.
        self.shutdown: int | None = None
        #: Whether the command ran longer than ``--max-runtime`` and was stopped.
        self.overran = False

    def _on_lost(self, lock: Lock) -> None:
        self.lost.set()
        self.signals.wake()

    def run(self, locker: Locker) -> int:
        """Wait for the lock, run the command while holding it, and release it.

        :param locker: the connected locker, which the caller closes.
        :returns: the exit status of ``pymysqllock run``: the command's own, or one of ours.
        """
        args = self.args
        lock = locker.lock(args.name, refresh_interval_secs=args.refresh, on_lost=self._on_lost)
        timeout = 0 if args.nonblock else (FOREVER if args.wait is None else args.wait)
        acquired, signum = self._acquire(lock, timeout)
        if signum is not None:
            logger.info("got signal %d while waiting for lock %r", signum, args.name)
            return EXIT_SIGNAL_BASE + signum
        if not acquired:
            if logger.isEnabledFor(INFO):
                holder = locker.holder(args.name)
                logger.info("lock %r is busy (held by connection %s)", args.name, holder)
            return int(args.conflict_exit_code)
        acquired_at = time.monotonic()
        try:
            pid = self._spawn(lock)
        except OSError as exc:
            self.error(f"cannot run {args.command[0]!r}: {exc.strerror}")
            return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
        terminal = self._give_terminal(pid)
        try:
            status, stopped = self._supervise(pid)
        finally:
            self._take_terminal_back(terminal)
        hold = getattr(args, "hold_at_least", None) or 0.0
        if hold and lock.locked() and self.shutdown is None:
            self._hold(acquired_at + hold)
        if self.shutdown is not None and lock.locked():
            # We are going down on a signal: close the lock's connection (the server frees
            # the lock) rather than wait for a server that may hang.
            lock._drop()
        elif lock.locked():
            lock.release()  # reports a loss found at release through on_lost
        if self.lost.is_set() or lock.lost:
            if stopped:
                self.error(
                    f"lock {args.name!r} was lost while the command ran; the command (pid "
                    f"{pid}) was stopped"
                )
            else:
                self.error(
                    f"lock {args.name!r} was lost before the command ended; its work may have "
                    "overlapped with another holder's"
                )
            return EXIT_LOST
        if self.overran:
            self.error(
                f"the command ran longer than --max-runtime {args.max_runtime:g} s and was "
                f"stopped (exit status {status})"
            )
        logger.info("command exited with status %d; lock %r released", status, args.name)
        return status

    def _hold(self, until: float) -> None:
        """Keep the lock until ``until`` (``--hold-at-least``), so that a late trigger skips.

        Ends early on a signal (the job is over: the signal only cuts the hold short) or a
        lost lock; the caller then releases.
        """
        logger.info(
            "command ended; keeping lock %r for %.1f s more (--hold-at-least)",
            self.args.name,
            max(0.0, until - time.monotonic()),
        )
        while not self.lost.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return
            info = self.signals.wait(min(left, _MAX_SLEEP))
            if info is not None and info.si_signo in _FORWARDED:
                logger.info("got signal %d: ending the hold early", info.si_signo)
                return

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
                # cancel() returns within about a second even when the server hangs.
                lock.cancel()
                thread.join(_JOIN_AFTER_CANCEL)
                if lock.locked():  # granted before the cancel: let go without a round trip
                    lock._drop()
                return False, int(info.si_signo)
        thread.join()
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return bool(result), None

    def _spawn(self, lock: Lock) -> int:
        command = self.args.command
        env = dict(os.environ)
        if URL_ENV in env and not getattr(self.args, "keep_url_password", False):
            # The command needs no password of ours; one in its environment would be
            # readable by anyone who can read that process's environment, for its lifetime.
            env[URL_ENV] = redact_url(env[URL_ENV])
        env[LOCK_NAME_ENV] = self.args.name
        env[CONNECTION_ID_ENV] = str(lock.connection_id)
        # Our own connections must not live on in the command: if they did, the server would
        # keep the lock when we die. Descriptors we inherited are passed on, as flock does.
        close = [(os.POSIX_SPAWN_CLOSE, fd) for fd in sorted(inheritable_fds() - self.inherited)]
        pid = os.posix_spawnp(
            command[0],
            command,
            env,
            file_actions=close,
            setpgroup=0,  # a group of its own: the whole job can be signalled at once
            setsigmask=set(),
            setsigdef=_RESET_IN_CHILD,
        )
        logger.info("lock %r acquired; started %s (pid %d)", self.args.name, command[0], pid)
        return pid

    def _give_terminal(self, pid: int) -> int | None:
        """Make the command's group the terminal's foreground, if ours was.

        Ctrl-C and the other terminal signals then reach the command's group (once) as they
        would without pymysqllock, and the command may read the terminal.

        :returns: the terminal's descriptor, to take it back later; ``None`` if not ours.
        """
        fd = _foreground_terminal()
        if fd is None:
            return None
        try:
            os.tcsetpgrp(fd, pid)
        except OSError:
            return None
        # A command that read the terminal before it was its own was stopped (SIGTTIN).
        _kill(-pid, signal.SIGCONT)
        return fd

    @staticmethod
    def _take_terminal_back(fd: int | None) -> None:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(fd, os.getpgrp())  # SIGTTOU is blocked: this cannot stop us

    def _supervise(self, pid: int) -> tuple[int, bool]:
        """Forward signals to the command's group, stop it on loss, and wait for it.

        The command leads a process group of its own (``pid`` is also the group id). A lost
        lock sends the group SIGTERM and, ``--grace`` seconds later, SIGKILL; so does the end
        of the command after a shutdown signal, for what it left running in its group.

        :returns: the command's exit status (128 + N for a death by signal N), and whether we
            stopped it because the lock was lost.
        """
        grace = float(self.args.grace)
        max_runtime = getattr(self.args, "max_runtime", None)
        overrun_at = math.inf if max_runtime is None else time.monotonic() + max_runtime
        kill_at: float | None = None
        killed = False
        status: int | None = None
        while True:
            if status is None:
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = _exit_status(wait_status)
            now = time.monotonic()
            if status is not None:
                # The command ended; after a loss or a shutdown nothing of its group may run
                # on without the lock.
                if (kill_at is None and self.shutdown is None and not self.lost.is_set()) or (
                    not _group_alive(pid)
                ):
                    return status, kill_at is not None and not self.overran
                if killed:
                    return status, True
            if status is None and kill_at is None and now >= overrun_at:
                self.overran = True
                logger.warning("the command ran longer than --max-runtime: stopping it")
            if (
                self.lost.is_set()
                or self.overran
                or (status is not None and self.shutdown is not None)
            ) and kill_at is None:
                logger.info("lock %r: sending SIGTERM to process group %d", self.args.name, pid)
                _kill(-pid, signal.SIGTERM)
                kill_at = now + grace
            if kill_at is not None and not killed and now >= kill_at:
                logger.warning(
                    "process group %d outlived the %.1fs grace period: SIGKILL", pid, grace
                )
                _kill(-pid, signal.SIGKILL)
                killed = True
                continue
            sleep = _MAX_SLEEP if kill_at is None or killed else min(_MAX_SLEEP, kill_at - now)
            if kill_at is None:
                sleep = min(sleep, max(0.0, overrun_at - now))
            if status is not None:
                sleep = min(sleep, _GROUP_POLL)
            info = self.signals.wait(sleep)
            if info is not None and info.si_signo in _FORWARDED:
                if info.si_signo in _SHUTDOWN:
                    self.shutdown = int(info.si_signo)
                logger.info("forwarding signal %d to process group %d", info.si_signo, pid)
                _kill(-pid, info.si_signo)


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
