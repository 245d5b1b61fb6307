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
"""

from __future__ import annotations

import fcntl
import json
import sys
import time
from typing import Any

from PyMySQLLock import Locker, Term


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


def election(locker: Locker, spec: dict[str, Any]) -> None:
    def elected(term: Term) -> None:
        say(f"elected {term.election.lock.connection_id}")

    def demoted(term: Term) -> None:
        say(f"demoted {term.reason}")

    candidate = locker.election(
        spec["name"],
        identity=spec["identity"],
        on_elected=elected,
        on_demoted=demoted,
        refresh_interval_secs=spec["interval"],
    )
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


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    modes = {"election": election, "semaphore": semaphore, "hold": hold}
    try:
        with Locker(driver=spec["driver"], **spec["connect"]) as locker:
            modes[spec["mode"]](locker, spec)
    except Exception as exc:  # noqa: BLE001 - reported to the test through stdout
        say(f"error {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
