"""A lock holder or waiter in a process of its own, driven over its stdin and stdout.

Run as ``python tests/lockworker.py '<json>'``, the JSON object holding ``driver``, ``connect``
(the ``connect()`` keyword arguments), ``name`` and ``timeout``. The process:

1. connects (a :class:`~PyMySQLLock.Locker`) and prints ``ready``;
2. calls ``acquire(timeout)`` and prints ``acquired <connection id>`` or ``timeout``;
3. waits for a ``release`` line on stdin (or its end), releases, prints ``released`` and exits.

Any exception is printed as ``error <type>: <message>`` and the exit status is 1. The tests kill
it with ``SIGKILL`` at the moment that matters, so it must never need to clean up to be correct.
"""

from __future__ import annotations

import json
import sys

from PyMySQLLock import Locker


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        with Locker(driver=spec["driver"], **spec["connect"]) as locker:
            lock = locker.lock(spec["name"])
            say("ready")
            if not lock.acquire(spec["timeout"]):
                say("timeout")
                return 0
            say(f"acquired {lock.connection_id}")
            for line in sys.stdin:
                if line.strip() == "release":
                    break
            lock.release()
            say("released")
    except Exception as exc:  # noqa: BLE001 - reported to the test through stdout
        say(f"error {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
