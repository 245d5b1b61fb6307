"""A warm acquire+release cycle sends exactly two statements and nothing else to the server.

Two round trips (``GET_LOCK``, ``RELEASE_LOCK``) are the physical limit for an uncontended lock
on an open connection; the benchmarks measure the time, this test pins the count, so that no
later change can add a hidden round trip: a third statement (``Questions``), a ping
(``Com_admin_commands``), a reset, a ``SET``, a ``USE`` (each its own ``Com_*`` counter) or a
new connection (``Connections``).

The counters are global, so they are read on a connection of the test's own, and the cost of
reading them is measured first (two reads back to back) and subtracted. A stray statement from
elsewhere can only add to a count, never remove one, so the smallest of a few attempts is the
cycle's own count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

#: Cycles per measurement: enough that one extra statement per cycle cannot hide.
CYCLES = 50
#: Measurements made before giving up; only background noise makes one differ.
ATTEMPTS = 4
#: The keepalive must not check during a measurement: its checks are SELECTs too.
NO_KEEPALIVE = 3600.0
#: Counters that must move by exactly two per cycle; every other ``Com_*`` must not move.
PER_CYCLE = ("Questions", "Queries", "Com_select")
#: Counters besides ``Com_*`` that must not move at all.
STILL = ("Connections", "Aborted_clients", "Aborted_connects")


@pytest.fixture
def status(server: Any) -> Iterator[Callable[[], dict[str, int]]]:
    """``status()``: the server's global status counters, read on one connection of our own."""
    pymysql = pytest.importorskip("pymysql")
    conn = pymysql.connect(autocommit=True, **server.connect_kwargs())
    with contextlib.closing(conn):
        cursor = conn.cursor()

        def read() -> dict[str, int]:
            cursor.execute("SHOW GLOBAL STATUS")
            counters = {}
            for name, value in cursor.fetchall():
                with contextlib.suppress(TypeError, ValueError):
                    counters[str(name)] = int(value)
            return counters

        yield read


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    watched = [key for key in after if key.startswith("Com_") or key in PER_CYCLE + STILL]
    return {key: after[key] - before.get(key, 0) for key in watched}


def _cycle_explicit(locker: Any, name: str) -> None:
    lock = locker.lock(name, refresh_interval_secs=NO_KEEPALIVE)
    assert lock.acquire(timeout=10) is True
    lock.release()


def _cycle_with(locker: Any, name: str) -> None:
    with locker.lock(name, timeout=10, refresh_interval_secs=NO_KEEPALIVE) as lock:
        assert lock.locked()


def _cycle_try_once(locker: Any, name: str) -> None:
    lock = locker.lock(name, refresh_interval_secs=NO_KEEPALIVE)
    assert lock.acquire(timeout=0) is True
    lock.release()


def _cycle_forever(locker: Any, name: str) -> None:
    lock = locker.lock(name, refresh_interval_secs=NO_KEEPALIVE)
    assert lock.acquire() is True
    lock.release()


CYCLES_BY_STYLE = {
    "acquire-10s": _cycle_explicit,
    "with-block": _cycle_with,
    "try-once": _cycle_try_once,
    "wait-forever": _cycle_forever,
}


@pytest.mark.parametrize("style", list(CYCLES_BY_STYLE))
def test_warm_cycle_is_two_statements_and_nothing_else(
    make_locker: Callable[..., Any],
    lock_name: str,
    status: Callable[[], dict[str, int]],
    style: str,
) -> None:
    cycle = CYCLES_BY_STYLE[style]
    locker = make_locker()
    for _ in range(3):  # warm: the pool holds a connection, every lazy setup is done
        cycle(locker, lock_name)

    first = status()
    reading = _delta(first, status())  # what one status read itself adds
    expected = {key: 2 * CYCLES if key in PER_CYCLE else 0 for key in reading}

    attempts = []
    for _ in range(ATTEMPTS):
        before = status()
        for _ in range(CYCLES):
            cycle(locker, lock_name)
        measured = _delta(before, status())
        own = {key: measured.get(key, 0) - reading.get(key, 0) for key in expected}
        if own == expected:
            return
        attempts.append({key: value for key, value in own.items() if value != expected[key]})
    pytest.fail(
        f"{CYCLES} warm cycles ({style}) should send exactly {2 * CYCLES} SELECTs and nothing "
        f"else; counters that differ from that, per attempt (measured, expected): "
        + "; ".join(
            ", ".join(
                f"{key}={value} (expected {expected[key]})" for key, value in sorted(a.items())
            )
            for a in attempts
        ),
        pytrace=False,
    )
