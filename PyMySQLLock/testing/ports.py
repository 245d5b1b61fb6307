"""Choosing a free TCP port for a throwaway server."""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

__all__ = ["ephemeral_port_range", "find_free_port", "port_is_free"]


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; a default elsewhere)."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 32768, 60999


def port_is_free(host: str, port: int) -> bool:
    """Whether *port* of *host* can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(host: str = "127.0.0.1") -> int:
    """Pick a port that is free now.

    Ports come from below the kernel's ephemeral range when possible: a port from that range
    could be taken as the local port of one of the thousands of client connections the tests
    open, and a restart of the server would then fail to bind it.

    :param host: the address the server will bind.
    :returns: a port number.
    """
    low, _high = ephemeral_port_range()
    if low > 11000:
        for _ in range(100):
            port = random.randint(10000, low - 1)
            if port_is_free(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
