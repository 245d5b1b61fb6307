"""Leader election: one leader among every process that campaigns for the same name.

The leader is whoever holds the lock ``name``. Each :class:`Election` campaigns on a thread of
its own: it waits for the lock on the server (a blocking ``GET_LOCK``, so a vacancy is filled as
soon as the server sees it: at once when the leader releases, or when its connection closes or
is killed), serves a *term* while it holds it, and campaigns again when the term ends. A term
ends when the lock is lost (found by the keepalive within the refresh interval), on
:meth:`Election.resign`, on :meth:`Election.stop`, or when ``on_elected`` raises.

Who leads: the leader's own session also holds a second lock, the *marker*
``name#leader=<identity>``. It lives and dies with the leader's session, so it never outlives
the leadership on the server, and it needs no table: any lock listing shows it (``pymysqllock
list``, :meth:`~PyMySQLLock.Locker.list_locks`), and :meth:`Election.leader` picks the marker
held by the same connection as ``name`` itself. Reading it needs a server that can list locks
(see :doc:`/concepts`); :meth:`~PyMySQLLock.Locker.holder` (the leader's connection id) works
everywhere. Holding two locks on one session needs MySQL 5.7.5+ or MariaDB 10.0.2+.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from .errors import AcquireCancelledError, LockError, LockNotHeldError
from .leadership import (
    FAILED,
    LEADER_MARK,
    LOST,
    RESIGNED,
    RETRY_FIRST,
    STOPPED,
    ElectionViews,
    TermViews,
    leader_identity,
    next_retry,
    term_end,
)
from .lock import Lock
from .timeouts import DEFAULT_REFRESH_INTERVAL, FOREVER

if TYPE_CHECKING:
    from .locker import Locker

__all__ = ["LEADER_MARK", "Election", "Term"]

logger = logging.getLogger("PyMySQLLock")


class Term(TermViews):
    """One period of leadership of one :class:`Election`.

    :param election: the election that won it.

    .. versionadded:: 1.0
    """

    #: Set when the term ended; leader work should watch it (``term.ended.wait(...)``).
    ended: threading.Event

    def __init__(self, election: Election) -> None:
        super().__init__(election)
        self.ended = threading.Event()
        self._mutex = threading.Lock()

    def _end(self, reason: str) -> bool:
        """Mark the term ended; :returns: whether this call ended it (only the first does)."""
        with self._mutex:
            if self.reason is not None:
                return False
            self.reason = reason
        self.ended.set()
        return True


class Election(ElectionViews[Lock, Term]):
    """Campaign for leadership of ``name`` in the background; be told when it starts and ends.

    Create it with :meth:`PyMySQLLock.Locker.election`; start campaigning with :meth:`start`
    or a ``with`` block, whose end resigns and stops.

    ``on_elected(term)`` runs on the campaign thread when a term starts; it should return
    promptly (start long work elsewhere and let it watch ``term.ended``). If it raises, the term
    ends at once, the lock is released, and the campaign goes on. ``on_demoted(term)`` runs once
    per term when it ends: from the keepalive thread when the lock was lost (within the refresh
    interval of the loss), otherwise from the campaign thread *before* the lock is released, so
    that a leader stops working before its successor can start.

    :param locker: the Locker to campaign with.
    :param name: the election's lock name.
    :param identity: what followers see as the leader: printable ASCII, and short enough
        that ``name#leader=identity`` fits in 64 characters with the namespace. Default
        ``<hostname>:<pid>``, shortened to fit.
    :param on_elected: called as ``on_elected(term)`` when this process becomes leader.
    :param on_demoted: called as ``on_demoted(term)`` when it stops being leader.
    :param refresh_interval_secs: seconds between keepalive checks while leading: a demoted
        leader is told within about this time.
    :raises InvalidArgumentError: for an identity that does not fit or is not printable ASCII.
    :raises InvalidArgumentTypeError: for callbacks that are not callable.

    .. versionadded:: 1.0
    """

    def __init__(
        self,
        locker: Locker,
        name: str,
        *,
        identity: str | None = None,
        on_elected: Callable[[Term], Any] | None = None,
        on_demoted: Callable[[Term], Any] | None = None,
        refresh_interval_secs: float = DEFAULT_REFRESH_INTERVAL,
    ) -> None:
        self._locker = locker
        self._thread: threading.Thread | None = None
        super().__init__(
            locker.lock,
            locker.namespace,
            name,
            identity,
            on_elected,
            on_demoted,
            refresh_interval_secs,
        )
        self._cond = threading.Condition()
        self._resigning = False

    # -- read-only views (the others are ElectionViews') --------------------------------

    def leader(self) -> str | None:
        """Ask the server who leads now.

        :returns: the leader's identity, or ``None`` when nobody leads.
        :raises LockListingUnavailableError: if the server exposes no lock listing.
        """
        locker = self._locker
        holder = locker.holder(self._name)
        if holder is None:
            return None
        return leader_identity(self._name, locker.namespace, holder, locker.list_locks())

    def wait_for_leadership(self, timeout: float | None = None) -> Term | None:
        """Block until this process leads, or the timeout expires.

        :param timeout: seconds, or ``None`` to wait as long as it takes.
        :returns: the current term, or ``None`` on timeout or after :meth:`stop`.
        """
        with self._cond:
            self._cond.wait_for(lambda: self.term is not None or self._stopping, timeout)
            return self.term

    def __repr__(self) -> str:
        return self._describe(self._thread is not None and self._thread.is_alive())

    # -- control ------------------------------------------------------------------------------

    def start(self) -> Election:
        """Start campaigning on a background thread (a no-op if it already runs).

        :returns: this election.
        """
        with self._cond:
            # A thread an interrupt kept from starting never campaigns: start another.
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stopping = False
            self._thread = threading.Thread(
                target=self._campaign, name=f"PyMySQLLock-election-{self._name}", daemon=True
            )
            self._thread.start()
        return self

    def resign(self) -> bool:
        """End the current term and release the lock, then campaign again.

        A candidate already waiting gets the lock first (the server grants it to the waiting
        session within the release), so this hands leadership over when anyone else
        campaigns.

        :returns: ``True`` if this process was leading, ``False`` otherwise.
        """
        return self._end_term(RESIGNED)

    def stop(self) -> None:
        """Resign if leading, stop campaigning and end the campaign thread (joined)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        self._end_term(STOPPED)
        if thread is threading.current_thread():
            return  # from on_elected: the campaign ends when it returns
        # A campaign waiting on the server: cancel its GET_LOCK until the thread ends (it
        # may be between two statements at the first attempt).
        while thread is not None and thread.is_alive():
            self._lock.cancel()
            thread.join(0.05)
        with self._cond:
            if self._thread is thread:
                self._thread = None

    def __enter__(self) -> Election:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the campaign thread ------------------------------------------------------------------

    def _end_term(self, reason: str) -> bool:
        """End the current term (unless lost); the campaign thread then releases the lock."""
        with self._cond:
            term = self._term
            if term is None or term.ended.is_set():
                return False
            if threading.current_thread() is self._thread:
                # From on_elected: the term ends when it returns; waiting here would wait
                # for ourselves.
                term._end(reason)
                return True
            self._resigning = True
        term._end(reason)
        with self._cond:  # wait until the campaign thread has released
            self._cond.wait_for(lambda: not self._resigning)
        return True

    def _campaign(self) -> None:
        retry = RETRY_FIRST
        while not self._stopping:
            try:
                elected = self._lock.acquire(FOREVER)
            except AcquireCancelledError:
                continue  # stop() cancels the wait
            except LockError as exc:
                # The server is unreachable (restart, network): try again soon, without
                # spinning; stop() wakes the wait.
                logger.warning("election %r: campaign failed, retrying: %s", self._name, exc)
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, retry)
                retry = next_retry(retry)
                continue
            retry = RETRY_FIRST
            if elected:
                self._serve()
        with self._cond:
            if self._thread is threading.current_thread():
                self._thread = None  # stopped from on_elected: start() may run again

    def _serve(self) -> None:
        """Serve one term: mark it, tell the application, wait for its end, hand over."""
        if not self._lock._also_hold(self._marker):
            logger.warning(
                "election %r: the leader marker %r is held elsewhere (two candidates with the "
                "same identity?)",
                self._name,
                self._marker,
            )
        term = Term(self)
        with self._cond:
            if self._stopping:  # stop() came while the wait was being granted
                self._hand_over()
                return
            self._term = term
            self._cond.notify_all()
        if self._lock.lost:  # lost before the term was visible to _lock_lost
            self._lock_lost(self._lock)
        logger.info("election %r: %r became leader", self._name, self._identity)
        if not term.ended.is_set() and self._on_elected is not None:
            try:
                self._on_elected(term)
            except Exception:
                logger.exception("election %r: on_elected raised; resigning", self._name)
                if term._end(FAILED):
                    self._demoted(term)
        term.ended.wait()
        end = term_end(str(term.reason))
        if end.demote:
            self._demoted(term)
        if end.release:
            self._hand_over()
        with self._cond:
            self._term = None
            self._resigning = False
            self._cond.notify_all()

    def _hand_over(self) -> None:
        """Release the marker, then the election lock, on the leader's session."""
        self._lock._also_release(self._marker)
        with contextlib.suppress(LockNotHeldError):  # lost meanwhile: _lock_lost reports it
            self._lock.release()

    def _lock_lost(self, lock: Lock) -> None:
        """The keepalive (or a release) found the lock lost: the term ends now."""
        term = self._term
        if term is not None and term._end(LOST):
            self._demoted(term)

    def _demoted(self, term: Term) -> None:
        logger.info(
            "election %r: %r stopped being leader (%s)", self._name, self._identity, term.reason
        )
        if self._on_demoted is not None:
            try:
                self._on_demoted(term)
            except Exception:
                logger.exception("election %r: on_demoted raised", self._name)
