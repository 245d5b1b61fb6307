"""What the exceptions carry: payloads a caller can use without parsing text, and pickling.

The payload tests run against the server with every driver; the pickling tests need none.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import threading
import time

import pytest

import PyMySQLLock
from PyMySQLLock import LockError, LockLostError, LockTimeoutError, LossCause, LossReason
from PyMySQLLock.cliconnect import UsageError
from PyMySQLLock.optionfile import OptionFileError
from PyMySQLLock.testing import ServerStartError

#: The refresh interval of the locks under test.
INTERVAL = 0.5
#: Generous: a loss is normally found within the interval plus one second.
DETECTION_BOUND = INTERVAL + 5.0


def _library_exceptions() -> list[type[BaseException]]:
    """Every exception class the library raises on purpose (the public ones and the rest)."""
    public = [
        value
        for value in vars(PyMySQLLock).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
    ]
    return [*public, OptionFileError, UsageError, ServerStartError]


def _roundtrip(value):
    return pickle.loads(pickle.dumps(value))  # noqa: S301 - our own bytes


def _reason(**overrides) -> LossReason:
    fields = {
        "cause": LossCause.CONNECTION_LOST,
        "message": "the connection failed: (2013, 'Lost connection')",
        "detected_at": 1_700_000_000.25,
        "server_code": 2013,
        **overrides,
    }
    return LossReason(**fields)


# --------------------------------------------------------------------------- pickling


def test_every_public_exception_is_checked():
    names = {cls.__name__ for cls in _library_exceptions()}
    assert set(PyMySQLLock.errors.__all__) <= names


@pytest.mark.parametrize("cls", _library_exceptions(), ids=lambda cls: cls.__name__)
def test_exception_survives_pickling(cls):
    exc = cls("lock 'job' went wrong")
    if isinstance(exc, LockError):
        exc.server_code = 1205
    back = _roundtrip(exc)
    assert type(back) is cls
    assert str(back) == str(exc)
    assert back.args == exc.args
    assert vars(back) == vars(exc)


def test_timeout_error_payload_survives_pickling():
    exc = LockTimeoutError("lock 'job' was not acquired", name="job", timeout=2.5, holder=42)
    back = _roundtrip(exc)
    assert (back.name, back.timeout, back.holder) == ("job", 2.5, 42)
    assert isinstance(back, TimeoutError)
    assert str(back) == "lock 'job' was not acquired"


def test_lost_error_payload_survives_pickling():
    reason = _reason()
    exc = LockLostError("lock 'job' was lost", name="job", reason=reason)
    back = _roundtrip(exc)
    assert back.name == "job"
    assert back.reason == reason
    assert back.reason.cause is LossCause.CONNECTION_LOST


def test_payloads_default_to_none():
    # Code that raises these itself (tests, wrappers) need not know the payload.
    timeout = LockTimeoutError("timed out")
    assert (timeout.name, timeout.timeout, timeout.holder) == (None, None, None)
    lost = LockLostError("lost")
    assert (lost.name, lost.reason) == (None, None)


def test_loss_reason_is_a_frozen_value():
    reason = _reason()
    with pytest.raises(dataclasses.FrozenInstanceError):
        reason.cause = LossCause.NOT_HELD  # type: ignore[misc]
    assert _roundtrip(reason) == reason
    assert str(reason) == reason.message
    assert hash(reason) == hash(_reason())


def test_loss_reason_now_records_the_wall_clock():
    before = time.time()
    reason = LossReason.now(LossCause.NO_ANSWER, "no answer within 2.0 s")
    assert before <= reason.detected_at <= time.time()
    assert reason.server_code is None


# --------------------------------------------------------------------------- timeouts


def test_timeouts_name_lock_timeout_and_holder(make_locker, lock_name):
    holder_locker, waiter_locker = make_locker(), make_locker()
    held = holder_locker.lock(lock_name)
    assert held.acquire(0)
    held_on = held.connection_id

    @waiter_locker.synchronized(lock_name, on_busy="raise")
    def job():
        pytest.fail("ran while another session held the lock")

    try:
        with pytest.raises(LockTimeoutError) as raised, waiter_locker.lock(lock_name, timeout=0.2):
            pytest.fail("acquired a lock that another session holds")
        with pytest.raises(LockTimeoutError, match="busy") as busy:
            job()
    finally:
        held.release()
    for error, timeout in ((raised.value, 0.2), (busy.value, 0)):
        assert (error.name, error.timeout, error.holder) == (lock_name, timeout, held_on)
        assert f"connection {held_on}" in str(error)
        assert _roundtrip(error).holder == error.holder


def test_timeout_holder_is_none_when_the_lock_was_freed_meanwhile(locker, lock_name):
    # The holder is looked up after the timeout; an error already being raised must not
    # turn into another one, and a free lock has no holder.
    lock = locker.lock(lock_name, timeout=0)
    error = lock._timeout_error("timed out")
    assert error.holder is None
    assert error.name == lock_name


# --------------------------------------------------------------------------- losses


class Reasons:
    """An ``on_lost`` callback recording ``lock.lost_reason`` as the callback sees it."""

    def __init__(self) -> None:
        self.seen: list[LossReason | None] = []
        self.called = threading.Event()

    def __call__(self, lock) -> None:
        self.seen.append(lock.lost_reason)
        self.called.set()


def test_killed_session_gives_connection_lost_to_on_lost_and_the_error(locker, lock_name, sql):
    reasons = Reasons()
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=reasons)
    assert lock.lost_reason is None
    began = time.time()

    def work():
        with lock:
            sql("KILL CONNECTION %s", (lock.connection_id,))
            assert reasons.called.wait(DETECTION_BOUND), "loss not reported"

    with pytest.raises(LockLostError) as info:
        work()
    (reason,) = reasons.seen
    assert reason is not None
    assert reason.cause is LossCause.CONNECTION_LOST
    assert began <= reason.detected_at <= time.time()
    assert info.value.reason == reason
    assert info.value.name == lock_name
    assert _roundtrip(info.value).reason == reason
    # acquire() starts afresh: no stale reason for a lock that is held again.
    assert lock.acquire(0)
    assert lock.lost_reason is None
    lock.release()


def test_session_gone_at_release_is_a_connection_loss(locker, lock_name, sql, server_sessions):
    reasons = Reasons()
    lock = locker.lock(lock_name, refresh_interval_secs=60, on_lost=reasons)
    assert lock.acquire(0)
    held_on = lock.connection_id
    sql("KILL CONNECTION %s", (held_on,))
    deadline = time.monotonic() + 5
    while held_on in server_sessions():
        assert time.monotonic() < deadline, "killed session still listed"
        time.sleep(0.01)
    lock.release()
    (reason,) = reasons.seen
    assert reason is not None
    assert reason.cause is LossCause.CONNECTION_LOST
    assert "during release" in reason.message
    assert lock.lost_reason == reason
    with pytest.raises(LockLostError) as info:
        lock.ensure_held()
    assert info.value.reason == reason


@pytest.mark.lifecycle
def test_hung_server_gives_no_answer(fresh_server, driver, make_locker, lock_name):
    reasons = Reasons()
    locker = make_locker(on=fresh_server, ping_timeout=1)
    lock = locker.lock(lock_name, refresh_interval_secs=INTERVAL, on_lost=reasons)
    assert lock.acquire(0)
    fresh_server.pause()
    try:
        assert reasons.called.wait(INTERVAL + 1 + DETECTION_BOUND), "loss not reported"
    finally:
        fresh_server.resume()
    (reason,) = reasons.seen
    assert reason is not None
    assert reason.cause is LossCause.NO_ANSWER
    lock.release()
