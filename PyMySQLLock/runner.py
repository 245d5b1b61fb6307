"""How ``pymysqllock run`` supervises its command: hold the lock, pass signals on, stop on loss.

The command line module decides *what* to run; this module holds the part that must get
POSIX process handling right: signals are blocked and taken synchronously with
``sigtimedwait`` so that the lock wait can be cancelled and the sender of a signal is known,
the command is started with ``posix_spawnp`` without our own descriptors, and a lost lock
ends it with SIGTERM, then SIGKILL. Kept apart from the argument parsing and the other
sub-commands because it is the one piece that needs threads, signals and child processes,
and reads best on its own.

The exit statuses that only ``run`` produces are defined here; the command line re-exports
them. Messages for the user go through the ``error`` callable that the command line passes
in, so this module never imports the command line module (which imports this one).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from .lock import Lock
from .locker import Locker
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
]

logger = logging.getLogger("PyMySQLLock")

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


# The signals "run" passes on to its command.
_FORWARDED = _signals("SIGINT", "SIGTERM", "SIGHUP")
# Signals that Python ignores at startup; the command must start with the default action.
_RESET_IN_CHILD = _signals("SIGPIPE", "SIGXFSZ")
# siginfo.si_code of a signal sent by the kernel, e.g. by the terminal for Ctrl-C (Linux).
_SI_KERNEL = 0x80
# Longest sleep of the supervising loop: only a safety net, every event also wakes it.
_MAX_SLEEP = 1.0


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

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        self._saved: set[int] | None = None

    def __enter__(self) -> Signals:
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
            if logger.isEnabledFor(logging.INFO):
                holder = locker.holder(args.name)
                logger.info("lock %r is busy (held by connection %s)", args.name, holder)
            return int(args.conflict_exit_code)
        acquired_at = time.monotonic()
        try:
            pid = self._spawn(lock)
        except OSError as exc:
            self.error(f"cannot run {args.command[0]!r}: {exc.strerror}")
            return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_EXECUTE
        status, stopped = self._supervise(pid)
        hold = getattr(args, "hold_at_least", None) or 0.0
        if hold and lock.locked():
            self._hold(acquired_at + hold)
        if lock.locked():
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
        close = [(os.POSIX_SPAWN_CLOSE, fd) for fd in sorted(inheritable_fds() - self.inherited)]
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
