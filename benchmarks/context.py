"""What every benchmark gets: the sizes of this run, the servers and the drivers to measure."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from .backends import Spec
from .servers import MySQLTarget, PgTarget, RedisTarget

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """The shared state of one run.

    :param reps: repetitions of every figure (the median is reported).
    :param quick: small sizes, for a smoke run; targets are then not judged.
    :param mysql: the main throwaway server.
    :param mysql_pid: its process id, to read its CPU time.
    :param drivers: the drivers that import.
    :param redis: the private Redis, or ``None`` (see :attr:`redis_skipped`).
    :param pg: the private PostgreSQL, or ``None`` (see :attr:`pg_skipped`).
    """

    reps: int
    quick: bool
    mysql: MySQLTarget
    mysql_pid: int
    drivers: list[str]
    redis: RedisTarget | None = None
    redis_skipped: str = ""
    pg: PgTarget | None = None
    pg_skipped: str = ""
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        """Progress on stderr, so that stdout is only the report."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def size(self, full: int, quick: int) -> int:
        """``full`` normally, ``quick`` with ``--quick``."""
        return quick if self.quick else full

    def mysql_specs(self, kinds: tuple[str, ...]) -> list[Spec]:
        """One spec per kind and driver, drivers outermost."""
        return [Spec(kind, driver, self.mysql) for driver in self.drivers for kind in kinds]

    def peer_specs(self) -> list[Spec]:
        """The peers that are running."""
        specs = []
        if self.redis is not None:
            specs.append(Spec("redis-lock", "", self.redis))
        if self.pg is not None:
            specs.append(Spec("pg-advisory", "", self.pg))
        return specs

    def peer_notes(self) -> list[str]:
        """Why a peer is missing, for the section notes."""
        notes = []
        if self.redis is None:
            notes.append(f"python-redis-lock skipped: {self.redis_skipped}")
        if self.pg is None:
            notes.append(f"PostgreSQL advisory lock skipped: {self.pg_skipped}")
        return notes
