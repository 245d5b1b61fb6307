"""Reading a process's threads, memory and CPU time from ``/proc`` (Linux)."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["cpu_seconds", "machine_busy", "os_threads", "rss_bytes"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _status(pid: int | str, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def os_threads(pid: int | str = "self") -> int:
    """Threads of the process as the kernel counts them (C-level threads included)."""
    return _status(pid, "Threads")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size."""
    return _status(pid, "VmRSS") * 1024


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of the process (all its threads), at clock-tick resolution."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the command name.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _cpu_totals() -> tuple[int, int]:
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # all, idle + iowait


def machine_busy(seconds: float = 1.0) -> float:
    """Percent of all CPUs busy during the next ``seconds`` (whoever used them)."""
    total_before, idle_before = _cpu_totals()
    time.sleep(seconds)
    total_after, idle_after = _cpu_totals()
    total = max(total_after - total_before, 1)
    return 100.0 * (1 - (idle_after - idle_before) / total)
