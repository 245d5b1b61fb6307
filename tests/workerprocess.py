"""A test's worker script running in a process of its own, read line by line."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

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
