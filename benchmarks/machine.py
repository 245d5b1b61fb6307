"""The report header: the machine, the servers and every library version measured."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["describe"]

_DISTRIBUTIONS = (
    ("PyMySQL", "PyMySQL"),
    ("mysqlclient", "mysqlclient"),
    ("mysql-connector-python", "mysql-connector-python"),
    ("redis", "redis"),
    ("python-redis-lock", "python-redis-lock"),
    ("psycopg", "psycopg"),
)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head}{' + local changes' if dirty else ''}"


def _connector_implementation() -> str:
    try:
        connector = importlib.import_module("mysql.connector")
    except ImportError:
        return ""
    # The C extension is used only when it loads; on Debian 12 the wheel's one does not.
    return "C extension" if getattr(connector, "HAVE_CEXT", False) else "pure Python"


def describe(
    server_version: str, redis_version: str | None, pg_version: str | None
) -> dict[str, Any]:
    """Everything the header prints, in order."""
    from PyMySQLLock import __version__

    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    versions = []
    for label, distribution in _DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        if distribution == "mysql-connector-python" and version != "not installed":
            version += f" ({_connector_implementation()})"
        versions.append(f"{label} {version}")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cores} cores ({usable} usable), {_cpu_model()}",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "server": server_version,
        "PyMySQLLock": f"{__version__} ({_git_revision()})",
        "drivers": ", ".join(versions[:3]),
        "peers": ", ".join(
            [
                *versions[3:],
                f"redis-server {redis_version or 'skipped'}",
                f"PostgreSQL {pg_version or 'skipped'}",
            ]
        ),
    }
