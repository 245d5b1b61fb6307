"""Server detection: table-driven against recorded server answers, and live where it can run.

The recorded rows are what real servers announce in their handshake and answer to
``PROBE_SQL``; only MariaDB (plain and single-node Galera) can be started here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from PyMySQLLock import Locker, UnsupportedServerError
from PyMySQLLock.server import MARIADB, MYSQL, TIDB, ServerInfo
from PyMySQLLock.statements import acquire_failure
from PyMySQLLock.testing import ThrowawayServer

# (handshake version, PROBE_SQL rows, flavor, version, fractional, galera, aurora)
RECORDED: list[tuple[str, dict[str, str], str, tuple[int, int, int], bool, bool, bool]] = [
    (
        "5.5.5-10.11.19-MariaDB-0+deb12u1",
        {
            "version": "10.11.19-MariaDB-0+deb12u1",
            "version_comment": "Debian 12",
            "wsrep_on": "OFF",
        },
        MARIADB,
        (10, 11, 19),
        True,
        False,
        False,
    ),
    ("11.4.3-MariaDB", {"version": "11.4.3-MariaDB"}, MARIADB, (11, 4, 3), True, False, False),
    (
        "5.5.5-10.6.13-MariaDB-log",
        {"version": "10.6.13-MariaDB-log", "wsrep_on": "ON"},
        MARIADB,
        (10, 6, 13),
        True,
        True,
        False,
    ),
    (
        "8.0.39",
        {"version": "8.0.39", "version_comment": "MySQL Community Server - GPL"},
        MYSQL,
        (8, 0, 39),
        False,
        False,
        False,
    ),
    ("8.4.3", {"version": "8.4.3"}, MYSQL, (8, 4, 3), False, False, False),
    ("5.7.44-log", {"version": "5.7.44-log"}, MYSQL, (5, 7, 44), False, False, False),
    (
        "8.0.32-24",
        {
            "version": "8.0.32-24",
            "version_comment": "Percona XtraDB Cluster (GPL)",
            "wsrep_on": "ON",
        },
        MYSQL,
        (8, 0, 32),
        False,
        True,
        False,
    ),
    (
        "8.0.28",
        {"version": "8.0.28", "aurora_version": "3.04.0"},
        MYSQL,
        (8, 0, 28),
        False,
        False,
        True,
    ),
    (
        "8.0.11-TiDB-v7.5.0",
        {"version": "8.0.11-TiDB-v7.5.0", "tidb_version": "Release Version: v7.5.0"},
        TIDB,
        (8, 0, 11),
        False,
        False,
        False,
    ),
    # A proxy that refuses SHOW: only the handshake is known.
    ("8.0.36-vitess", {}, MYSQL, (8, 0, 36), False, False, False),
]


@pytest.mark.parametrize(
    ("announced", "variables", "flavor", "version", "fractional", "galera", "aurora"),
    RECORDED,
    ids=[row[0] for row in RECORDED],
)
def test_recorded_servers_are_recognised(
    announced: str,
    variables: dict[str, str],
    flavor: str,
    version: tuple[int, int, int],
    fractional: bool,
    galera: bool,
    aurora: bool,
) -> None:
    info = ServerInfo.from_version_string(announced, variables)
    assert info.flavor == flavor
    assert info.version == version
    assert info.fractional_timeouts is fractional
    assert info.galera is galera
    assert info.aurora is aurora
    assert bool(info.warnings()) is galera


def test_tidb_wait_limits() -> None:
    tidb = ServerInfo.from_version_string("8.0.11-TiDB-v7.5.0", {"tidb_version": "v7.5.0"})
    mysql = ServerInfo.from_version_string("8.4.3")
    assert tidb.max_wait_seconds == 3600
    assert tidb.min_wait_seconds == 1
    assert mysql.min_wait_seconds == 0
    old_tidb = ServerInfo.from_version_string("5.7.25-TiDB-v6.0.0", {"tidb_version": "v6.0.0"})
    assert any("6.1" in warning for warning in old_tidb.warnings())


@pytest.mark.parametrize(
    ("code", "needle"), [(1235, "MDEV-30473"), (1836, "writer endpoint")], ids=["galera", "aurora"]
)
def test_unsupported_server_errors_name_the_cause(code: int, needle: str) -> None:
    error = acquire_failure("job", code, "refused")
    assert isinstance(error, UnsupportedServerError)
    assert needle in str(error)
    assert error.server_code == code


def test_live_server_is_detected(server: Any) -> None:
    with Locker(**server.connect_kwargs()) as locker:
        info = locker.server
    assert info.flavor == server.flavor
    assert ".".join(map(str, info.version)) in server.version


GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")


@pytest.mark.lifecycle
@pytest.mark.mariadb_only
@pytest.mark.timeout(180)
def test_single_node_galera_warns_once_and_locks_locally(caplog: pytest.LogCaptureFixture) -> None:
    if not GALERA_PROVIDER.exists():
        pytest.fail(f"{GALERA_PROVIDER} is missing: install the Debian package galera-4")
    probe = ThrowawayServer()
    if probe.flavor != "mariadb":
        probe.close()
        pytest.skip("Galera needs a MariaDB server binary; this machine has only MySQL")
    probe.close()
    galera = ThrowawayServer(
        extra_args=(
            "--wsrep-on=ON",
            f"--wsrep-provider={GALERA_PROVIDER}",
            "--wsrep-cluster-address=gcomm://",
            "--wsrep-new-cluster",
            "--binlog-format=ROW",
            # The node's group communication port must not clash with a parallel run.
            "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:0;pc.recovery=FALSE",
            "--innodb-autoinc-lock-mode=2",
        ),
        use_template=False,
    )
    try:
        galera.start()
        caplog.set_level(logging.WARNING, logger="PyMySQLLock")
        with Locker(**galera.connect_kwargs()) as locker:
            assert locker.server.galera
            lock = locker.lock(f"galera-{os.getpid()}")
            assert lock.acquire(timeout=0)
            assert locker.is_locked(lock.name)
            lock.release()
            # Tokens would come from a replicated row while the lock is node-local: refused.
            fenced = locker.lock(f"galera-fenced-{os.getpid()}", fencing=True)
            with pytest.raises(UnsupportedServerError, match="Galera"):
                fenced.acquire(timeout=0)
            assert not fenced.locked()
        warnings = [r for r in caplog.records if "Galera" in r.getMessage()]
        assert len(warnings) == 1
        assert "not replicated" in warnings[0].getMessage()
    finally:
        galera.close()
