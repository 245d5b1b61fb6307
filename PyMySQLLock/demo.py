"""``pymysqllock demo``: worker processes take turns on one lock, shown as a live timeline.

Each worker is a separate Python process with its own :class:`~PyMySQLLock.Locker`. It reports
on its stdout, one JSON object a line, when it starts waiting, when it holds the lock and when
its critical section ends (just *before* it releases, so that the recorded section is inside
the time it really held the lock). The demo prints these events in time order, SIGKILLs one
holder in the middle of its critical section to show that the server frees the lock of a dead
process, and checks at the end that no two critical sections overlapped.

Timestamps are :func:`time.monotonic`, whose clock is shared by all processes of a machine on
Linux and macOS, so the workers' times can be compared.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import random
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from .errors import LockError
from .locker import Locker

__all__ = ["Section", "find_overlaps", "run_demo", "worker_main"]

# How the demo hands its settings to a worker: the environment, never the command line, which
# any user can read with ps (the URL may hold a password).
_URL_ENV = "PYMYSQLLOCK_DEMO_URL"
_LOCK_ENV = "PYMYSQLLOCK_DEMO_LOCK"
_ROUNDS_ENV = "PYMYSQLLOCK_DEMO_ROUNDS"
_DRIVER_ENV = "PYMYSQLLOCK_DEMO_DRIVER"
_SEED_ENV = "PYMYSQLLOCK_DEMO_SEED"
_WORKER_CODE = "from PyMySQLLock.demo import worker_main; raise SystemExit(worker_main())"

ROUNDS = 3
#: Seconds a worker holds the lock, and rests between two turns.
HOLD_SECONDS = (0.10, 0.25)
REST_SECONDS = (0.01, 0.05)
#: How long the victim holds the lock before the demo kills it.
KILL_AFTER = 0.3
#: Events are printed this long after they happened, so that those of different workers,
#: read from different pipes, can be put in time order first.
_REORDER_SECONDS = 0.05
#: The whole demo normally takes a few seconds; past this something is stuck.
_DEADLINE_SECONDS = 45.0

EXIT_OK = 0
EXIT_OVERLAP = 1
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70


# --------------------------------------------------------------------------- worker


def _emit(event: str, **data: Any) -> None:
    record = {"event": event, "t": time.monotonic(), **data}
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def worker_main() -> int:
    """Body of a worker process; its settings come from the environment.

    After each "hold" event it reads one line from stdin: ``go`` (finish the critical section
    and release) or ``stay`` (hold until the demo kills this process).

    :returns: the exit status.
    """
    url = os.environ[_URL_ENV]
    name = os.environ[_LOCK_ENV]
    rounds = int(os.environ[_ROUNDS_ENV])
    driver = os.environ.get(_DRIVER_ENV) or None
    rng = random.Random(os.environ.get(_SEED_ENV))
    options: dict[str, Any] = {} if driver is None else {"driver": driver}
    with Locker.from_url(url, **options) as locker:
        lock = locker.lock(name)
        for _ in range(rounds):
            _emit("wait")
            lock.acquire()
            _emit("hold", connection=lock.connection_id)
            if sys.stdin.readline().strip() == "stay":
                time.sleep(_DEADLINE_SECONDS)  # the demo SIGKILLs this process meanwhile
                return EXIT_SOFTWARE
            time.sleep(rng.uniform(*HOLD_SECONDS))
            _emit("end")  # still held: the section ends before the release starts
            lock.release()
            time.sleep(rng.uniform(*REST_SECONDS))
    _emit("done")
    return EXIT_OK


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Section:
    """One critical section: from when a worker held the lock until it released or died.

    :param worker: the worker number.
    :param start: :func:`time.monotonic` when the lock was held.
    :param end: when the section ended (before the release), or when the worker was killed.
    """

    worker: int
    start: float
    end: float


def find_overlaps(sections: list[Section]) -> list[tuple[Section, Section]]:
    """Find critical sections that overlap.

    :param sections: the sections, in any order.
    :returns: pairs (earlier, later) where the later one started before the earlier ended.
    """
    overlaps = []
    latest: Section | None = None
    for section in sorted(sections, key=lambda s: (s.start, s.end)):
        if latest is not None and section.start < latest.end:
            overlaps.append((latest, section))
        if latest is None or section.end > latest.end:
            latest = section
    return overlaps


# --------------------------------------------------------------------------- the demo


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    buffer: bytes = b""
    state: str = "starting"
    open_since: float | None = None
    holds: int = 0
    closed: bool = False

    def tell(self, answer: str) -> None:
        stdin = self.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.write(answer.encode() + b"\n")
                stdin.flush()

    def last_error(self) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else f"exit status {self.process.returncode}"


@dataclass
class _Timeline:
    """Events waiting to be printed in time order, and the record of critical sections."""

    out: TextIO
    origin: float
    pending: list[tuple[float, int, int, str, dict[str, Any]]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    handoffs: list[float] = field(default_factory=list)
    kill: tuple[int, float] | None = None
    takeover: tuple[int, float] | None = None
    last_end: float | None = None
    _sequence: int = 0

    def add(self, when: float, worker: int, event: str, data: dict[str, Any]) -> None:
        self._sequence += 1
        heapq.heappush(self.pending, (when, self._sequence, worker, event, data))

    def flush(self, until: float) -> None:
        while self.pending and self.pending[0][0] <= until:
            when, _, worker, event, data = heapq.heappop(self.pending)
            self._show(when, worker, event, data)

    def _line(self, when: float, worker: int, text: str) -> None:
        self.out.write(f"  {when - self.origin:7.3f}s  worker {worker}  {text}\n")
        self.out.flush()

    def _show(self, when: float, worker: int, event: str, data: dict[str, Any]) -> None:
        if event == "wait":
            self._line(when, worker, "waiting")
        elif event == "hold":
            text = f"HOLDS the lock (connection {data.get('connection')})"
            if self.kill is not None and self.takeover is None and when >= self.kill[1]:
                self.takeover = (worker, when - self.kill[1])
                text += (
                    f", {(when - self.kill[1]) * 1000:.1f} ms after the kill: the server "
                    "freed the dead worker's lock"
                )
            elif self.last_end is not None:
                handoff = when - self.last_end
                self.handoffs.append(handoff)
                text += f", hand-off {handoff * 1000:.1f} ms"
            if data.get("victim"):
                text += f"; it will be killed in {KILL_AFTER:.1f}s"
            self._line(when, worker, text)
        elif event == "end":
            self.last_end = when
            self._line(when, worker, f"released after {data['held'] * 1000:.0f} ms")
        elif event == "killed":
            self.last_end = when
            self._line(when, worker, "KILLED with SIGKILL while holding the lock")
        elif event == "done":
            self._line(when, worker, "finished")


class _DemoFailure(Exception):
    """The demo could not be carried out (a worker failed, or it got stuck)."""


class _Demo:
    def __init__(self, url: str, workers: int, driver: str | None, out: TextIO) -> None:
        self.url = url
        self.count = workers
        self.driver = driver
        self.out = out
        self.lock_name = f"pymysqllock-demo-{os.getpid()}-{random.randrange(1 << 30):x}"
        self.workers: dict[int, _Worker] = {}
        self.timeline = _Timeline(out, time.monotonic())
        self.total_holds = 0
        self.victim: _Worker | None = None
        self.kill_due: float | None = None

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self, scratch: Path) -> int:
        self.write(
            f"{self.count} worker processes take turns on lock {self.lock_name!r}, "
            f"{ROUNDS} times each; one holder is killed mid-way\n"
        )
        self.write(f"  {'time':>8}  worker    event")
        selector = selectors.DefaultSelector()
        self.timeline.origin = time.monotonic()
        try:
            for number in range(1, self.count + 1):
                worker = self._start(number, scratch)
                self.workers[number] = worker
                stdout = worker.process.stdout
                if stdout is not None:
                    selector.register(stdout, selectors.EVENT_READ, worker)
            failure = self._loop(selector)
        finally:
            selector.close()
            for worker in self.workers.values():
                if worker.process.poll() is None:
                    worker.process.kill()
                worker.process.wait()
                for stream in (worker.process.stdin, worker.process.stdout):
                    if stream is not None:
                        with contextlib.suppress(OSError):
                            stream.close()
        self.timeline.flush(float("inf"))
        if failure is not None:
            raise _DemoFailure(failure)
        return self._summary()

    def _start(self, number: int, scratch: Path) -> _Worker:
        env = dict(os.environ)
        env.update(
            {
                _URL_ENV: self.url,
                _LOCK_ENV: self.lock_name,
                _ROUNDS_ENV: str(ROUNDS),
                _DRIVER_ENV: self.driver or "",
                _SEED_ENV: f"{os.getpid()}-{number}",
            }
        )
        stderr_path = scratch / f"worker-{number}.err"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [sys.executable, "-c", _WORKER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        return _Worker(number, process, stderr_path)

    def _loop(self, selector: selectors.BaseSelector) -> str | None:
        """Read events until every worker is gone.

        :returns: why the demo failed, or ``None``.
        """
        deadline = time.monotonic() + _DEADLINE_SECONDS
        while any(not worker.closed for worker in self.workers.values()):
            now = time.monotonic()
            if now > deadline:
                return f"the demo did not finish within {_DEADLINE_SECONDS:.0f} s"
            if self.kill_due is not None and now >= self.kill_due:
                self._kill_victim()
            waits = [deadline - now, 0.5]
            if self.kill_due is not None:
                waits.append(self.kill_due - now)
            if self.timeline.pending:
                waits.append(_REORDER_SECONDS / 2)
            for key, _ in selector.select(max(min(waits), 0.0)):
                worker: _Worker = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    worker.closed = True
                    continue
                worker.buffer += chunk
                *lines, worker.buffer = worker.buffer.split(b"\n")
                for line in lines:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # not ours: a driver or library printing to stdout
                    self._event(worker, record)
            self.timeline.flush(time.monotonic() - _REORDER_SECONDS)
        for worker in self.workers.values():
            code = worker.process.wait()
            if worker is not self.victim and code != 0:
                return f"worker {worker.number} failed: {worker.last_error()}"
        return None

    def _event(self, worker: _Worker, record: dict[str, Any]) -> None:
        event, when = str(record["event"]), float(record["t"])
        data = dict(record)
        worker.state = event
        if event == "hold":
            worker.open_since = when
            self.total_holds += 1
            if self._choose_victim(worker):
                data["victim"] = True
                worker.tell("stay")
                self.victim = worker
                self.kill_due = time.monotonic() + KILL_AFTER
            else:
                worker.tell("go")
        elif event == "end" and worker.open_since is not None:
            data["held"] = when - worker.open_since
            self.timeline.sections.append(Section(worker.number, worker.open_since, when))
            worker.open_since = None
        self.timeline.add(when, worker.number, event, data)

    def _choose_victim(self, holder: _Worker) -> bool:
        """Kill once, mid-way, and only while another worker waits to take over."""
        if self.victim is not None or self.total_holds <= self.count:
            return False
        return any(w is not holder and w.state == "wait" for w in self.workers.values())

    def _kill_victim(self) -> None:
        victim = self.victim
        self.kill_due = None
        if victim is None:
            return
        when = time.monotonic()
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        if victim.open_since is not None:
            # The section ends at the kill at the latest: the server can only hand the lock
            # on once the process, and with it the connection, is gone.
            self.timeline.sections.append(Section(victim.number, victim.open_since, when))
            victim.open_since = None
        self.timeline.kill = (victim.number, when)
        self.timeline.add(when, victim.number, "killed", {})

    def _summary(self) -> int:
        timeline = self.timeline
        sections = timeline.sections
        overlaps = find_overlaps(sections)
        per_worker = dict.fromkeys(self.workers, 0)
        for section in sections:
            per_worker[section.worker] += 1
        self.write("")
        self.write(
            f"summary: {len(sections)} critical sections by {len(self.workers)} workers ("
            + ", ".join(f"worker {n}: {c}" for n, c in sorted(per_worker.items()))
            + ")"
        )
        if timeline.handoffs:
            handoffs = sorted(h * 1000 for h in timeline.handoffs)
            self.write(
                f"  hand-offs: min {handoffs[0]:.1f} ms, median "
                f"{statistics.median(handoffs):.1f} ms, max {handoffs[-1]:.1f} ms"
            )
        if timeline.kill is not None and timeline.takeover is not None:
            self.write(
                f"  worker {timeline.kill[0]} was SIGKILLed while holding the lock; the server "
                f"freed it and worker {timeline.takeover[0]} took over "
                f"{timeline.takeover[1] * 1000:.1f} ms later"
            )
        elif timeline.kill is not None:
            self.write(f"  worker {timeline.kill[0]} was SIGKILLed while holding the lock")
        else:
            self.write("  no holder was killed: no other worker was waiting at the right time")
        self.write(f"  overlapping critical sections: {len(overlaps)}")
        for earlier, later in overlaps:
            self.write(
                f"    worker {later.worker} started {(earlier.end - later.start) * 1000:.1f} ms "
                f"before worker {earlier.worker} ended"
            )
        if overlaps:
            self.write("FAILED: two workers held the lock at the same time")
            return EXIT_OVERLAP
        self.write("OK: no two workers ever held the lock at the same time")
        return EXIT_OK


def _check_server(url: str, driver: str | None) -> str:
    """Connect once, so that a wrong URL is one clear error before any worker starts.

    :returns: the server's label, e.g. ``MariaDB 10.11.6``.
    """
    options: dict[str, Any] = {} if driver is None else {"driver": driver}
    with Locker.from_url(url, **options) as locker:
        return locker.server.label


def run_demo(
    url: str | None, *, workers: int = 4, driver: str | None = None, out: TextIO | None = None
) -> int:
    """Run the demo.

    :param url: the server to use; ``None`` starts a throwaway local server for the demo and
        removes it afterwards.
    :param workers: how many worker processes (at least 2).
    :param driver: the driver the workers use, or ``None`` for the default.
    :param out: where the timeline goes; default stdout.
    :returns: 0 if no critical sections overlapped, 1 if some did, 69 if the server or a
        worker failed.
    """
    stream: TextIO = sys.stdout if out is None else out
    from .testing import ServerStartError, ThrowawayServer

    server: ThrowawayServer | None = None
    try:
        if url is None:
            stream.write("starting a throwaway database server for the demo... ")
            stream.flush()
            began = time.monotonic()
            server = ThrowawayServer()
            server.start()
            url = server.url
            stream.write(f"ready in {time.monotonic() - began:.1f} s (port {server.port})\n")
        label = _check_server(url, driver)
        stream.write(f"server: {label}\n")
        with tempfile.TemporaryDirectory(prefix="pymysqllock-demo-") as scratch:
            return _Demo(url, workers, driver, stream).run(Path(scratch))
    except ServerStartError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        _fail(stream, f"cannot start a throwaway server: {first} (or pass --url)")
        return EXIT_UNAVAILABLE
    except (LockError, _DemoFailure) as exc:
        _fail(stream, str(exc))
        return EXIT_UNAVAILABLE
    finally:
        if server is not None:
            server.close()
            stream.write("removed the throwaway server\n")
            stream.flush()


def _fail(stream: IO[str], message: str) -> None:
    stream.write("\n")
    stream.flush()
    sys.stderr.write(f"pymysqllock: error: {message}\n")
    sys.stderr.flush()
