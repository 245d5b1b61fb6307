"""The caller's own statements on the session that holds a lock.

A ``GET_LOCK`` lock belongs to a session, and that gives it a guarantee no lease has: a
statement that succeeds on the holding session ran while the lock was held, and a transaction
committed there was committed while it was held. If the session ends (killed, timed out, the
network cut), the server rolls back its open transaction and frees the lock together.

:meth:`Lock.cursor() <PyMySQLLock.Lock.cursor>` and :meth:`Lock.transaction()
<PyMySQLLock.Lock.transaction>` hand out a cursor on that session for the length of a ``with``
block. The block holds the session's mutex, so the keepalive's checks and the caller's
statements never interleave on the connection; while the block runs, the caller's own
statements are the proof that the session lives. After the block, the session is left
usable for the keepalive (results read, a failed transaction rolled back), and because the
caller may have changed anything else in it (variables, ``autocommit``, ``sql_mode``, temporary
tables, other locks), it is closed at release instead of going back to the pool.

The decisions (which statement ends a block, which failure loses the lock, the errors) are
here once, for this module's blocking block and for its asyncio twin,
:mod:`PyMySQLLock.aio.holding`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .errors import LockError, LockLostError
from .loss import LossCause, LossReason
from .statements import COMMIT, ROLLBACK, START_TRANSACTION

if TYPE_CHECKING:
    from .connection import Session
    from .lock import Lock

__all__ = [
    "UNREAD",
    "Holder",
    "already_open",
    "caller_cursor",
    "check_clean",
    "check_failure",
    "declare_lost",
    "end_statement",
    "failures",
    "start_statement",
]

#: Why a block whose results cannot be skipped loses its session.
UNREAD = "results were left unread that the driver cannot skip"


class Holder(Protocol):
    """What the decisions below need of a lock, blocking or asyncio."""

    @property
    def name(self) -> str:
        """The lock's name."""

    @property
    def lost_reason(self) -> LossReason | None:
        """Why it was lost."""

    def _declare_lost(self, session: Any, reason: LossReason) -> None:
        """Report it lost, unless released meanwhile."""


def already_open(lock: Holder, where: str) -> LockError:
    """:returns: the error for a second block of ``lock`` in the same thread or task."""
    return LockError(
        f"a cursor() or transaction() block of lock {lock.name!r} is already open in this "
        f"{where}; use its cursor"
    )


def start_statement(transaction: bool) -> str | None:
    """:returns: the statement that opens a block (``START TRANSACTION``), if any."""
    return START_TRANSACTION if transaction else None


def end_statement(transaction: bool, failed: bool) -> str | None:
    """:returns: the statement that ends a block: ``COMMIT``, ``ROLLBACK``, or none."""
    if not transaction:
        return None
    return ROLLBACK if failed else COMMIT


def declare_lost(
    lock: Holder, session: Any, message: str, cause: BaseException | None = None
) -> LockLostError:
    """Declare the lock lost because its session failed under the caller's statements.

    :param session: the holding session (blocking or asyncio).
    :param message: what happened, for the log and the error.
    :param cause: the driver's error, when one revealed it.
    :returns: the error to raise.
    """
    session.broken = True
    code = None if cause is None else session.adapter.error_code(cause)
    kind = LossCause.CONNECTION_LOST if cause is not None else LossCause.CHECK_FAILED
    lock._declare_lost(session, LossReason.now(kind, message, code))
    return LockLostError(
        f"lock {lock.name!r} was lost: {message}; the server rolled back the session's open "
        "transaction, if any",
        name=lock.name,
        reason=lock.lost_reason,
    )


def check_failure(lock: Holder, session: Any, exc: BaseException) -> None:
    """Sort out an exception raised in a block or by its statements.

    Returns when the session is still usable (a statement the server refused, an error of
    the caller's own), so that the block can be ended on it.

    :raises BaseException: ``exc`` itself when it interrupted the block (Ctrl-C, a cancelled
        task), perhaps half-way through a statement: the session can never be trusted again,
        so the lock is declared lost and its session closed, which frees it.
    :raises LockLostError: when ``exc`` says the connection failed (the server rolled back
        the open transaction and freed the lock).
    """
    if not isinstance(exc, Exception):
        declare_lost(lock, session, f"the block was interrupted ({type(exc).__name__})")
        raise exc
    adapter = session.adapter
    if adapter.is_driver_error(exc) and adapter.is_connection_lost(exc):
        raise declare_lost(lock, session, f"the connection failed: {exc}", exc) from exc


@contextlib.contextmanager
def failures(lock: Holder, session: Any) -> Iterator[None]:
    """Around the library's own statements of a block: sort out what they raise.

    An error is sorted by :func:`check_failure` (which may declare the lock lost), then goes on.
    """
    try:
        yield
    except BaseException as exc:
        check_failure(lock, session, exc)
        raise


def check_clean(lock: Holder, session: Any, clean: bool) -> None:
    """After a block's cursor was finished.

    :param clean: whether the driver could read every result the caller left.
    :raises LockLostError: when it could not: the connection cannot serve the keepalive.
    """
    if not clean:
        raise declare_lost(lock, session, UNREAD)


def _end(lock: Lock, session: Session, cursor: Any, statement: str | None) -> None:
    """Run ``COMMIT`` or ``ROLLBACK`` (or nothing), then read what the caller left unread.

    :raises LockLostError: when the connection fails meanwhile.
    """
    with failures(lock, session):
        if statement is not None:
            cursor.execute(statement)
        clean = session.adapter.finish_caller_cursor(session.raw, cursor)
    check_clean(lock, session, clean)


@contextlib.contextmanager
def caller_cursor(lock: Lock, *, transaction: bool) -> Iterator[Any]:
    """A driver cursor on the session holding ``lock``, for the length of a ``with`` block.

    :param lock: the held lock.
    :param transaction: run the block in a transaction: ``START TRANSACTION`` first,
        ``COMMIT`` when the block ends normally, ``ROLLBACK`` when it raises.
    :raises LockNotHeldError: if the lock is not held.
    :raises LockLostError: if the lock was lost, or its session failed in the block (the
        server then rolled back the open transaction); the driver's error is the cause.
    :raises LockError: if a block of the same lock is already open in this thread.
    """
    session = lock._holding_session()
    if session.caller_thread == threading.get_ident():
        raise already_open(lock, "thread")
    with session.mutex:
        if lock._holding_session() is not session:  # lost while we waited for the mutex
            raise LockLostError(f"lock {lock.name!r} was lost")
        session.caller_used = True
        session.caller_thread = threading.get_ident()
        try:
            start = start_statement(transaction)
            with failures(lock, session):
                cursor = session.adapter.caller_cursor(session.raw)
                if start is not None:
                    cursor.execute(start)
            try:
                yield cursor
            except BaseException as exc:
                check_failure(lock, session, exc)
                _end(lock, session, cursor, end_statement(transaction, failed=True))
                raise
            try:
                _end(lock, session, cursor, end_statement(transaction, failed=False))
            except BaseException:
                if transaction and not session.broken:
                    # COMMIT refused (a deadlock, a constraint): undo the rest.
                    _end(lock, session, cursor, end_statement(transaction, failed=True))
                raise
        finally:
            session.caller_thread = None
