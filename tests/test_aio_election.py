"""Leader election on the asyncio API (``AsyncLocker.election``) under aiomysql and asyncmy.

The promises of the blocking election (tests/test_election.py): exactly one leader among the
candidates, resign hands over to a waiting candidate, a leader whose session is killed is told
(``on_demoted`` with ``"lost"``) and another candidate leads, ``on_elected`` raising resigns,
the leader's identity is read from the listing; blocking and asyncio candidates of one name
elect one leader. And the asyncio point: stopping (or closing the locker) cancels a waiting
campaign and leaves no lock and no session behind.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from PyMySQLLock import InvalidArgumentError, Locker, LockLostError, LockNotHeldError
from PyMySQLLock.aio import AsyncElection, AsyncLocker, AsyncTerm
from PyMySQLLock.leadership import LEADER_MARK

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

MakeAsync = Callable[..., AsyncLocker]
#: Keepalive interval of the candidates: a demoted leader must be told within it (+ 1 s).
INTERVAL = 0.5
#: Generous bound for "told within interval + 1 s" on a busy machine.
BOUND = 10.0


@pytest.fixture
def lock_name(lock_name: str) -> str:
    """A unique name short enough to leave room for the leader's identity in its marker."""
    return "-".join(lock_name.split("-")[:2]) + "-aelection"


class Journal:
    """Callbacks of the candidates, in the order they ran; counts leaders at once."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue()
        self.leading: set[str] = set()
        self.overlaps: list[set[str]] = []

    def elected(self, term: AsyncTerm) -> None:
        self.leading.add(term.identity)
        if len(self.leading) > 1:
            self.overlaps.append(set(self.leading))
        self.events.put_nowait(("elected", term.identity, None))

    async def demoted(self, term: AsyncTerm) -> None:  # a coroutine callback, on purpose
        self.leading.discard(term.identity)
        await self.events.put(("demoted", term.identity, term.reason))

    async def next(self) -> tuple[str, str, str | None]:
        return await asyncio.wait_for(self.events.get(), BOUND)


def _candidates(
    make_async_locker: MakeAsync, name: str, journal: Journal, count: int
) -> list[AsyncElection]:
    return [
        make_async_locker().election(
            name,
            identity=f"candidate-{number}",
            on_elected=journal.elected,
            on_demoted=journal.demoted,
            refresh_interval_secs=INTERVAL,
        )
        for number in range(count)
    ]


async def test_one_leader_resign_hands_over_and_stop_releases(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    journal = Journal()
    first, second, third = _candidates(make_async_locker, lock_name, journal, 3)
    first.start()
    assert await first.wait_for_leadership(BOUND) is not None
    assert await journal.next() == ("elected", "candidate-0", None)
    second.start()
    third.start()
    assert await first.leader() == "candidate-0"
    assert await second.wait_for_leadership(0.2) is None  # a follower stays one
    assert await first.resign() is True
    assert await journal.next() == ("demoted", "candidate-0", "resigned")
    kind, successor, _ = await journal.next()
    assert kind == "elected"
    assert successor in ("candidate-1", "candidate-2")
    assert await first.leader() == successor
    by_identity = {each.identity: each for each in (first, second, third)}
    await by_identity[successor].stop()
    assert await journal.next() == ("demoted", successor, "stopped")
    kind, last, _ = await journal.next()
    assert kind == "elected"
    assert last != successor
    for each in (first, second, third):
        await each.stop()
    assert not journal.overlaps
    assert await first.leader() is None
    assert not await first._locker.is_locked(lock_name)


async def test_term_watches_loss_and_callback_failure_resigns(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    journal = Journal()
    leader, follower = _candidates(make_async_locker, lock_name, journal, 2)
    admin = make_async_locker()
    leader.start()
    term = await leader.wait_for_leadership(BOUND)
    assert term is not None
    assert await journal.next() == ("elected", "candidate-0", None)
    follower.start()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    assert await admin.force_release(lock_name)  # the leader's session is KILLed
    # The server grants the lock to the waiting follower at once; the old leader is told by
    # its keepalive within the interval (the window every session lock has, see the docs).
    events = {await journal.next(), await journal.next()}
    assert events == {("demoted", "candidate-0", "lost"), ("elected", "candidate-1", None)}
    assert loop.time() - killed_at < BOUND
    assert term.ended.is_set()
    with pytest.raises(LockLostError):
        term.ensure_held()
    assert follower.is_leader
    assert not leader.is_leader
    await follower.stop()
    await leader.stop()

    # on_elected raising ends the term at once and the campaign goes on.
    failures = 0

    async def failing(term: AsyncTerm) -> None:
        nonlocal failures
        failures += 1
        if failures == 1:
            raise RuntimeError("leader work failed")

    demoted: asyncio.Queue[str | None] = asyncio.Queue()
    flaky = make_async_locker().election(
        lock_name, on_elected=failing, on_demoted=lambda t: demoted.put_nowait(t.reason)
    )
    async with flaky:
        assert await asyncio.wait_for(demoted.get(), BOUND) == "on_elected raised"
        assert await flaky.wait_for_leadership(BOUND) is not None  # elected again
        assert failures == 2
    assert await asyncio.wait_for(demoted.get(), BOUND) == "stopped"


async def test_resign_and_stop_from_on_elected(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    terms: list[AsyncTerm] = []

    async def resign_once(term: AsyncTerm) -> None:
        terms.append(term)
        if len(terms) == 1:
            assert await election.resign() is True  # from the campaign task: no deadlock
        else:
            await election.stop()

    election = make_async_locker().election(lock_name, on_elected=resign_once)
    election.start()
    task = election._task
    assert task is not None
    await asyncio.wait_for(asyncio.shield(task), BOUND)  # the campaign ends after stop()
    assert [term.reason for term in terms] == ["resigned", "stopped"]
    with pytest.raises(LockNotHeldError, match="stopped"):
        terms[1].ensure_held()
    assert not await election._locker.is_locked(lock_name)


async def test_leader_marker_is_listed_and_identities_are_checked(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    locker = make_async_locker()
    async with locker.election(lock_name, identity="web-1") as election:
        assert await election.wait_for_leadership(BOUND) is not None
        names = {info.name for info in await locker.list_locks()}
        assert {lock_name, f"{lock_name}{LEADER_MARK}web-1"} <= names
    with pytest.raises(InvalidArgumentError, match="printable ASCII"):
        locker.election(lock_name, identity="tab\there")
    with pytest.raises(InvalidArgumentError, match="too long"):
        locker.election(lock_name, identity="x" * 64)


async def test_stop_and_close_cancel_a_waiting_campaign(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    holder = make_async_locker()
    blocker = holder.lock(lock_name)
    assert await blocker.acquire(0)
    waiting = make_async_locker()
    candidate = waiting.election(lock_name).start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not waiting._pool._in_use:  # its GET_LOCK waits on a session of its own
        assert loop.time() < deadline, "the campaign never started waiting"
        await asyncio.sleep(0.01)
    await candidate.stop()
    assert not candidate.is_leader
    assert not waiting._pool._in_use, "the stopped campaign kept its session"
    # Its wait was ended on the server (not left to run out on a closed connection).
    rows = await holder._pool.on_idle(
        lambda session: session.run_all(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
            (lock_name,),
        )
    )
    assert rows[0][0] == 0
    await blocker.release()
    assert await holder.holder(lock_name) is None  # nobody took the lock after stop()
    # close() stops a campaign too, a leading one after its on_demoted.
    told: list[str | None] = []
    closing = make_async_locker()
    leader = closing.election(lock_name, on_demoted=lambda term: told.append(term.reason))
    leader.start()
    assert await leader.wait_for_leadership(BOUND) is not None
    await closing.close()
    assert told == ["stopped"]
    assert await holder.holder(lock_name) is None


async def test_blocking_and_async_candidates_elect_one_leader(
    make_async_locker: MakeAsync, server: Any, lock_name: str
) -> None:
    blocking = await asyncio.to_thread(lambda: Locker(**server.connect_kwargs()))
    try:
        elder = blocking.election(lock_name, identity="blocking-1")
        await asyncio.to_thread(elder.start)
        assert await asyncio.to_thread(elder.wait_for_leadership, BOUND) is not None
        election = make_async_locker().election(lock_name, identity="async-1").start()
        assert await election.leader() == "blocking-1"
        assert await election.wait_for_leadership(0.2) is None
        await asyncio.to_thread(elder.stop)
        assert await election.wait_for_leadership(BOUND) is not None
        assert await election.leader() == "async-1"
        await election.stop()
    finally:
        await asyncio.to_thread(blocking.close)
