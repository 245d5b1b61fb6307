"""A test's worker script running in a process of its own, read line by line."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest


class WorkerProcess:
    """A worker script in a process of its own; its stdout lines arrive in :meth:`expect`.

    :param script: the script (``lockworker.py``, ``coordworker.py``).
    :param spec: the JSON-able settings, passed as its one argument.
    :param stderr_path: where its stderr goes (shown when it prints something unexpected).
    """

    def __init__(self, script: Path, spec: dict, stderr_path: Path) -> None:
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(
            target=self._read, name=f"{script.stem}-reader", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Wait for the next line, which must start with ``prefix``; :returns: the line."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"worker printed nothing within {timeout} s (expected {prefix!r})")
        if line is None or not line.startswith(prefix):
            self.proc.wait(10)
            pytest.fail(
                f"worker printed {line!r}, expected {prefix!r}; stderr:\n"
                + self._stderr_path.read_text(errors="replace")
            )
        return line

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """``SIGKILL`` the process and reap it."""
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._reader.join()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(BrokenPipeError):
                stream.close()
        self._stderr.close()


class Candidates:
    """Election candidates in processes of their own (``coordworker.py``); every line they
    print lands in one queue, tagged by process.
    """

    def __init__(
        self, script: Path, server: Any, driver: str, name: str, interval: float, tmp_path: Path
    ) -> None:
        self.lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.workers: list[WorkerProcess] = []
        self._spec = {
            "driver": driver,
            "connect": server.connect_kwargs(),
            "mode": "election",
            "name": name,
            "interval": interval,
        }
        self._tmp = tmp_path
        self._script = script
        self._threads: list[threading.Thread] = []

    def start(self, count: int) -> None:
        for n in range(count):
            spec = {**self._spec, "identity": f"proc-{n}"}
            worker = WorkerProcess(self._script, spec, self._tmp / f"candidate-{n}.stderr")
            worker.expect("ready")
            self.workers.append(worker)
            thread = threading.Thread(target=self._pump, args=(n, worker), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, number: int, worker: WorkerProcess) -> None:
        while True:
            line = worker._lines.get()
            self.lines.put((number, line))
            if line is None:
                return

    def next(self, timeout: float) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                number, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no candidate printed anything within {timeout} s")
            if line is not None:
                assert not line.startswith("error"), line
                return number, line

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for thread in self._threads:
            thread.join(10)


class CoordWorkers:
    """``start(**spec)``: started ``coordworker.py`` processes on one server, with one driver.

    :param script: the worker script.
    :param server: the server (its ``connect_kwargs()``).
    :param driver: the driver name, blocking or asyncio.
    :param tmp_path: where their stderr files go.
    """

    def __init__(self, script: Path, server: Any, driver: str, tmp_path: Path) -> None:
        self._base = {"driver": driver, "connect": server.connect_kwargs()}
        self._script = script
        self._tmp = tmp_path
        self.workers: list[WorkerProcess] = []

    def start(self, **spec: Any) -> WorkerProcess:
        path = self._tmp / f"worker-{len(self.workers)}.stderr"
        worker = WorkerProcess(self._script, {**self._base, **spec}, path)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
