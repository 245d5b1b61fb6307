"""What a lock tells the log while it waits, and who holds it.

An acquire that waits longer than :data:`FIRST_REPORT_SECONDS` logs at INFO who holds the lock,
then again every :data:`REPEAT_SECONDS`; acquire and release log at DEBUG how long they waited
and held. Every record carries the figures in ``extra`` fields (``lock``, ``waited_s``,
``held_s``, ``holder``), so a metrics exporter can read them without parsing the text.

The holder is looked up only once a wait has lasted that long, never in a quick acquire: a warm
acquire and release stay two statements. This module holds the statement, the reading of its
answer and the wording; :class:`~PyMySQLLock.Lock` runs it.
"""

from __future__ import annotations

from typing import Any

from .log import logger
from .values import value

__all__ = [
    "FIRST_REPORT_SECONDS",
    "HOLDER_DETAILS",
    "REPEAT_SECONDS",
    "Holder",
    "holder_from_row",
    "log_acquired",
    "log_released",
    "log_waiting",
]

#: Seconds an acquire waits before it first logs who holds the lock.
FIRST_REPORT_SECONDS = 1.0
#: Seconds between two such log lines while the wait goes on.
REPEAT_SECONDS = 30.0
#: The holder's connection id, and its account and client address where the server shows
#: them to this account (``information_schema.PROCESSLIST`` lists other accounts' sessions
#: only with the ``PROCESS`` privilege). One statement, answered even when the lock is free.
HOLDER_DETAILS = (
    "SELECT h.id, p.USER, p.HOST FROM (SELECT IS_USED_LOCK(%s) AS id) AS h "
    "LEFT JOIN information_schema.PROCESSLIST AS p ON p.ID = h.id"
)


@value
class Holder:
    """Who holds a lock, as far as the server tells.

    :param connection_id: the holder's ``CONNECTION_ID()``, or ``None`` when the lock was free.
    :param user: the holder's account user name, when visible.
    :param host: the holder's client host and port, when visible.
    """

    connection_id: int | None
    user: str | None = None
    host: str | None = None

    def __str__(self) -> str:
        if self.connection_id is None:
            return "nobody (free now)"
        shown = f"connection {self.connection_id}"
        if self.user is not None or self.host is not None:
            shown += f" ({self.user or '?'}@{self.host or '?'})"
        return shown


def holder_from_row(row: tuple[Any, ...] | None) -> Holder:
    """Read the answer to :data:`HOLDER_DETAILS`.

    :param row: its first row.
    :returns: the holder.
    """
    if not row or row[0] is None:
        return Holder(None)
    user = None if len(row) < 2 or row[1] is None else str(row[1])
    host = None if len(row) < 3 or row[2] is None else str(row[2])
    return Holder(int(row[0]), user, host)


def log_waiting(name: str, waited: float, holder: Holder) -> None:
    """Log, at INFO, that an acquire of ``name`` is still waiting and who holds the lock."""
    logger.info(
        "waiting for lock %r for %.0f s; held by %s",
        name,
        waited,
        holder,
        extra={"lock": name, "waited_s": waited, "holder": holder.connection_id},
    )


def log_acquired(name: str, waited: float, connection_id: int) -> None:
    """Log, at DEBUG, an acquire and how long it waited."""
    logger.debug(
        "lock %r acquired on connection %s after %.3f s",
        name,
        connection_id,
        waited,
        extra={"lock": name, "waited_s": waited, "holder": connection_id},
    )


def log_released(name: str, held: float) -> None:
    """Log, at DEBUG, a release and how long the lock was held."""
    logger.debug("lock %r released after %.3f s", name, held, extra={"lock": name, "held_s": held})
