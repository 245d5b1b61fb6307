"""The keepalive's schedule on its own, with stand-in watched objects (no server needed).

The behaviour with real locks (losses seen within the interval, the thread's life) is tested in
test_lost.py and test_threads.py; these tests pin down hand-offs that real locks reach only by
chance timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from interrupted import StartInterrupted

from PyMySQLLock.callbacks import Dispatcher
from PyMySQLLock.keepalive import Keepalive


class Watched:
    """Counts its checks; ``checked`` is set by each one. Checked again after ``interval``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.checks = 0
        self.checked = threading.Event()

    def _keepalive_start(self) -> float:
        self.checks += 1
        self.checked.set()
        return self.interval


@pytest.fixture
def keepalive() -> Iterator[Keepalive]:
    """A keepalive that lingers 50 ms; stopped (its thread joined) after the test."""
    made = Keepalive("test-keepalive", ping_timeout=1.0, linger=0.05)
    yield made
    made.stop()


def test_entry_taken_back_by_another_unwatch_is_still_checked(keepalive):
    first = Watched(0.5)
    keepalive.watch(first, 0.5)
    assert first.checked.wait(2)
    # The thread now sleeps until the first one's next check; a later-due entry waits in the
    # hand-off queue, where the unwatch of an object whose entry is long gone takes the newest
    # entry: it must hand it back, not drop it.
    second = Watched(10)
    keepalive.watch(second, 0.8)
    keepalive.unwatch(Watched(1))
    assert second.checked.wait(3), "the second object was never checked"
    keepalive.stop()
    assert keepalive.thread is None


def test_entry_due_before_the_thread_wakes_wakes_it(keepalive):
    slow = Watched(60)
    keepalive.watch(slow, 60)
    fast = Watched(60)
    keepalive.watch(fast, 0.1)
    assert fast.checked.wait(2), "the thread slept through an earlier check"
    assert slow.checks == 0


def test_unwatched_object_is_not_checked_and_the_thread_ends(keepalive):
    watched = Watched(0.05)
    keepalive.watch(watched, 0.3)
    keepalive.unwatch(watched)
    thread = keepalive.thread
    assert thread is not None
    thread.join(2)
    assert not thread.is_alive()
    assert watched.checks == 0
    assert keepalive.thread is None


def test_watch_after_the_thread_ended_starts_a_new_one(keepalive):
    first = Watched(60)
    keepalive.watch(first, 0.01)
    assert first.checked.wait(2)
    keepalive.unwatch(first)
    ended = keepalive.thread
    assert ended is not None
    ended.join(2)
    assert not ended.is_alive()
    second = Watched(60)
    keepalive.watch(second, 0.01)
    assert second.checked.wait(2)
    assert keepalive.thread is not None
    assert keepalive.thread is not ended


def test_an_interval_beyond_the_clock_ends_no_checks(keepalive):
    # Condition.wait(1e10) raises OverflowError; the thread must clamp its waits instead.
    far = Watched(1e10)
    keepalive.watch(far, 1e10)
    near = Watched(0.05)
    keepalive.watch(near, 0.05)
    assert near.checked.wait(2)
    near.checked.clear()
    assert near.checked.wait(2), "the thread stopped checking"
    assert keepalive.dead is None
    assert far.checks == 0


def test_a_thread_an_interrupt_kept_from_starting_is_replaced(keepalive, monkeypatch):
    start = StartInterrupted(monkeypatch)
    first = Watched(60)
    with pytest.raises(KeyboardInterrupt):
        keepalive.watch(first, 0.01)
    assert keepalive.thread is None
    # A later watch() must start a thread that checks, not notify one that never ran.
    second = Watched(60)
    keepalive.watch(second, 0.01)
    assert second.checked.wait(2), "nothing checks the locks after the interrupted start"
    assert first.checked.wait(2), "the interrupted watch's entry was dropped"
    running = keepalive.thread
    assert running is not None
    assert running is not start.refused[0]
    # The refused thread, had the signal landed after it was made, would run late: it must
    # leave at once and leave the running thread in charge.
    start.start_late()
    assert not start.refused[0].is_alive()
    assert keepalive.thread is running
    second.checked.clear()
    keepalive.watch(second, 0.01)
    assert second.checked.wait(2)


def test_stop_after_an_interrupted_start_does_not_fail(keepalive, monkeypatch):
    StartInterrupted(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        keepalive.watch(Watched(60), 0.01)
    keepalive.stop()  # raised "cannot join thread before it is started"
    assert keepalive.thread is None
    again = Watched(60)
    keepalive.watch(again, 0.01)
    assert again.checked.wait(2), "a keepalive stopped after an interrupted start never checks"
    keepalive.stop()
    assert keepalive.thread is None


def test_dispatcher_runs_its_queue_after_an_interrupted_start(monkeypatch):
    start = StartInterrupted(monkeypatch)
    dispatcher = Dispatcher("test-dispatcher", linger=0.05)
    ran: list[str] = []
    done = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        dispatcher.submit(lambda: ran.append("first"))
    assert dispatcher.thread is None
    dispatcher.submit(lambda: (ran.append("second"), done.set()))
    assert done.wait(2), "callbacks stay queued after an interrupted start"
    assert ran == ["first", "second"]
    start.start_late()
    assert not start.refused[0].is_alive()
    assert ran == ["first", "second"]
