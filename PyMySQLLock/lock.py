"""A named lock held on a dedicated server session.

A :class:`Lock` is handed out by :meth:`PyMySQLLock.Locker.lock`. While held it owns one
connection, whose session holds the server's ``GET_LOCK``; the Locker's keepalive thread checks
that session every refresh interval and reports the lock lost as soon as it no longer holds it.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from types import TracebackType
from typing import Any, Callable, Protocol

from . import holding, progress
from .callbacks import Dispatcher
from .connection import Session, SessionLost, StatementFailed
from .errors import (
    AcquireCancelledError,
    LockAlreadyHeldError,
    LockConnectionError,
    LockError,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
)
from .lockargs import lock_arguments
from .log import DEBUG, INFO, logger
from .loss import LossCause, LossReason
from .pool import SessionPool
from .selfwait import Holders, self_wait_error
from .statements import (
    GET_LOCK,
    INTERRUPTED_CODES,
    NOT_STILL_HELD,
    RELEASE_LOCK,
    STILL_HELD,
    Acquire,
    Release,
    acquire_answer,
    acquire_failure,
    keeps_session,
    release_answer,
    still_held,
)
from .timeouts import (
    DEFAULT_REFRESH_INTERVAL,
    FOREVER,
    validate_interval,
    validate_timeout,
)

__all__ = ["Lock", "LockHost"]

_IDLE, _ACQUIRING, _HELD, _LOST = "idle", "acquiring", "held", "lost"
#: How often a MySQL wait shorter than a second retries; MySQL rounds fractional timeouts.
_POLL_SECONDS = 0.02
#: Keepalive checks in a row that a KILL QUERY may interrupt before the lock counts as lost.
_MAX_INTERRUPTED_CHECKS = 3
#: Seconds cancel() waits for a KILL QUERY to end the wait before it cuts the connection.
_CANCEL_PATIENCE = 0.5

OnLost = Callable[["Lock"], Any]


class LockHost(Protocol):
    """What a :class:`Lock` needs from the :class:`~PyMySQLLock.Locker` that made it.

    The Locker is one; naming the few things used here, rather than the Locker, keeps this
    module free of the Locker's (which imports it) and says what a Lock depends on:
    the sessions (:class:`~PyMySQLLock.pool.SessionPool`), the keepalive registration of held
    locks, and the thread that runs ``on_lost`` callbacks.
    """

    #: The prefix of every lock name, or ``None``.
    namespace: str | None
    #: Where the lock's sessions come from and go back to.
    _pool: SessionPool
    #: Runs ``on_lost`` for losses found by the keepalive.
    _callbacks: Dispatcher
    #: Server name -> (the Lock holding it, the thread that acquired it).
    _holders: Holders[Lock]

    def _lock_held(self, lock: Lock, interval: float) -> None:
        """Start watching a lock just acquired; :raises LockError: if the Locker refuses."""

    def _lock_released(self, lock: Lock) -> None:
        """Stop watching a lock (released, lost, or never granted)."""


#: This process's id, kept current by a fork hook: a Lock compares it with its owner's on every
#: acquire and release, and os.getpid() is a system call.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid  # noqa: PLW0603 - the one place that writes it
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_failure(exc: SessionLost | StatementFailed) -> LossReason:
    """Why a lock whose keepalive check raised *exc* counts as lost."""
    if isinstance(exc, StatementFailed):
        return LossReason.now(LossCause.REFUSED, f"the server refused the check: {exc}", exc.code)
    return LossReason.now(LossCause.CONNECTION_LOST, f"the connection failed: {exc}")


class _Probe:
    """A keepalive check sent on a lock's session, waiting for its answer.

    It holds the session's mutex from the moment the check is sent until the answer is read
    (:meth:`finish`) or given up (:meth:`expire`); :meth:`settle` lets go of it exactly once,
    whatever the driver raised or answered.
    """

    __slots__ = ("interval", "lock", "session")

    def __init__(self, lock: Lock, session: Session, interval: float) -> None:
        self.lock = lock
        self.session = session
        self.interval = interval

    def fileno(self) -> int | None:
        """:returns: the socket to wait on for the answer."""
        return self.session.fileno()

    def finish(self) -> float | None:
        """Read the answer; see :meth:`Lock._keepalive_start` for the result."""
        try:
            row = self.session.receive()
        except (SessionLost, StatementFailed) as exc:
            return self.settle(None, _check_failure(exc))
        except BaseException as exc:  # noqa: BLE001 - any failure proves nothing: a loss
            # A driver that broke on garbage (or was interrupted): the protocol state is
            # unknown, so the connection is never used again.
            self.session.broken = True
            return self.settle(
                None, LossReason.now(LossCause.CHECK_FAILED, f"the check failed: {exc!r}")
            )
        return self.settle(row, None)

    def expire(self, waited: float) -> None:
        """Give up waiting: a session that does not answer cannot prove it holds the lock."""
        self.session.broken = True
        self.settle(
            None,
            LossReason.now(
                LossCause.NO_ANSWER, f"the server did not answer the check within {waited:.1f} s"
            ),
        )

    def settle(self, row: tuple[Any, ...] | None, failure: LossReason | None) -> float | None:
        """Release the session's mutex and act on the check's outcome."""
        self.session.mutex.release()
        lock = self.lock
        try:
            held = failure is None and still_held(row)
        except Exception:  # noqa: BLE001 - garbage from the driver proves nothing
            held = False
        if held:
            if lock._interrupted_checks:
                lock._interrupted_checks = 0
            return self.interval
        if (
            failure is not None
            and failure.cause is LossCause.REFUSED
            and failure.server_code in INTERRUPTED_CODES
            and lock._interrupted_checks < _MAX_INTERRUPTED_CHECKS
        ):
            # A KILL QUERY (or a statement time limit) ended the check, not the session:
            # check again at once rather than free a lock the server still holds.
            lock._interrupted_checks += 1
            logger.info("keepalive check of lock %r was interrupted; checking again", lock.name)
            return 0.0
        lock._declare_lost(
            self.session,
            failure or LossReason.now(LossCause.NOT_HELD, f"{NOT_STILL_HELD} (answer {row!r})"),
            in_background=True,
        )
        return None


class Lock:
    """A named lock: mutual exclusion across every process that uses the same server and name.

    Create it with :meth:`PyMySQLLock.Locker.lock`. A ``Lock`` object is not re-entrant, and
    may be acquired again after it was released.

    :param locker: the Locker whose connections and keepalive the lock uses.
    :param name: the lock name (any non-empty :class:`str`; see :mod:`PyMySQLLock.names`).
    :param timeout: the default for :meth:`acquire` and the ``with`` block: ``-1`` waits
        forever, ``0`` tries once, a positive number waits that many seconds.
    :param refresh_interval_secs: the default seconds between two keepalive checks.
    :param on_lost: called as ``on_lost(lock)``, once, when a held lock is found lost;
        :attr:`lost_reason` says why.
    :raises InvalidArgumentTypeError: for a name that is not a :class:`str`, a non-number
        timeout or interval, or an ``on_lost`` that is not callable.
    :raises InvalidArgumentError: for an empty name or an out-of-range timeout or interval.

    .. versionchanged:: 1.0
       The constructor also takes ``timeout``, ``refresh_interval_secs`` and ``on_lost``;
       0.2.0's ``acquired``, ``conn``, ``release_event`` and ``refresh()`` are gone; a lock is
       a context manager.
    """

    def __init__(
        self,
        locker: LockHost,
        name: str,
        *,
        timeout: float = FOREVER,
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
        on_lost: OnLost | None = None,
    ) -> None:
        self._name, self._server_name, self._timeout, self._interval = lock_arguments(
            name, locker.namespace, timeout, refresh_interval_secs, on_lost
        )
        self._on_lost = on_lost
        self._locker = locker
        self._pool = locker._pool
        self._init_state()

    def _init_state(self) -> None:
        self._pid = _pid
        self._mutex = threading.Lock()
        self._state = _IDLE
        self._session: Session | None = None
        self._was_lost = False
        # Meaningful only while _was_lost is true; acquire() resets that flag alone.
        self._lost_reason: LossReason | None = None
        self._held_interval = self._interval
        # Set by cancel(); the session currently waiting, so cancel() knows what to KILL QUERY.
        self._cancel_requested = False
        self._waiting: Session | None = None
        self._acquire_done: threading.Event | None = None
        # When the wait began and when the lock was granted (monotonic), for the log.
        self._wait_began = 0.0
        self._acquired_at = 0.0
        # Keepalive checks in a row ended by a KILL QUERY (re-checked, up to a limit).
        self._interrupted_checks = 0

    def _forget_parent(self) -> None:
        """In a forked child, drop the parent's state: its session is not ours to use."""
        if self._pid != _pid:
            self._init_state()

    # -- read-only views ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name given to :meth:`~PyMySQLLock.Locker.lock`.

        .. versionchanged:: 1.0
           Read-only.
        """
        return self._name

    @property
    def server_name(self) -> str:
        """The name the server sees: namespaced, and hashed when too long (see :mod:`.names`).

        .. versionadded:: 1.0
        """
        return self._server_name

    @property
    def locker(self) -> Any:
        """The :class:`~PyMySQLLock.Locker` this lock belongs to.

        (Typed loosely so that this module need not import the module of the Locker, which
        imports it; a Lock itself uses only its :class:`~PyMySQLLock.lock.LockHost` side.)

        .. versionchanged:: 1.0
           Read-only.
        """
        return self._locker

    @property
    def lost(self) -> bool:
        """Whether the lock was held and then lost, since the last :meth:`acquire`.

        .. versionadded:: 1.0
        """
        self._forget_parent()
        return self._was_lost

    @property
    def lost_reason(self) -> LossReason | None:
        """Why and when the lock was lost, while :attr:`lost` is true; else ``None``.

        Set before ``on_lost`` is called, so the callback can read it from the lock it gets.

        .. versionadded:: 1.0
        """
        self._forget_parent()
        return self._lost_reason if self._was_lost else None

    @property
    def connection_id(self) -> int | None:
        """The server's id of the session holding the lock (``CONNECTION_ID()``), if held.

        .. versionadded:: 1.0
        """
        self._forget_parent()
        session = self._session
        return session.connection_id if session is not None and self._state == _HELD else None

    def locked(self) -> bool:
        """:returns: whether this object holds the lock and it is not known to be lost.

        .. versionchanged:: 1.0
           ``False`` once the lock is found lost (0.2.0 kept answering ``True``).
        """
        self._forget_parent()
        return self._state == _HELD

    def ensure_held(self) -> None:
        """Raise unless the lock is held; call it before each step of work the lock protects.

        :raises LockLostError: if the lock was held and has been lost.
        :raises LockNotHeldError: if the lock is not held (never acquired, or released).

        .. versionadded:: 1.0
        """
        self._forget_parent()
        if self._was_lost:
            raise LockLostError(
                f"lock {self._name!r} was lost", name=self._name, reason=self._lost_reason
            )
        if self._state != _HELD:
            raise LockNotHeldError(f"lock {self._name!r} is not held")

    @property
    def token(self) -> int | None:
        """The fencing token of the latest acquire; always ``None`` without ``fencing=True``.

        See :class:`~PyMySQLLock.fencing.FencedLock`.

        .. versionadded:: 1.0
        """
        return None

    # -- the caller's statements on the holding session ---------------------------------------

    def cursor(self) -> contextlib.AbstractContextManager[Any]:
        """A driver cursor on the session that holds the lock, for a ``with`` block.

        Each statement runs in autocommit mode, so one that succeeds ran while the lock was
        held: make a write conditional on :attr:`token` here. The keepalive waits while the
        block runs. The session is closed at release instead of pooled (see
        :mod:`PyMySQLLock.holding`).

        :raises LockNotHeldError: if the lock is not held.
        :raises LockLostError: if it was lost, or the session failed in the block.

        .. versionadded:: 1.0
        """
        return holding.caller_cursor(self, transaction=False)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """Like :meth:`cursor`, in a transaction committed only while the lock is still held.

        ``START TRANSACTION`` first; ``COMMIT`` when the block ends, ``ROLLBACK`` when it
        raises. If the session ends before the ``COMMIT`` (the lock lost), the server rolls the
        transaction back and :class:`~PyMySQLLock.LockLostError` is raised.

        .. versionadded:: 1.0
        """
        return holding.caller_cursor(self, transaction=True)

    def _holding_session(self) -> Session:
        """:returns: the session holding the lock; raises as :meth:`ensure_held` does."""
        self.ensure_held()
        session = self._session
        if session is None:  # released by another thread meanwhile
            raise LockNotHeldError(f"lock {self._name!r} is not held")
        return session

    def __repr__(self) -> str:
        state = self._state if self._pid == _pid else _IDLE
        return f"<{type(self).__name__} {self._name!r} {state}>"

    def _also_hold(self, name: str) -> bool:
        """Take the lock ``name`` (a server name) too, on the session holding this one.

        For :mod:`.election`'s leader marker, which must live and die with this lock's
        session. :meth:`_also_release` must give it back before :meth:`release`, which pools
        the session. A connection failure is left to the keepalive and release to report.

        :returns: whether the server granted it at once (timeout 0).
        """
        session = self._held_session()
        try:
            if session is not None:
                with session.mutex:
                    row = session.run(GET_LOCK, (name, 0))
                return acquire_answer(name, row) is Acquire.GRANTED
        except (SessionLost, StatementFailed) as exc:
            logger.debug("taking %r beside lock %r failed: %s", name, self._name, exc)
        return False

    def _also_release(self, name: str) -> None:
        """Release the lock ``name`` taken by :meth:`_also_hold`."""
        session = self._held_session()
        try:
            if session is not None:
                with session.mutex:
                    session.run(RELEASE_LOCK, (name,))
        except (SessionLost, StatementFailed) as exc:
            logger.debug("releasing %r beside lock %r failed: %s", name, self._name, exc)

    def _held_session(self) -> Session | None:
        session = self._session
        return session if self._state == _HELD else None

    # -- acquire ------------------------------------------------------------------------------

    def acquire(
        self, timeout: float | None = None, refresh_interval_secs: float | None = None
    ) -> bool:
        """Wait for the lock and hold it.

        :param timeout: ``-1`` waits forever, ``0`` tries once, a positive number waits at most
            that many seconds (fractions are honoured on every server). ``None``: the value
            given to :meth:`~PyMySQLLock.Locker.lock` (``-1`` unless set).
        :param refresh_interval_secs: seconds between two keepalive checks while held.
            ``None``: the value given to :meth:`~PyMySQLLock.Locker.lock` (10 unless set).
        :returns: ``True`` once held; ``False`` only when the timeout expired. A wait that
            the server (or a proxy) ends with error 1205, ``ER_LOCK_WAIT_TIMEOUT``, counts as
            one that expired without the lock, like ``GET_LOCK``'s answer 0: the acquire goes
            on waiting while time remains, then returns ``False``.
        :raises LockAlreadyHeldError: if this object holds the lock or is acquiring it.
        :raises DeadlockError: if waiting would deadlock with another session, or (with an
            endless timeout) with the calling thread itself: it holds the name through another
            Lock of this Locker. A finite timeout then simply expires.
        :raises AcquireInterruptedError: if the server ended the wait (``KILL QUERY``, a
            statement time limit) or :meth:`cancel` was called.
        :raises LockConnectionError: if the server cannot be reached.
        :raises UnsupportedServerError: if the server refuses user locks (error 1235 on some
            MariaDB Galera releases, 1836 on an Aurora reader).
        :raises LockError: if the Locker is closed (also when :meth:`~PyMySQLLock.Locker.close`
            ran while this acquire waited), or its keepalive thread ended.
        :raises InvalidArgumentError: for an out-of-range timeout or interval (before anything
            is sent).

        .. versionchanged:: 1.0
           ``timeout=-1`` waits on MariaDB too (0.2.0 returned at once there); fractions of a second
           are honoured on every server; other negative timeouts are refused; ``False`` means only
           that the timeout expired, server errors raise; acquiring a held lock raises
           :exc:`~PyMySQLLock.LockAlreadyHeldError`.
        """
        seconds = self._timeout if timeout is None else validate_timeout(timeout)
        interval = (
            self._interval
            if refresh_interval_secs is None
            else validate_interval(refresh_interval_secs)
        )
        self._forget_parent()
        holders = self._locker._holders
        if holders and (
            holders.self_wait(self._server_name, self, seconds, threading.get_ident) is not None
        ):
            raise self_wait_error(self._name, "thread", "Lock", "Locker")
        mine = False  # whether this call made the lock _ACQUIRING (and must undo it)
        try:
            with self._mutex:
                if self._state in (_HELD, _ACQUIRING):
                    raise LockAlreadyHeldError(f"lock {self._name!r} is already {self._state}")
                mine = True
                self._state = _ACQUIRING
                self._was_lost = False
                self._cancel_requested = False
                self._acquire_done = None
            session = self._wait(seconds)
            with self._mutex:
                # _waiting keeps a granted session until it is _session: an interrupt at any
                # point finds it in one of the two (see _abandon_acquire).
                if session is not None:
                    self._state = _HELD
                    self._session = session
                    self._held_interval = interval
                else:
                    self._state = _IDLE
                self._waiting = None
                if self._acquire_done is not None:
                    self._acquire_done.set()
            if session is None:
                logger.debug("lock %r not acquired within %s s", self._name, seconds)
                return False
            self._locker._lock_held(self, interval)
        except BaseException:
            # An error, a KeyboardInterrupt or a SystemExit at any point: a session that the
            # server may have granted the lock is closed, so that the server never keeps a
            # lock this object does not report held.
            if mine:
                self._abandon_acquire()
            raise
        if logger.isEnabledFor(DEBUG):  # one call instead of two when off
            waited = self._acquired_at - self._wait_began
            progress.log_acquired(self._name, waited, session.connection_id)
        return True

    def _abandon_acquire(self) -> None:
        """End an acquire that raised: not held, and no session of it left holding anything."""
        with self._mutex:
            sessions = {self._waiting, self._session if self._state == _HELD else None}
            self._waiting = None
            if self._state in (_HELD, _ACQUIRING):
                self._state = _IDLE
                self._session = None
            if self._acquire_done is not None:
                self._acquire_done.set()
        self._locker._lock_released(self)
        for session in sessions:
            if session is not None:
                self._pool.discard_if_in_use(session)

    def _wait(self, seconds: float) -> Session | None:
        """Wait on the server in bounded chunks; return the session holding the lock, or None.

        A chunk never exceeds the connection's read timeout, so an endless wait still notices
        a dead server; each chunk is one ``GET_LOCK``, so an uncontended acquire is one round
        trip. :attr:`_waiting` names the session in use until it goes back to the Locker; an
        exception that leaves here with it set leaves that session to the caller to close.
        """
        pool = self._pool
        began = self._wait_began = time.monotonic()
        deadline = began + seconds
        # A long wait says who it waits for (at INFO); a quick acquire never asks, and sends
        # nothing more. Reports need the wait cut at whole seconds up to each report.
        report_at = began + progress.FIRST_REPORT_SECONDS if logger.isEnabledFor(INFO) else math.inf
        session, reused = pool.checkout()
        while True:
            # No mutex: cancel() sets the flag before it reads _waiting, and this thread sets
            # _waiting before it reads the flag, so one of them sees the other's write.
            self._waiting = session
            if self._cancel_requested:
                # The wait may have been granted in the race, and the session may carry a
                # pending KILL QUERY: closing the connection (acquire() does) settles both.
                raise AcquireCancelledError(f"acquire of lock {self._name!r} was cancelled")
            started = time.monotonic()
            remaining = deadline - started
            limit = remaining
            if deadline > report_at:
                limit = max(math.ceil(report_at - started), 1)
            chunk = pool.wait_chunk(limit)
            # Anything but these two failures (KeyboardInterrupt...) leaves with _waiting set:
            # acquire() then closes that session.
            try:
                with session.mutex:
                    row = session.run(GET_LOCK, (self._server_name, chunk))
            except SessionLost as lost:
                if self._cancel_requested:
                    # cancel() cut the connection (a KILL QUERY did not end the wait).
                    raise AcquireCancelledError(
                        f"acquire of lock {self._name!r} was cancelled"
                    ) from None
                self._waiting = None
                retry = pool.replace_lost(session, reused, started)
                if retry is not None:
                    session, reused = retry
                    continue
                raise LockConnectionError(
                    f"lost the connection while acquiring lock {self._name!r}: {lost}"
                ) from lost.__cause__
            except StatementFailed as failure:
                if self._cancel_requested:
                    continue  # MySQL reports the KILL QUERY of cancel() as error 1317
                # A server error leaves the session fine; error 1205 (an expired wait, as a
                # proxy may report it) is BUSY, like the answer 0.
                outcome = acquire_failure(self._name, failure.code, failure.message)
                if isinstance(outcome, LockError):
                    self._waiting = None
                    pool.checkin(session)
                    raise outcome from failure.__cause__
            else:
                outcome = acquire_answer(self._name, row)
                if self._cancel_requested:
                    if outcome is Acquire.GRANTED:
                        self._release_grant(session)
                    continue
            reused = False
            if outcome is Acquire.GRANTED:
                self._acquired_at = started
                return session
            if isinstance(outcome, LockError):
                # NULL (MariaDB's answer to KILL QUERY or a statement time limit) leaves the
                # session fine. Any answer GET_LOCK never gives may mean the lock is held on
                # this session, so the session goes, and the lock with it (acquire() closes
                # _waiting).
                if keeps_session(outcome):
                    self._waiting = None
                    pool.checkin(session)
                raise outcome
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                self._waiting = None
                pool.checkin(session)
                return None
            if now >= report_at:
                report_at = now + progress.REPEAT_SECONDS
                self._report_wait(session, now - began)
                continue
            if chunk == 0:
                time.sleep(min(_POLL_SECONDS, remaining))

    def _release_grant(self, session: Session) -> bool:
        """Send ``RELEASE_LOCK`` for a grant that this acquire does not keep.

        A :meth:`cancel` raced the grant, or a subclass could not finish taking the lock; the
        caller closes or pools the session.

        Closing the connection frees the lock only once the server has processed the close:
        :meth:`cancel` would return, and an election's ``stop()`` with it, while the server
        still held the lock, failing the next taker's try.

        :returns: whether the server confirmed the release.
        """
        try:
            with session.mutex:
                row = session.run(RELEASE_LOCK, (self._server_name,))
        except (SessionLost, StatementFailed):
            return False
        return release_answer(row) is Release.RELEASED

    def _report_wait(self, session: Session, waited: float) -> None:
        """Log who holds the lock, asking on the waiting session (which is between waits)."""
        try:
            with session.mutex:
                row = session.run(progress.HOLDER_DETAILS, (self._server_name,))
        except StatementFailed as failure:  # e.g. no access to the process list: say less
            logger.debug("no holder details for lock %r: %s", self._name, failure)
            return
        except SessionLost:
            return  # the next GET_LOCK finds the session broken and reports it as usual
        except BaseException:
            self._pool.discard(session)
            raise
        progress.log_waiting(self._name, waited, progress.holder_from_row(row))

    def cancel(self) -> bool:
        """Abort an :meth:`acquire` that is waiting in another thread.

        The waiting ``acquire()`` raises :class:`~PyMySQLLock.AcquireCancelledError` promptly;
        if the server granted the lock in the race, it is released. The wait is ended with
        ``KILL QUERY``; when that does not end it within half a second (a hung server, a
        broken network) the waiting connection is cut instead, which the server treats as a
        release. Returns once that ``acquire()`` has ended, or after about a second if it is
        still opening a connection to a server that does not answer (it then raises as soon
        as that attempt ends). Never raises itself.

        :returns: ``True`` if an acquire was waiting, ``False`` if there was none.

        .. versionadded:: 1.0
        """
        self._forget_parent()
        with self._mutex:
            if self._state != _ACQUIRING:
                return False
            self._cancel_requested = True
            # Made here, not per acquire: only a cancel needs to wait for the acquire's end.
            if self._acquire_done is None:
                self._acquire_done = threading.Event()
            done = self._acquire_done
        started = time.monotonic()
        killing: threading.Thread | None = None
        cut: Session | None = None
        while not done.is_set():
            waited = time.monotonic() - started
            if waited >= 2 * _CANCEL_PATIENCE:
                break
            waiting = self._waiting
            if waiting is not None and waited >= _CANCEL_PATIENCE:
                if waiting is not cut:
                    cut = waiting
                    self._pool.abort(waiting)
            elif waiting is not None and (killing is None or not killing.is_alive()):
                # In a thread of its own: on a hung server the KILL QUERY itself hangs. It is
                # repeated because a KILL QUERY landing between two chunks of the wait is
                # ignored by the server.
                killing = self._pool.kill_query_soon(waiting.connection_id)
            done.wait(0.05)
        return True

    # -- release ------------------------------------------------------------------------------

    def release(self) -> None:
        """Release the lock.

        Releasing a lock that was lost only cleans up: the loss was already reported through
        :attr:`lost`, ``on_lost`` and the log. An exception or interrupt (``KeyboardInterrupt``)
        during ``release()`` leaves the lock either still reported held, so that ``release()``
        can be called again, or released by closing its connection. In the second case a loss
        that happened before the release stays unknown (:attr:`lost` is ``False``): the
        keepalive had stopped for the release, and the answer that would have shown it was
        never read.

        :raises LockNotHeldError: if the lock is not held (never acquired, or released).
        :raises LockError: when called inside a :meth:`cursor` block of this lock, in its
            thread (the block must end first).

        .. versionchanged:: 1.0
           Raises :exc:`~PyMySQLLock.LockNotHeldError` when not held (0.2.0 raised
           :exc:`AttributeError`); checks ``RELEASE_LOCK``'s answer and reports a loss it reveals;
           after a loss it only cleans up.
        """
        self._forget_parent()
        session: Session | None = None
        try:
            with self._mutex:
                if self._state == _LOST:
                    self._state = _IDLE
                    return
                if self._state != _HELD or self._session is None:
                    raise LockNotHeldError(f"lock {self._name!r} is not held")
                if self._session.caller_thread == threading.get_ident():
                    # The block holds the session's mutex: waiting for it here would never end.
                    raise LockError(f"release() inside a cursor() block of lock {self._name!r}")
                session = self._session
                self._session = None
                self._state = _IDLE
            self._locker._lock_released(self)
            failure = self._release_on(session)
        except BaseException:
            if session is not None:
                self._release_interrupted(session)
            raise
        if failure is None:
            # RELEASE_LOCK confirmed the session held the lock, once (a Lock never acquires
            # twice, and a session serves one lock): it now holds nothing and may serve the
            # next acquire.
            self._pool.checkin(session)
            if logger.isEnabledFor(DEBUG):
                progress.log_released(self._name, time.monotonic() - self._acquired_at)
            return
        self._pool.discard(session)
        self._report_lost(failure)

    def _release_on(self, session: Session) -> LossReason | None:
        """Send ``RELEASE_LOCK`` on ``session``; :returns: ``None``, or why it was not released.

        Waits at most the read timeout for the keepalive to finish a check on the session;
        after that the connection is cut, which ends the check at once.
        """
        mutex = session.mutex
        if not mutex.acquire(timeout=self._pool.read_timeout):
            # Cutting the connection fails whatever waits on it at once (and the server
            # frees the lock when it sees the connection end).
            self._pool.abort(session)
            if not mutex.acquire(timeout=self._pool.read_timeout):
                return LossReason.now(LossCause.CHECK_FAILED, "its connection stayed busy")
        try:
            try:
                row = session.run(RELEASE_LOCK, (self._server_name,))
            except StatementFailed as exc:
                if exc.code not in INTERRUPTED_CODES:
                    raise
                # A KILL QUERY that hit the release (or was pending on the session).
                row = session.run(RELEASE_LOCK, (self._server_name,))
        except SessionLost as exc:
            return LossReason.now(
                LossCause.CONNECTION_LOST, f"the connection failed during release: {exc}"
            )
        except StatementFailed as exc:
            return LossReason.now(
                LossCause.REFUSED, f"the server refused to release it: {exc}", exc.code
            )
        finally:
            mutex.release()
        outcome = release_answer(row)
        if outcome is Release.RELEASED:
            return None
        return LossReason.now(LossCause.NOT_HELD, outcome.lost_reason or "")

    def _release_interrupted(self, session: Session) -> None:
        """After an exception inside release(): held and retryable, or released by closing."""
        with self._mutex:
            if self._session is session and self._state == _HELD:
                return  # interrupted before anything changed: release() can be called again
            if self._session is None and self._state == _HELD:
                self._state = _IDLE
        self._locker._lock_released(self)
        self._pool.discard_if_in_use(session)

    def _drop(self) -> None:
        """Let go of a held lock at once by closing its connection, without a round trip.

        The server frees the lock when it sees the connection end, so nothing waits for a
        hung server; for a process about to exit (``pymysqllock run`` on a signal) and for
        :meth:`Locker.close` once its time is up.
        """
        with self._mutex:
            session = self._session
            if self._state == _LOST:
                self._state = _IDLE
            if self._state != _HELD or session is None:
                return
            self._session = None
            self._state = _IDLE
        self._locker._lock_released(self)
        self._pool.abort(session)
        self._pool.discard(session)

    # -- loss ---------------------------------------------------------------------------------

    def _keepalive_start(self) -> float | _Probe | None:
        """Called by the keepalive thread: start proving that the session still holds the lock.

        Where the driver can, the check is only sent here and its answer read later, so that
        one thread can wait for the answers of many locks at once: a server that hangs then
        costs one ping timeout for all of them, not one each.

        :returns: a :class:`_Probe` waiting for the answer, or (when the check is already
            settled) seconds until the next check, or ``None`` when no longer held.
        """
        with self._mutex:
            session = self._session
            if self._state != _HELD or session is None or self._pid != _pid:
                return None
            interval = self._held_interval
        # Never wait for a connection that a releasing thread is using: the release settles
        # the question itself, and waiting could delay every other lock's check.
        if not session.mutex.acquire(blocking=False):
            return min(interval, 0.05)
        if self._session is not session:
            session.mutex.release()
            return None
        probe = _Probe(self, session, interval)
        try:
            if session.send(STILL_HELD, (self._server_name,)):
                return probe
            row = session.run(STILL_HELD, (self._server_name,))
        except (SessionLost, StatementFailed) as exc:
            return probe.settle(None, _check_failure(exc))
        except BaseException:
            session.broken = True
            probe.settle(None, LossReason.now(LossCause.CHECK_FAILED, "the check itself failed"))
            raise
        return probe.settle(row, None)

    def _keepalive_failed(self, reason: str) -> None:
        """Called by the keepalive when a check raised: it proved nothing, so the lock is lost."""
        session = self._session
        if session is not None:
            self._declare_lost(
                session, LossReason.now(LossCause.CHECK_FAILED, reason), in_background=True
            )

    def _declare_lost(
        self, session: Session, reason: LossReason, in_background: bool = False
    ) -> None:
        """Report the lock lost, unless it was released meanwhile; see :meth:`_report_lost`."""
        with self._mutex:
            if self._state != _HELD or self._session is not session:
                return  # released meanwhile: release() reports what it finds
            self._state = _LOST
            self._session = None
            self._was_lost = True
        self._locker._lock_released(self)
        self._pool.discard(session)
        self._report_lost(reason, in_background)

    def _report_lost(self, reason: LossReason, in_background: bool = False) -> None:
        """Record and log the loss, and call ``on_lost``.

        :param in_background: found by the keepalive: ``on_lost`` runs on the Locker's
            callback thread, where a slow or failing callback cannot hold up any check.
            Otherwise (found by ``release()`` or under :meth:`cursor`) it runs in the calling
            thread, before that call raises or returns.
        """
        # The reason first: on_lost and anyone who sees ``lost`` may read it.
        self._lost_reason = reason
        self._was_lost = True
        logger.warning("lock %r was lost: %s", self._name, reason.message)
        if self._on_lost is None:
            return
        if in_background:
            self._locker._callbacks.submit(self._call_on_lost)
        else:
            self._call_on_lost()

    def _call_on_lost(self) -> None:
        on_lost = self._on_lost
        if on_lost is not None:
            try:
                on_lost(self)
            except Exception:
                logger.exception("on_lost callback for lock %r raised", self._name)

    def _timeout_error(self, message: str) -> LockTimeoutError:
        """The error for an acquire that timed out, naming the holder when the server tells.

        :param message: what timed out; ``"; held by connection 42 (app@10.0.0.5:40112)"`` is
            appended when the holder could be looked up.
        """
        holder: int | None = None
        try:
            row = self._pool.run(
                lambda session: session.run(progress.HOLDER_DETAILS, (self._server_name,))
            )
        except LockError:
            pass  # only a detail of an error being raised: never replace that error
        else:
            found = progress.holder_from_row(row)
            holder = found.connection_id
            message = f"{message}; held by {found}"
        timeout = -1 if math.isinf(self._timeout) else self._timeout
        return LockTimeoutError(message, name=self._name, timeout=timeout, holder=holder)

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> Lock:
        if not self.acquire():
            shown = "ever" if math.isinf(self._timeout) else f"{self._timeout} s"
            raise self._timeout_error(f"lock {self._name!r} was not acquired within {shown}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        lost = self.lost
        self.release()
        if (lost or self.lost) and exc_type is None:
            raise LockLostError(
                f"lock {self._name!r} was lost while the with block ran; "
                "its work may have overlapped with another holder",
                name=self._name,
                reason=self.lost_reason,
            )
