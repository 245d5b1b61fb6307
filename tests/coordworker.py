"""An election candidate or a semaphore user in a process of its own, driven over stdin/stdout.

Run as ``python tests/coordworker.py '<json>'``; the JSON object holds ``driver``, ``connect``
(the ``connect()`` keyword arguments), ``mode`` and the mode's settings. Every line it prints
is flushed at once; an exception is printed as ``error <type>: <message>`` (exit status 1).

``mode="election"`` (``name``, ``identity``, ``interval``): campaigns; prints ``ready``, then
``elected <connection id>`` and ``demoted <reason>`` as terms start and end. Reads ``resign``
and ``stop`` lines from stdin; ``stop`` (or the end of stdin) stops and exits.

``mode="semaphore"`` (``name``, ``limit``, ``count``, ``hold``, ``counter``): acquires the
semaphore ``count`` times, holding it ``hold`` seconds each time, and counts the holders in the
file ``counter`` (outside the library: an ``flock``-protected ``"<now> <max>"`` pair); prints
``done``.

``mode="hold"`` (``name``, ``limit``): acquires the semaphore once, prints ``acquired <slot>``
and holds it until stdin ends; the tests SIGKILL it.

With an asyncio ``driver`` (``aiomysql``, ``asyncmy``) each mode runs the same on an
``AsyncLocker`` (stdin is read in the loop's executor: the worker's own thread, not the
library's).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sys
import time
from typing import Any

from PyMySQLLock import Locker, Term
from PyMySQLLock.aio import ASYNC_DRIVER_NAMES, AsyncLocker, AsyncTerm


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def count_holders(path: str, change: int) -> None:
    """Add ``change`` to the holder count in ``path``, and keep the maximum seen."""
    with open(path, "r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        now, most = (int(part) for part in (file.read().split() or ["0", "0"]))
        now += change
        file.seek(0)
        file.truncate()
        file.write(f"{now} {max(most, now)}")


def _election_options(spec: dict[str, Any], elected: Any, demoted: Any) -> dict[str, Any]:
    return {
        "identity": spec["identity"],
        "on_elected": elected,
        "on_demoted": demoted,
        "refresh_interval_secs": spec["interval"],
    }


def election(locker: Locker, spec: dict[str, Any]) -> None:
    def elected(term: Term) -> None:
        say(f"elected {term.election.lock.connection_id}")

    def demoted(term: Term) -> None:
        say(f"demoted {term.reason}")

    candidate = locker.election(spec["name"], **_election_options(spec, elected, demoted))
    with candidate:
        say("ready")
        for line in sys.stdin:
            if line.strip() == "resign":
                candidate.resign()
            elif line.strip() == "stop":
                break


def semaphore(locker: Locker, spec: dict[str, Any]) -> None:
    gate = locker.semaphore(spec["name"], spec["limit"], timeout=60)
    say("ready")
    for _ in range(spec["count"]):
        with gate:
            count_holders(spec["counter"], +1)
            time.sleep(spec["hold"])  # the protected work
            count_holders(spec["counter"], -1)
    say("done")


def hold(locker: Locker, spec: dict[str, Any]) -> None:
    gate = locker.semaphore(spec["name"], spec["limit"])
    with gate:
        say(f"acquired {gate.slot}")
        sys.stdin.read()


async def aio_election(locker: AsyncLocker, spec: dict[str, Any]) -> None:
    async def elected(term: AsyncTerm) -> None:  # a coroutine callback, on purpose
        say(f"elected {term.election.lock.connection_id}")

    def demoted(term: AsyncTerm) -> None:
        say(f"demoted {term.reason}")

    candidate = locker.election(spec["name"], **_election_options(spec, elected, demoted))
    async with candidate:
        say("ready")
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if line == "resign":
                await candidate.resign()
            elif line in ("stop", ""):
                break


async def aio_semaphore(locker: AsyncLocker, spec: dict[str, Any]) -> None:
    gate = locker.semaphore(spec["name"], spec["limit"], timeout=60)
    say("ready")
    for _ in range(spec["count"]):
        async with gate:
            count_holders(spec["counter"], +1)
            await asyncio.sleep(spec["hold"])  # the protected work
            count_holders(spec["counter"], -1)
    say("done")


async def aio_hold(locker: AsyncLocker, spec: dict[str, Any]) -> None:
    async with locker.semaphore(spec["name"], spec["limit"]) as gate:
        say(f"acquired {gate.slot}")
        await asyncio.to_thread(sys.stdin.read)


async def aio_main(spec: dict[str, Any]) -> None:
    modes = {"election": aio_election, "semaphore": aio_semaphore, "hold": aio_hold}
    async with AsyncLocker(driver=spec["driver"], **spec["connect"]) as locker:
        await modes[spec["mode"]](locker, spec)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    modes = {"election": election, "semaphore": semaphore, "hold": hold}
    try:
        if spec["driver"] in ASYNC_DRIVER_NAMES:
            asyncio.run(aio_main(spec))
            return 0
        with Locker(driver=spec["driver"], **spec["connect"]) as locker:
            modes[spec["mode"]](locker, spec)
    except Exception as exc:  # noqa: BLE001 - reported to the test through stdout
        say(f"error {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
