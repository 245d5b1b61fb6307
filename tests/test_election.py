"""Leader election (``Locker.election``) against the real server, under every driver.

Candidates run in threads (callback order, resign, stop) and in processes of their own
(``coordworker.py``, under the asyncio drivers too): the leader is SIGKILLed, its session is
KILLed, or the server restarts, and another candidate must lead soon after, while a leader that
lost its lock is told. The
bounds are generous (CPUs are shared); the failover times themselves are measured by
``benchmarks/election.py``.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from interrupted import StartInterrupted
from workerprocess import Candidates

from PyMySQLLock import InvalidArgumentError, LockLostError, LockNotHeldError, Term
from PyMySQLLock.election import LEADER_MARK

WORKER_SCRIPT = Path(__file__).with_name("coordworker.py")
#: Keepalive interval of the candidates: a demoted leader must be told within it (+ 1 s).
INTERVAL = 1.0
#: Generous bound for "a new leader within interval + 1 s" on a busy machine.
FAILOVER_BOUND = 10.0


@pytest.fixture
def lock_name(lock_name: str) -> str:
    """A unique name short enough to leave room for the leader's identity in its marker."""
    return "-".join(lock_name.split("-")[:2]) + "-election"


def _holder(sql, name: str) -> int | None:
    value = sql("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
    return None if value is None else int(value)


class Journal:
    """Callbacks of in-process candidates, in the order they ran."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, str, str | None]] = queue.Queue()
        self.leading: set[str] = set()
        self.overlaps: list[set[str]] = []
        self._mutex = threading.Lock()

    def elected(self, term: Term) -> None:
        with self._mutex:
            self.leading.add(term.identity)
            if len(self.leading) > 1:
                self.overlaps.append(set(self.leading))
        self.events.put(("elected", term.identity, None))

    def demoted(self, term: Term) -> None:
        with self._mutex:
            self.leading.discard(term.identity)
        self.events.put(("demoted", term.identity, term.reason))

    def next(self, timeout: float = 30.0) -> tuple[str, str, str | None]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no election event within {timeout} s")


def test_one_leader_resign_hands_over_and_stop_releases(make_locker, lock_name, sql):
    journal = Journal()
    candidates = [
        make_locker().election(
            lock_name,
            identity=f"cand-{n}",
            on_elected=journal.elected,
            on_demoted=journal.demoted,
        )
        for n in range(3)
    ]
    for candidate in candidates:
        candidate.start()
    kind, first, _ = journal.next()
    assert kind == "elected"
    leader = next(c for c in candidates if c.identity == first)
    assert leader.is_leader
    assert leader.wait_for_leadership(5) is leader.term
    assert _holder(sql, lock_name) == leader.lock.connection_id
    assert all(c.leader() == first for c in candidates)
    # Resigning tells the old leader first, then a waiting candidate wins.
    assert leader.resign() is True
    assert journal.next() == ("demoted", first, "resigned")
    kind, second, _ = journal.next()
    assert kind == "elected"
    assert second != first
    assert candidates[0].leader() == second
    for candidate in candidates:
        candidate.stop()
    events = []
    while not journal.events.empty():
        events.append(journal.events.get())
    assert ("demoted", second, "stopped") in events
    assert journal.overlaps == []  # never two leaders by the callbacks' account
    assert _holder(sql, lock_name) is None
    assert not any(c.is_leader for c in candidates)
    assert candidates[0].leader() is None


def test_term_watches_loss_and_callback_failure_resigns(make_locker, lock_name, sql):
    journal = Journal()
    failures = itertools.chain([True], itertools.repeat(False))

    def elected(term: Term) -> None:
        journal.elected(term)
        if next(failures):
            raise RuntimeError("leader setup failed")

    with make_locker().election(
        lock_name,
        identity="flaky",
        on_elected=elected,
        on_demoted=journal.demoted,
        refresh_interval_secs=0.2,
    ) as candidate:
        assert journal.next() == ("elected", "flaky", None)
        # The failed term ends at once, the lock is released and the campaign goes on.
        assert journal.next() == ("demoted", "flaky", "on_elected raised")
        assert journal.next() == ("elected", "flaky", None)
        term = candidate.wait_for_leadership(10)
        assert term is not None
        term.ensure_held()
        sql("KILL CONNECTION %s", (candidate.lock.connection_id,))
        assert journal.next() == ("demoted", "flaky", "lost")
        assert term.ended.is_set()
        with pytest.raises(LockLostError):
            term.ensure_held()
        # ...and it is re-elected on a new session.
        assert journal.next() == ("elected", "flaky", None)
        latest = candidate.wait_for_leadership(10)
        assert latest is not None
        assert latest is not term
    assert journal.next() == ("demoted", "flaky", "stopped")
    with pytest.raises(LockNotHeldError, match="stopped"):
        latest.ensure_held()
    assert candidate.wait_for_leadership(0) is None


def test_resign_and_stop_from_on_elected(make_locker, lock_name, sql):
    journal = Journal()
    terms = itertools.count(1)

    def elected(term: Term) -> None:
        journal.elected(term)
        if next(terms) == 1:
            assert term.election.resign() is True  # ends when this callback returns
        else:
            term.election.stop()

    candidate = make_locker().election(
        lock_name, identity="self", on_elected=elected, on_demoted=journal.demoted
    )
    candidate.start()
    assert journal.next() == ("elected", "self", None)
    assert journal.next() == ("demoted", "self", "resigned")
    assert journal.next() == ("elected", "self", None)
    assert journal.next() == ("demoted", "self", "stopped")
    candidate.stop()  # the campaign already ended: returns at once
    assert not candidate.is_leader
    assert _holder(sql, lock_name) is None


def test_leader_marker_is_listed_and_identities_are_checked(make_locker, lock_name):
    locker = make_locker()
    with locker.election(lock_name, identity="web-1") as candidate:
        assert candidate.wait_for_leadership(10) is not None
        rows = {info.name: info.connection_id for info in locker.list_locks()}
        assert rows[lock_name + LEADER_MARK + "web-1"] == rows[lock_name]
    with pytest.raises(InvalidArgumentError, match="too long"):
        locker.election(lock_name, identity="x" * 64)
    with pytest.raises(InvalidArgumentError, match="printable"):
        locker.election(lock_name, identity="tab\there")
    default = locker.election(lock_name)
    assert default.identity.endswith(f":{os.getpid()}")


def test_cli_list_shows_the_leader(make_locker, lock_name, server, driver):
    with make_locker().election(lock_name, identity="cli-leader") as candidate:
        assert candidate.wait_for_leadership(10) is not None
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "PyMySQLLock",
                "list",
                "--url",
                server.url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    assert lock_name + LEADER_MARK + "cli-leader" in shown


# --------------------------------------------------------------------------- processes


@pytest.fixture
def candidates(server, worker_driver, lock_name, tmp_path):
    """Candidate processes on the session server (started by the test), under every driver."""
    made = Candidates(WORKER_SCRIPT, server, worker_driver, lock_name, INTERVAL, tmp_path)
    yield made
    made.close()


def test_failover_when_the_leader_dies_or_its_session_is_killed(candidates, lock_name, sql):
    candidates.start(3)
    number, line = candidates.next(30)
    assert line.startswith("elected")
    assert _holder(sql, lock_name) == int(line.split()[1])

    # 1. SIGKILL the leader process: its session closes and a waiter is granted the lock.
    killed = time.monotonic()
    candidates.workers[number].kill()
    successor, line = candidates.next(FAILOVER_BOUND)
    assert line.startswith("elected"), line
    assert time.monotonic() - killed <= FAILOVER_BOUND
    assert successor != number
    assert _holder(sql, lock_name) == int(line.split()[1])

    # 2. KILL the leader's session: the last candidate wins at once, and the old leader,
    # still running, is told it was demoted (by its keepalive, within the interval).
    sql("KILL CONNECTION %s", (int(line.split()[1]),))
    killed = time.monotonic()
    third = ({0, 1, 2} - {number, successor}).pop()
    expected = {(successor, "demoted lost"), (third, "elected")}
    while expected:
        who, line = candidates.next(FAILOVER_BOUND)
        event = (who, line.split()[0] if line.startswith("elected") else line)
        assert event in expected, f"unexpected {event} while waiting for {expected}"
        expected.discard(event)
        assert time.monotonic() - killed <= FAILOVER_BOUND
        if line.startswith("elected"):
            assert _holder(sql, lock_name) == int(line.split()[1])


def test_failover_after_a_server_restart(fresh_server, worker_driver, lock_name, tmp_path):
    made = Candidates(WORKER_SCRIPT, fresh_server, worker_driver, lock_name, INTERVAL, tmp_path)
    try:
        made.start(2)
        leader, line = made.next(30)
        assert line.startswith("elected")
        fresh_server.restart()
        restarted = time.monotonic()
        # Both learn the server went away; the old leader is demoted, and one of the two
        # (either) leads again on the restarted server.
        demoted = elected = False
        while not (demoted and elected):
            who, line = made.next(FAILOVER_BOUND + 20)
            if who == leader and line == "demoted lost":
                demoted = True
            elif line.startswith("elected"):
                assert demoted or who != leader, "elected twice without a demotion"
                elected = True
                assert time.monotonic() - restarted <= FAILOVER_BOUND + 20
                holder = fresh_server.sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0]
                assert int(holder) == int(line.split()[1])
    finally:
        made.close()


def test_start_after_an_interrupted_start_campaigns(make_locker, lock_name, monkeypatch):
    StartInterrupted(monkeypatch)
    journal = Journal()
    election = make_locker().election(
        lock_name, identity="late", on_elected=journal.elected, on_demoted=journal.demoted
    )
    with pytest.raises(KeyboardInterrupt):
        election.start()
    assert repr(election).endswith("idle>")
    # The campaign thread never ran: start() must start one, not take it for running.
    election.start()
    assert journal.next(10) == ("elected", "late", None)
    election.stop()
    assert journal.next(10) == ("demoted", "late", "stopped")
