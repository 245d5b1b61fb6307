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
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import LockError, LockLostError
from .loss import LossCause, LossReason

if TYPE_CHECKING:
    from .connection import Session
    from .lock import Lock

__all__ = ["caller_cursor"]


def _lost(
    lock: Lock, session: Session, message: str, cause: BaseException | None = None
) -> LockLostError:
    """Declare the lock lost because its session failed under the caller's statements.

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


def _connection_failed(session: Session, exc: BaseException) -> bool:
    """Tell whether ``exc`` left the connection unusable (and so the lock lost)."""
    adapter = session.adapter
    if not isinstance(exc, Exception):
        return True  # e.g. KeyboardInterrupt half-way through a statement: state unknown
    return adapter.is_driver_error(exc) and adapter.is_connection_lost(exc)


def _end(lock: Lock, session: Session, cursor: Any, statement: str | None) -> None:
    """Run ``COMMIT`` or ``ROLLBACK`` (or nothing), then read what the caller left unread.

    :raises LockLostError: when the connection fails meanwhile.
    """
    try:
        if statement is not None:
            cursor.execute(statement)
        clean = session.adapter.finish_caller_cursor(session.raw, cursor)
    except BaseException as exc:
        if _connection_failed(session, exc):
            raise _lost(lock, session, f"the connection failed: {exc}", exc) from exc
        raise
    if not clean:
        raise _lost(lock, session, "results were left unread that the driver cannot skip")


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
        raise LockError(
            f"a cursor() or transaction() block of lock {lock.name!r} is already open in this "
            "thread; use its cursor"
        )
    with session.mutex:
        if lock._holding_session() is not session:  # lost while we waited for the mutex
            raise LockLostError(f"lock {lock.name!r} was lost")
        session.caller_used = True
        session.caller_thread = threading.get_ident()
        try:
            try:
                cursor = session.adapter.caller_cursor(session.raw)
                if transaction:
                    cursor.execute("START TRANSACTION")
            except BaseException as exc:
                if _connection_failed(session, exc):
                    raise _lost(lock, session, f"the connection failed: {exc}", exc) from exc
                raise
            try:
                yield cursor
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Interrupted (Ctrl-C), perhaps half-way through a statement: the session
                    # can never be trusted again. Closing it frees the lock; the interrupt goes on.
                    _lost(lock, session, f"the block was interrupted ({type(exc).__name__})")
                    raise
                if _connection_failed(session, exc):
                    raise _lost(lock, session, f"the connection failed: {exc}", exc) from exc
                _end(lock, session, cursor, "ROLLBACK" if transaction else None)
                raise
            try:
                _end(lock, session, cursor, "COMMIT" if transaction else None)
            except LockLostError:
                raise
            except BaseException:
                if transaction:  # COMMIT refused (a deadlock, a constraint): undo the rest
                    _end(lock, session, cursor, "ROLLBACK")
                raise
        finally:
            session.caller_thread = None
