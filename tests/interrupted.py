"""A ``Thread.start`` that an interrupt cuts short, for the threads the library starts on demand."""

from __future__ import annotations

import threading

import pytest


class StartInterrupted:
    """``Thread.start`` that raises KeyboardInterrupt at its first call, before the thread runs.

    An interrupt landing between the line that records a new thread and its ``start()`` leaves
    exactly that: a recorded thread that never ran. The thread objects it refused are kept so
    that a test can start one late, as a real signal inside ``start()`` could.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refused: list[threading.Thread] = []
        self._start = threading.Thread.start
        monkeypatch.setattr(threading.Thread, "start", self)

    def __get__(self, thread: threading.Thread, owner: type) -> object:
        return lambda: self(thread)

    def __call__(self, thread: threading.Thread) -> None:
        if not self.refused:
            self.refused.append(thread)
            raise KeyboardInterrupt("injected before the thread started")
        self._start(thread)

    def start_late(self) -> None:
        """Start the refused thread now (it finds itself replaced)."""
        self._start(self.refused[0])
        self.refused[0].join(2)
