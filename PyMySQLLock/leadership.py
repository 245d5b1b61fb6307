"""What a leader election means, without I/O: identities, the leader marker, how a term ends.

Shared by the blocking :class:`~PyMySQLLock.Election` and the asyncio
:class:`~PyMySQLLock.aio.election.AsyncElection`, so that blocking and asyncio candidates of one
name campaign for the same lock, mark their leadership with the same marker, read the leader
the same way, and end their terms by the same rules. See :class:`~PyMySQLLock.Election` for how
a campaign runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar

from .errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockError,
    LockLostError,
    LockNotHeldError,
)
from .names import fits_verbatim, server_name, validate_name
from .timeouts import validate_interval

if TYPE_CHECKING:
    from .statements import LockInfo

__all__ = [
    "FAILED",
    "LEADER_MARK",
    "LOST",
    "RESIGNED",
    "STOPPED",
    "ElectionViews",
    "Ended",
    "TermEnd",
    "TermViews",
    "check_identity",
    "leader_identity",
    "marker_name",
    "next_retry",
    "term_end",
    "term_error",
]

#: Between the election's name and the leader's identity in the marker lock's name.
LEADER_MARK = "#leader="
#: How a term ended: the lock was lost, the leader resigned, the election was stopped, or
#: ``on_elected`` raised.
LOST, RESIGNED, STOPPED, FAILED = "lost", "resigned", "stopped", "on_elected raised"
#: Seconds between two campaign attempts while the server cannot be reached (doubling from
#: the first to the last); a wait on the server ends by itself when the lock is granted.
RETRY_FIRST, RETRY_LAST = 0.05, 1.0


def marker_name(name: str, identity: str) -> str:
    """:returns: the lock name of the marker of ``identity``'s leadership of ``name``."""
    return f"{name}{LEADER_MARK}{identity}"


def check_identity(name: str, identity: object, namespace: str | None) -> str:
    """Check (or choose) a candidate's identity.

    :param name: the election's name.
    :param identity: the identity given, or ``None`` for ``<hostname>:<pid>``, shortened to
        fit (the pid is kept: it tells the processes of a host apart).
    :param namespace: the Locker's namespace.
    :returns: the identity.
    :raises InvalidArgumentTypeError: for an identity that is not a :class:`str`.
    :raises InvalidArgumentError: for one that is not printable ASCII, or too long for the
        marker's name to fit in 64 characters with the namespace (listings show it whole).
    """
    room = 64 - len(server_name(marker_name(name, ""), namespace))
    if identity is None:
        identity = f"{socket.gethostname()}:{os.getpid()}"
        if len(identity) > room:
            pid = f":{os.getpid()}"
            identity = identity[: max(0, room - len(pid))] + pid
    if not isinstance(identity, str):
        raise InvalidArgumentTypeError("identity must be a str")
    if not identity or not identity.isascii() or not identity.isprintable():
        raise InvalidArgumentError(f"identity must be printable ASCII, not {identity!r}")
    full = marker_name(name, identity)
    if not fits_verbatim(server_name(full, namespace)) or len(identity) > room:
        raise InvalidArgumentError(
            f"identity {identity!r} is too long: {full!r} (with the namespace) must fit in "
            "64 characters so that listings show it"
        )
    return identity


def leader_identity(
    name: str, namespace: str | None, holder: int, listed: Iterable[LockInfo]
) -> str | None:
    """Read the leader's identity from a lock listing.

    Both elections read the holder first, and list the locks only when there is one.

    :param holder: the connection id holding the election's lock.
    :param listed: the server's lock listing.
    :returns: the identity in the marker held by the same connection, or ``None`` when it
        holds none (the leader was elected a moment ago: its marker follows in the next
        statement).
    """
    prefix = server_name(marker_name(name, ""), namespace)
    for info in listed:
        if info.connection_id == holder and info.server_name.startswith(prefix):
            return info.server_name[len(prefix) :]
    return None


def next_retry(retry: float) -> float:
    """:returns: the pause before the next campaign attempt after one that failed."""
    return min(2 * retry, RETRY_LAST)


def term_error(name: str, reason: str) -> LockError:
    """:returns: the error of ``ensure_held()`` on a term of ``name`` that ended for ``reason``."""
    if reason == LOST:
        return LockLostError(f"leadership of {name!r} was lost")
    return LockNotHeldError(f"leadership of {name!r} ended ({reason})")


@dataclass(frozen=True)
class TermEnd:
    """What the campaign does once a term has ended.

    :param demote: call ``on_demoted`` now, before the lock is released (unless it was already
        called: from the keepalive for a lost lock, when ``on_elected`` raised).
    :param release: release the marker and the lock (a lost lock has nothing to release).
    """

    demote: bool
    release: bool


def term_end(reason: str) -> TermEnd:
    """:returns: what the campaign does after a term that ended for ``reason``."""
    return TermEnd(demote=reason not in (LOST, FAILED), release=reason != LOST)


class Ended(Protocol):
    """What a term's ``ended`` is: a ``threading.Event`` or an ``asyncio.Event``."""

    def is_set(self) -> bool:
        """:returns: whether the term ended."""


class TermViews:
    """What both APIs' terms show: the leader's identity, why the term ended, ``ensure_held``.

    :param election: the election that won it.
    """

    #: Set when the term ended (a ``threading.Event`` or an ``asyncio.Event``).
    ended: Ended

    def __init__(self, election: ElectionViews[Any, Any]) -> None:
        self.election = election
        #: Why it ended: ``"lost"``, ``"resigned"``, ``"stopped"`` or ``"on_elected raised"``.
        self.reason: str | None = None

    @property
    def identity(self) -> str:
        """The identity of the leader (this process's election)."""
        return self.election.identity

    def ensure_held(self) -> None:
        """Raise unless this term still leads; call it before each step of leader work.

        :raises LockLostError: if the term ended because the lock was lost.
        :raises LockNotHeldError: if it ended otherwise.
        """
        if self.ended.is_set():
            raise term_error(self.election.name, str(self.reason))

    def __repr__(self) -> str:
        state = "leading" if self.reason is None else f"ended: {self.reason}"
        return f"<{type(self).__name__} of {self.election.name!r} {self.identity!r} {state}>"


LockT = TypeVar("LockT")
TermT = TypeVar("TermT", bound=TermViews)


class ElectionViews(Generic[LockT, TermT]):
    """The arguments, the lock and the state views of an election, shared by both APIs.

    :param make_lock: the Locker's ``lock()``, blocking or asyncio.
    :param namespace: the Locker's namespace.
    :param name: the election's name, and the other arguments: see
        :class:`~PyMySQLLock.Election`.
    """

    def __init__(
        self,
        make_lock: Callable[..., LockT],
        namespace: str | None,
        name: str,
        identity: str | None,
        on_elected: Callable[..., Any] | None,
        on_demoted: Callable[..., Any] | None,
        refresh_interval_secs: float,
    ) -> None:
        for label, callback in (("on_elected", on_elected), ("on_demoted", on_demoted)):
            if callback is not None and not callable(callback):
                raise InvalidArgumentTypeError(f"{label} must be a callable or None")
        self._name = validate_name(name)
        self._identity = check_identity(self._name, identity, namespace)
        self._interval = validate_interval(refresh_interval_secs)
        self._on_elected = on_elected
        self._on_demoted = on_demoted
        self._term: TermT | None = None
        self._stopping = False
        self._lock = make_lock(
            self._name, refresh_interval_secs=self._interval, on_lost=self._lock_lost
        )
        self._marker = server_name(marker_name(self._name, self._identity), namespace)

    def _lock_lost(self, lock: LockT) -> Any:
        """Called by the lock when the keepalive (or a release) found it lost."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The election's lock name."""
        return self._name

    @property
    def identity(self) -> str:
        """This process's identity, shown to others while it leads."""
        return self._identity

    @property
    def lock(self) -> LockT:
        """The election's lock (held while leading)."""
        return self._lock

    @property
    def term(self) -> TermT | None:
        """The current term while this process leads, else ``None``."""
        term = self._term
        return term if term is not None and not term.ended.is_set() else None

    @property
    def is_leader(self) -> bool:
        """Whether this process leads now (as far as it knows)."""
        return self.term is not None

    def _describe(self, running: bool) -> str:
        state = "leading" if self.is_leader else ("campaigning" if running else "idle")
        return f"<{type(self).__name__} {self._name!r} {self._identity!r} {state}>"
