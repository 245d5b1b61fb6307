"""Counting semaphores on the asyncio API (``AsyncLocker.semaphore``) under aiomysql and asyncmy.

The promises of the blocking semaphore (tests/test_semaphore.py): never more than ``limit``
holders (counted outside the library, by the server and by the tasks), every waiter gets its
turn, the head waiter is handed a freed slot by the server, a lost slot is reported; blocking
and asyncio holders share one ``limit``. And the asyncio point: a task cancelled while it waits
leaves no slot, no turnstile and no session behind.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Callable

import pytest

from PyMySQLLock import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockAlreadyHeldError,
    Locker,
    LockLostError,
    LockNotHeldError,
    LockTimeoutError,
)
from PyMySQLLock.aio import AsyncLocker, AsyncSemaphore
from PyMySQLLock.slots import MAX_LIMIT, queue_name, slot_name

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

MakeAsync = Callable[..., AsyncLocker]


async def _sql(admin: AsyncLocker, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run one statement on an idle session of ``admin`` (asked on the loop, no thread)."""
    return await admin._pool.on_idle(lambda session: session.run_all(statement, params))


async def _held_slots(admin: AsyncLocker, name: str, limit: int) -> dict[int, int]:
    """Held slots by number, as the server reports them."""
    marks = ", ".join(["IS_USED_LOCK(%s)"] * limit)
    names = tuple(slot_name(name, n) for n in range(1, limit + 1))
    row = (await _sql(admin, f"SELECT {marks}", names))[0]
    return {n: int(holder) for n, holder in enumerate(row, 1) if holder is not None}


async def _waiting(admin: AsyncLocker, name: str) -> int:
    """How many sessions wait in GET_LOCK for a lock whose name contains ``name``."""
    rows = await _sql(
        admin,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        "WHERE STATE = 'User lock' AND INSTR(INFO, %s) > 0",
        (name,),
    )
    return int(rows[0][0])


async def _until_waiting(admin: AsyncLocker, name: str, count: int = 1) -> None:
    """Wait until ``count`` sessions wait for ``name`` (polls: no event crosses sessions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await _waiting(admin, name) < count:
        assert loop.time() < deadline, f"fewer than {count} sessions wait for {name!r}"
        await asyncio.sleep(0.01)


async def test_up_to_limit_holders_then_timeout(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    admin = make_async_locker()
    first, second, third = (make_async_locker().semaphore(lock_name, 2) for _ in range(3))
    assert isinstance(first, AsyncSemaphore)
    assert await first.acquire(0) is True
    assert await second.acquire(0) is True
    assert {first.slot, second.slot} == {1, 2}
    assert await third.acquire(0) is False
    assert await third.acquire(0.2) is False  # waits on the server, then gives up
    held = await _held_slots(admin, lock_name, 2)
    assert first.slot_lock is not None
    assert second.slot_lock is not None
    assert held == {
        first.slot: first.slot_lock.connection_id,
        second.slot: second.slot_lock.connection_id,
    }
    assert await first.holders() == held
    assert await first._locker.holder(queue_name(lock_name)) is None
    await first.release()
    assert await third.acquire(0) is True
    await second.release()
    await third.release()
    assert await _held_slots(admin, lock_name, 2) == {}


async def test_waiter_gets_a_released_slot_from_the_server(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    admin = make_async_locker()
    holders = [make_async_locker().semaphore(lock_name, 3) for _ in range(3)]
    for each in holders:
        assert await each.acquire(0)
    waiter = make_async_locker().semaphore(lock_name, 3)
    waiting = asyncio.ensure_future(waiter.acquire(30))
    # The head waiter waits on every slot at once, each on a session of its own.
    await _until_waiting(admin, lock_name + "#", 3)
    freed = holders[1].slot
    await holders[1].release()
    assert await asyncio.wait_for(waiting, 30) is True
    assert waiter.slot == freed
    # acquire() returned at once; its other waits are then ended, and the turnstile handed on.
    assert waiter._settling is not None
    await asyncio.wait_for(asyncio.shield(waiter._settling), 10)
    assert await _waiting(admin, lock_name + "#") == 0
    assert await waiter._locker.holder(queue_name(lock_name)) is None
    await waiter.release()
    for each in (holders[0], holders[2]):
        await each.release()


async def test_with_block_and_state_errors(make_async_locker: MakeAsync, lock_name: str) -> None:
    locker = make_async_locker()
    gate = locker.semaphore(lock_name, 2, timeout=0)
    with pytest.raises(LockNotHeldError):
        await gate.release()
    with pytest.raises(LockNotHeldError):
        gate.ensure_held()
    async with gate:
        assert gate.locked()
        gate.ensure_held()
        with pytest.raises(LockAlreadyHeldError):
            await gate.acquire(0)
    assert not gate.locked()
    assert gate.slot is None
    other = locker.semaphore(lock_name, 1, timeout=0)
    async with locker.semaphore(lock_name, 1):
        with pytest.raises(LockTimeoutError, match="limit 1"):
            await other.__aenter__()


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        (0, InvalidArgumentError),
        (MAX_LIMIT + 1, InvalidArgumentError),
        (True, InvalidArgumentTypeError),
        (2.0, InvalidArgumentTypeError),
    ],
)
async def test_bad_limits_are_refused(
    make_async_locker: MakeAsync, lock_name: str, limit: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="limit"):
        make_async_locker().semaphore(lock_name, limit)


async def test_lost_slot_is_reported(make_async_locker: MakeAsync, lock_name: str) -> None:
    told: asyncio.Queue[AsyncSemaphore] = asyncio.Queue()

    async def on_lost(semaphore: AsyncSemaphore) -> None:
        await told.put(semaphore)

    gate = make_async_locker().semaphore(lock_name, 2, refresh_interval_secs=0.2, on_lost=on_lost)
    assert await gate.acquire(0)
    assert gate.slot_lock is not None
    await _sql(make_async_locker(), "KILL CONNECTION %s", (gate.slot_lock.connection_id,))
    assert await asyncio.wait_for(told.get(), 10) is gate
    assert gate.lost
    with pytest.raises(LockLostError):
        gate.ensure_held()
    with pytest.raises(LockLostError):
        await gate.__aexit__(None, None, None)


async def test_cancelled_waiters_leave_nothing_held(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    admin = make_async_locker()
    holders = [make_async_locker().semaphore(lock_name, 2) for _ in range(2)]
    for each in holders:
        assert await each.acquire(0)
    held = await _held_slots(admin, lock_name, 2)
    locker = make_async_locker()
    head, queued = locker.semaphore(lock_name, 2), locker.semaphore(lock_name, 2)
    head_task = asyncio.ensure_future(head.acquire(30))
    await _until_waiting(admin, lock_name + "#", 2)  # the head waits on both slots
    queued_task = asyncio.ensure_future(queued.acquire(30))
    await _until_waiting(admin, queue_name(lock_name))  # the next one, on the turnstile
    for task in (queued_task, head_task):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not head.locked()
    assert not queued.locked()
    # Nothing of theirs is held, and nobody waits any more.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await _waiting(admin, lock_name + "#"):
        assert loop.time() < deadline, "a cancelled wait is still on the server"
        await asyncio.sleep(0.01)
    assert await _held_slots(admin, lock_name, 2) == held
    assert await locker.holder(queue_name(lock_name)) is None
    assert not locker._pool._in_use, "a session of a cancelled acquire is still in use"
    # The slots still work for the next comer.
    await holders[0].release()
    assert await head.acquire(5)
    await head.release()
    await holders[1].release()


async def test_blocking_and_async_holders_share_the_limit(
    make_async_locker: MakeAsync, server: Any, lock_name: str
) -> None:
    blocking = await asyncio.to_thread(lambda: Locker(**server.connect_kwargs()))
    try:
        gate = blocking.semaphore(lock_name, 2)
        assert await asyncio.to_thread(gate.acquire, 0)
        first, second = (make_async_locker().semaphore(lock_name, 2) for _ in range(2))
        assert await first.acquire(0)
        assert await second.acquire(0) is False
        assert {gate.slot, first.slot} == {1, 2}
        await asyncio.to_thread(gate.release)
        assert await second.acquire(5)
        await first.release()
        await second.release()
    finally:
        await asyncio.to_thread(blocking.close)


async def test_tasks_never_exceed_the_limit_and_all_get_turns(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    limit, rounds = 2, 4
    lockers = [make_async_locker() for _ in range(3)]
    inside = 0
    most = 0
    turns: dict[int, int] = {}

    async def worker(number: int) -> None:
        nonlocal inside, most
        gate = lockers[number % len(lockers)].semaphore(lock_name, limit, timeout=60)
        for _ in range(rounds):
            async with gate:
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)  # work while holding: others must wait
                inside -= 1
            turns[number] = turns.get(number, 0) + 1

    await asyncio.wait_for(asyncio.gather(*(worker(number) for number in range(6))), 80)
    assert most <= limit
    assert turns == dict.fromkeys(range(6), rounds)


async def test_random_cancellations_leave_no_slot_or_session(
    make_async_locker: MakeAsync, lock_name: str
) -> None:
    """Acquires cancelled at random moments while other tasks take and give back slots.

    Each cancelled acquire is somewhere in its tries, on the turnstile, waiting on every slot,
    or granted; afterwards its object holds nothing, and at the end the server shows no slot,
    no turnstile and no wait, and the locker no session in use.
    """
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    limit = 2
    cycler_locker, locker, admin = make_async_locker(), make_async_locker(), make_async_locker()
    stop = asyncio.Event()

    async def cycle() -> None:  # keeps the slots changing hands
        gate = cycler_locker.semaphore(lock_name, limit)
        while not stop.is_set():
            async with gate:
                await asyncio.sleep(rng.uniform(0, 0.01))

    cyclers = [asyncio.ensure_future(cycle()) for _ in range(limit)]
    outcomes: dict[str, int] = {"acquired": 0, "cancelled": 0}
    for _ in range(40):
        gate = locker.semaphore(lock_name, limit)
        task = asyncio.ensure_future(gate.acquire(30))
        await asyncio.wait({task}, timeout=rng.uniform(0, 0.03))
        task.cancel()
        try:
            got = await task
        except asyncio.CancelledError:
            got = None
        if got:
            outcomes["acquired"] += 1
            assert gate.locked(), f"seed {seed}"
            await gate.release()
        else:
            outcomes["cancelled"] += 1
            assert not gate.locked(), f"seed {seed}"
            assert gate.slot is None, f"seed {seed}"
    stop.set()
    await asyncio.wait_for(asyncio.gather(*cyclers), 30)
    await asyncio.wait_for(asyncio.gather(*locker._tracked), 30)  # hand-ons under way
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await _held_slots(admin, lock_name, limit) or await _waiting(admin, lock_name + "#"):
        assert loop.time() < deadline, f"seed {seed}: a slot or a wait was left behind"
        await asyncio.sleep(0.01)
    assert await admin.holder(queue_name(lock_name)) is None, f"seed {seed}"
    assert not locker._pool._in_use, f"seed {seed}: a session is still in use"
    assert outcomes["cancelled"] > 0, (seed, outcomes)
