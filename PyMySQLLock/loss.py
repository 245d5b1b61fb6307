"""Why a held lock counts as lost: the frozen record that on_lost and LockLostError carry.

A lock is declared lost by its keepalive check or found lost by its release; either way the
library knows why, and records it here so that a caller can decide what to do (retry, alert,
roll back) without parsing a log message.
"""

from __future__ import annotations

import enum
import time

from .values import value

__all__ = ["LossCause", "LossReason"]


class LossCause(enum.Enum):
    """What ended the lock's hold, as far as the client can tell.

    .. versionadded:: 1.0
    """

    #: The lock's connection failed: its session was killed (``KILL``, ``wait_timeout``), the
    #: server restarted or went away, or the network broke. The server frees the lock of a
    #: session that ends.
    CONNECTION_LOST = "connection lost"
    #: The server did not answer a keepalive check within the ping timeout (it hangs, is
    #: paused or unreachable): the lock cannot be proven held, so it is given up.
    NO_ANSWER = "no answer"
    #: The server answered that the session no longer holds the lock (it is free or another
    #: session holds it), for example after ``RELEASE_ALL_LOCKS()`` on that session.
    NOT_HELD = "not held"
    #: The server answered the check or the release with an error
    #: (see :attr:`LossReason.server_code`).
    REFUSED = "refused"
    #: The check failed inside the client (the driver raised something unexpected).
    CHECK_FAILED = "check failed"


@value
class LossReason:
    """Why and when a lock was found lost.

    Available as :attr:`PyMySQLLock.Lock.lost_reason` (also inside ``on_lost``) and as
    :attr:`PyMySQLLock.LockLostError.reason`.

    .. versionadded:: 1.0
    """

    #: The kind of loss.
    cause: LossCause
    #: The same explanation the warning in the log gives.
    message: str
    #: When the loss was found (``time.time()``). The lock may have been lost up to one
    #: refresh interval earlier: that is how often it is checked.
    detected_at: float
    #: The server's or the driver's error number, when an error revealed the loss.
    server_code: int | None = None

    @classmethod
    def now(cls, cause: LossCause, message: str, server_code: int | None = None) -> LossReason:
        """A reason detected at this moment.

        :param cause: the kind of loss.
        :param message: the explanation for the log.
        :param server_code: the error number that revealed the loss, if any.
        """
        return cls(cause, message, time.time(), server_code)

    def __str__(self) -> str:
        return self.message
