"""Self-wait: an endless wait for a name that its own waiter holds is refused at once.

Every lock waits and holds on a session of its own, so a second lock object asking for a name
that a first one of the same Locker holds waits for the first one's release, like any other
session. When the waiter is also the only one that would release it, the wait never ends. The
waiter is a thread for :class:`~PyMySQLLock.Locker` and an asyncio task for
:class:`~PyMySQLLock.aio.AsyncLocker`: a task that a holder created (``create_task``,
``gather``) is another task, and may well be meant to wait until its parent releases.

Each Locker keeps a :class:`Holders` map: the name is recorded with its owner when granted and
forgotten before ``RELEASE_LOCK`` is sent, when the lock is found lost, and (the owner only)
when a minimum hold outlives the run that took it. An acquire with an endless timeout looks its
name up there; a finite timeout simply expires, as in PyMySQLLock 0.2.0.
"""

from __future__ import annotations

import math
from typing import Callable, Generic, TypeVar

from .errors import DeadlockError

__all__ = ["Holders", "self_wait_error"]

LockT = TypeVar("LockT")


class Holders(dict[str, tuple[LockT, object]], Generic[LockT]):
    """Server name -> (the lock object holding it, its owner), for the locks of one Locker.

    A :class:`dict`, so that "nothing held" stays the cheap test of an empty dict on the
    acquire path. An owner of ``None`` is nobody's: waiting for that lock is never refused.
    """

    __slots__ = ()

    def granted(self, server_name: str, lock: LockT, owner: object | None) -> None:
        """Record that ``owner`` (a thread id, an asyncio task) holds ``server_name``."""
        self[server_name] = (lock, owner)

    def forget(self, server_name: str, lock: LockT) -> None:
        """Forget ``lock``'s hold (released, lost, never granted); another lock's stays."""
        entry = self.get(server_name)
        if entry is not None and entry[0] is lock:
            del self[server_name]

    def disown(self, server_name: str, lock: LockT) -> None:
        """Keep ``lock``'s hold but drop its owner: a timer, not the owner, will release it."""
        entry = self.get(server_name)
        if entry is not None and entry[0] is lock:
            self[server_name] = (lock, None)

    def self_wait(
        self, server_name: str, lock: LockT, seconds: float, owner: Callable[[], object | None]
    ) -> LockT | None:
        """Find the lock a wait of ``seconds`` for ``server_name`` would wait for in vain.

        In vain: the wait is endless, and the lock's owner is the waiter (``owner()``, called
        only when some other lock holds the name).

        :returns: that lock; ``None`` when the wait is finite, or may end.
        """
        if seconds != math.inf:
            return None  # a finite wait just expires, as in 0.2.0
        entry = self.get(server_name)
        if entry is None or entry[0] is lock or entry[1] is None:
            return None
        return entry[0] if entry[1] == owner() else None


def self_wait_error(name: str, owner: str, lock_type: str, locker_type: str) -> DeadlockError:
    """The error for an acquire refused by :meth:`Holders.self_wait`.

    :param name: the lock name as the user gave it.
    :param owner: what waits: ``"thread"`` or ``"task"``.
    :param lock_type: the lock class the user holds, e.g. ``"Lock"``.
    :param locker_type: the class that made it, e.g. ``"Locker"``.
    """
    return DeadlockError(
        f"lock {name!r} is already held by this {owner} through another {lock_type} object of "
        f"the same {locker_type}: waiting for it without a timeout would wait on itself. Use "
        f"the {lock_type} that holds it, release that one first, or give this acquire a "
        "timeout"
    )
