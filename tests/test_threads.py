"""Threads: mutual exclusion under contention, and the life of the keepalive thread."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

THREADS = 10
ROUNDS = 50
#: The spec's bound: the keepalive thread ends about a second after the last release (it
#: lingers, so that a warm acquire/release loop does not restart it every cycle).
LINGER_BOUND = 1.0


def _library_threads(before, ours=()):
    """Threads running now that were not running ``before`` and are not the test's own."""
    return [t for t in threading.enumerate() if t not in before and t not in ours and t.is_alive()]


class CriticalSection:
    """Records who is inside, in order; a second thread inside at once is an overlap."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._sequence = itertools.count()
        self.inside = 0
        self.most_inside = 0
        self.log: list[tuple[int, str, int]] = []
        self.counter = 0
        self.most_keepalives = 0
        self.threads_before = set(threading.enumerate())
        self.workers: set[threading.Thread] = set()

    def enter(self, who: int) -> None:
        with self._mutex:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.log.append((next(self._sequence), "enter", who))

    def leave(self, who: int) -> None:
        with self._mutex:
            self.inside -= 1
            self.log.append((next(self._sequence), "leave", who))

    def work(self) -> None:
        # A read-modify-write that a second thread inside would break (lost update).
        value = self.counter
        time.sleep(0)
        self.counter = value + 1
        keepalives = _library_threads(self.threads_before, self.workers)
        self.most_keepalives = max(self.most_keepalives, len(keepalives))

    def assert_never_overlapped(self, total: int) -> None:
        assert self.most_inside == 1
        assert self.counter == total
        assert len(self.log) == 2 * total
        for (_, first, who), (_, second, other) in zip(self.log[::2], self.log[1::2]):
            assert (first, second) == ("enter", "leave")
            assert who == other


def _hammer(lockers, name, spawn):
    section = CriticalSection()
    start = threading.Barrier(THREADS, timeout=30)

    def run(who, locker):
        section.workers.add(threading.current_thread())
        start.wait()
        for _ in range(ROUNDS):
            lock = locker.lock(name, refresh_interval_secs=0.01)
            assert lock.acquire(timeout=60) is True
            section.enter(who)
            try:
                lock.ensure_held()
                section.work()
            finally:
                section.leave(who)
                lock.release()

    workers = [spawn(run, who, lockers[who % len(lockers)]) for who in range(THREADS)]
    for worker in workers:
        worker.result(timeout=100)
    section.assert_never_overlapped(THREADS * ROUNDS)
    return section


@pytest.mark.stress
def test_threads_sharing_one_locker_never_overlap(locker, lock_name, spawn, sql):
    section = _hammer([locker], lock_name, spawn)
    assert section.most_keepalives == 1
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,)) == [(None,)]


@pytest.mark.stress
def test_threads_with_their_own_lockers_never_overlap(make_locker, lock_name, spawn):
    lockers = [make_locker() for _ in range(THREADS)]
    section = _hammer(lockers, lock_name, spawn)
    assert 1 <= section.most_keepalives <= THREADS


def test_one_keepalive_thread_per_locker_while_locks_are_held(make_locker, unique_name):
    before = set(threading.enumerate())
    first, second = make_locker(), make_locker()
    assert _library_threads(before) == []
    first_locks = [first.lock(unique_name(), refresh_interval_secs=0.05) for _ in range(10)]
    for lock in first_locks:
        assert lock.acquire(0) is True
    (first_keepalive,) = _library_threads(before)
    assert first_keepalive.daemon
    second_lock = second.lock(unique_name(), refresh_interval_secs=0.05)
    assert second_lock.acquire(0) is True
    keepalives = _library_threads(before)
    assert len(keepalives) == 2
    assert all(thread.daemon for thread in keepalives)

    # close() ends the Locker's keepalive thread before it returns, and releases its locks.
    first.close()
    assert not first_keepalive.is_alive()
    assert not any(lock.locked() for lock in first_locks)
    assert len(_library_threads(before)) == 1
    second.close()
    assert _library_threads(before) == []


@pytest.mark.parametrize("interval", [0.05, 10], ids=["interval-0.05", "interval-default"])
def test_keepalive_thread_ends_by_itself_after_the_last_release(locker, unique_name, interval):
    before = set(threading.enumerate())
    locks = [locker.lock(unique_name(), refresh_interval_secs=interval) for _ in range(3)]
    for lock in locks:
        assert lock.acquire(0) is True
    (keepalive,) = _library_threads(before)
    for lock in locks[:-1]:
        lock.release()
    # Still needed by the last lock held.
    assert not keepalive.join(0.2)
    assert keepalive.is_alive()
    locks[-1].release()
    keepalive.join(LINGER_BOUND)
    assert not keepalive.is_alive(), (
        f"the keepalive thread still runs {LINGER_BOUND} s after the last release"
    )
    # A later acquire starts a keepalive again.
    assert locks[0].acquire(0) is True
    assert len(_library_threads(before)) == 1
    locks[0].release()


def test_acquire_and_release_in_different_threads(locker, lock_name, spawn, sql):
    lock = locker.lock(lock_name)
    assert spawn(lock.acquire, 0).result() is True
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,)) == [(lock.connection_id,)]
    spawn(lock.release).result()
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,)) == [(None,)]
