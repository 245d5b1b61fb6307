"""Tests of PyMySQLLock.testing.ThrowawayServer and of the session-server plumbing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from server import ExternalServer, describe, parse_url

from PyMySQLLock.testing import ServerStartError, ThrowawayServer
from PyMySQLLock.testing.cleanup import pid_alive, process_state

Factory = Callable[..., ThrowawayServer]
DRIVERS = ("pymysql", "MySQLdb", "mysql.connector")


def _connect(driver: str, kwargs: dict[str, Any]) -> Any:
    module = pytest.importorskip(driver)
    return module.connect(**kwargs)


def _query(conn: Any, statement: str) -> list[tuple[Any, ...]]:
    cursor = conn.cursor()
    try:
        cursor.execute(statement)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


# --------------------------------------------------------------------------- the session server


def test_session_server_answers(server):
    assert server.sql("SELECT 1") == [(1,)]
    assert server.flavor in ("mariadb", "mysql")
    assert server.version
    assert server.url.startswith("mysql://")
    assert server.url.endswith(f":{server.port}/{server.database}")
    assert describe(server).startswith(("MariaDB ", "MySQL "))


@pytest.mark.parametrize("driver", DRIVERS)
def test_connect_kwargs_work_with_every_driver(server, driver):
    conn = _connect(driver, server.connect_kwargs())
    try:
        assert _query(conn, "SELECT DATABASE()") == [(server.database,)]
    finally:
        conn.close()


# --------------------------------------------------------------------------- ThrowawayServer


def test_fresh_server_basics(fresh_server):
    srv = fresh_server
    assert srv.host == "127.0.0.1"
    assert srv.user == "root"
    assert srv.password == ""
    assert srv.database == "pymysqllock"
    assert srv.url == f"mysql://root@127.0.0.1:{srv.port}/pymysqllock"
    assert srv.connect_kwargs() == {
        "host": "127.0.0.1",
        "port": srv.port,
        "user": "root",
        "password": "",
        "database": "pymysqllock",
    }
    assert srv.running
    assert srv.pid is not None
    assert srv.sql("SELECT VERSION()") == [(srv.version,)]
    assert (srv.flavor == "mariadb") == ("mariadb" in srv.version.lower())
    assert Path(srv.socket).is_socket()
    assert srv.sql("SELECT @@port, @@max_connections, @@performance_schema") == [
        (srv.port, 3000, 0)
    ]
    assert srv.sql("SHOW DATABASES LIKE %s", ("pymysqllock",)) == [("pymysqllock",)]
    # Rows come back as tuples; statements without a result set give [].
    assert srv.sql("CREATE TABLE pymysqllock.t (a INT)") == []
    assert srv.sql("SHOW GLOBAL STATUS LIKE 'Uptime'")[0][0] == "Uptime"


def test_root_can_create_users_and_they_can_log_in(fresh_server):
    fresh_server.sql("CREATE USER 'alice'@'%' IDENTIFIED BY 'secret'")
    fresh_server.sql("GRANT ALL ON pymysqllock.* TO 'alice'@'%'")
    conn = _connect(
        "pymysql", {**fresh_server.connect_kwargs(), "user": "alice", "password": "secret"}
    )
    try:
        assert _query(conn, "SELECT CURRENT_USER()") == [("alice@%",)]
    finally:
        conn.close()


@pytest.mark.mariadb_only
def test_metadata_lock_info_is_installed_on_mariadb(fresh_server):
    if fresh_server.flavor != "mariadb":
        pytest.skip("MariaDB plugin")
    rows = fresh_server.sql(
        "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
        "WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'"
    )
    assert rows == [("ACTIVE",)]


def test_options_reach_the_server(server_factory: Factory):
    srv = server_factory(performance_schema=True, plugins=(), extra_args=["--max-connections=77"])
    assert srv.sql("SELECT @@performance_schema, @@max_connections") == [(1, 77)]
    if srv.flavor == "mariadb":
        rows = srv.sql(
            "SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'"
        )
        assert rows == []


def _make_certificates(directory: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, capture_output=True, check=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca-key.pem", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server-key.pem", "-out", "server.csr")  # fmt: skip
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-days", "2", "-out", "server-cert.pem")  # fmt: skip


def test_ssl_dir_enables_tls(server_factory: Factory, tmp_path):
    _make_certificates(tmp_path)
    srv = server_factory(ssl_dir=tmp_path)
    assert srv.ssl_dir == str(tmp_path.resolve())
    assert srv.sql("SHOW VARIABLES LIKE 'have_ssl'") == [("have_ssl", "YES")]
    conn = _connect("pymysql", {**srv.connect_kwargs(), "ssl_ca": str(tmp_path / "ca.pem")})
    try:
        cipher = _query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cipher[0][1]
    finally:
        conn.close()


def test_ssl_dir_without_the_files_is_refused(tmp_path):
    with pytest.raises(ServerStartError, match=r"ca\.pem"):
        ThrowawayServer(ssl_dir=tmp_path)


@pytest.mark.lifecycle
def test_restart_keeps_data_port_and_plugin_state(fresh_server):
    srv = fresh_server
    srv.sql("CREATE TABLE pymysqllock.t (a INT) ENGINE=InnoDB")
    srv.sql("INSERT INTO pymysqllock.t VALUES (%s)", (42,))
    if srv.flavor == "mariadb":
        srv.sql("UNINSTALL SONAME 'metadata_lock_info'")
    port, old_pid = srv.port, srv.pid
    srv.restart()
    assert srv.port == port
    assert srv.pid != old_pid
    assert srv.sql("SELECT a FROM pymysqllock.t") == [(42,)]
    # The first-start setup does not run again: what the test changed stays changed.
    rows = srv.sql("SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME LIKE 'METADATA%'")
    assert rows == []


@pytest.mark.lifecycle
def test_stop_then_start(fresh_server):
    srv = fresh_server
    srv.stop()
    assert not srv.running
    assert srv.pid is None
    srv.stop()  # harmless when stopped
    srv.start()
    assert srv.running
    assert srv.sql("SELECT 1") == [(1,)]


@pytest.mark.lifecycle
def test_kill_then_start_recovers_committed_data(fresh_server):
    srv = fresh_server
    srv.sql("CREATE TABLE pymysqllock.t (a INT) ENGINE=InnoDB")
    srv.sql("INSERT INTO pymysqllock.t VALUES (1), (2)")
    conn = _connect("pymysql", {**srv.connect_kwargs(), "read_timeout": 5})
    srv.kill()
    assert not srv.running
    with pytest.raises(Exception, match=r"Lost connection|gone away|Errno"):
        _query(conn, "SELECT 1")
    conn.close()
    srv.start()
    assert srv.sql("SELECT a FROM pymysqllock.t ORDER BY a") == [(1,), (2,)]


@pytest.mark.lifecycle
def test_pause_freezes_and_resume_thaws(fresh_server):
    srv = fresh_server
    conn = _connect("pymysql", {**srv.connect_kwargs(), "read_timeout": 1})
    try:
        srv.pause()
        assert srv.paused
        assert srv.running
        started = time.monotonic()
        with pytest.raises(Exception, match=r"timed out|Lost connection"):
            _query(conn, "SELECT 1")
        assert time.monotonic() - started >= 0.9
        srv.resume()
        assert not srv.paused
        assert srv.sql("SELECT 1") == [(1,)]
    finally:
        conn.close()


@pytest.mark.lifecycle
def test_a_paused_server_can_be_stopped_and_closed(fresh_server):
    srv = fresh_server
    srv.pause()
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 10
    assert not srv.running
    srv.start()
    srv.pause()
    srv.close()
    assert not Path(srv.base_dir).exists()


def test_close_removes_directory_and_is_idempotent(server_factory: Factory):
    srv = server_factory()
    pid, base_dir = srv.pid, Path(srv.base_dir)
    assert base_dir.is_dir()
    srv.close()
    srv.close()
    assert srv.closed
    assert not base_dir.exists()
    assert pid is not None
    assert not pid_alive(pid)
    with pytest.raises(ServerStartError, match="closed"):
        srv.start()


def test_close_is_safe_when_the_server_died_behind_its_back(server_factory: Factory):
    srv = server_factory()
    assert srv.pid is not None
    os.kill(srv.pid, 9)
    time.sleep(0.1)
    srv.close()
    assert not Path(srv.base_dir).exists()


def test_context_manager_starts_and_closes():
    with ThrowawayServer() as srv:
        assert srv.sql("SELECT 1") == [(1,)]
        base_dir = Path(srv.base_dir)
    assert not base_dir.exists()


def test_two_servers_at_once_are_independent(server_factory: Factory):
    one, two = server_factory(), server_factory()
    assert one.port != two.port
    assert one.socket != two.socket
    assert one.datadir != two.datadir
    one.sql("CREATE TABLE pymysqllock.only_here (a INT)")
    assert two.sql("SHOW TABLES FROM pymysqllock") == []
    assert one.sql("SELECT @@port") == [(one.port,)]
    assert two.sql("SELECT @@port") == [(two.port,)]


def test_start_failure_reports_the_error_log(server_factory: Factory):
    srv = server_factory(start=False, extra_args=["--no-such-option-at-all=1"])
    with pytest.raises(ServerStartError, match="no-such-option-at-all"):
        srv.start()
    assert not srv.running


def test_taken_fixed_port_is_reported(server_factory: Factory):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        srv = server_factory(start=False, port=port)
        with pytest.raises(ServerStartError, match=f"port {port}"):
            srv.start()


def test_startup_is_fast(server_factory: Factory):
    server_factory()  # the per-process template datadir exists after this one
    started = time.monotonic()
    server_factory()
    assert time.monotonic() - started < 5


def test_missing_binary_is_a_clear_error():
    with pytest.raises(ServerStartError, match="not found"):
        ThrowawayServer(binary="/nonexistent/mariadbd")


def _abandon_a_server(base: Path, *, watchdog: bool) -> tuple[Path, int]:
    """Start a server in a child process that then dies without any cleanup (os._exit)."""
    script = textwrap.dedent(
        f"""
        import os
        from PyMySQLLock.testing import ThrowawayServer, cleanup
        if not {watchdog!r}:
            cleanup.start_watchdog = lambda directory: None
        srv = ThrowawayServer(base_dir={str(base)!r})
        srv.start()
        print(srv.base_dir, srv.pid, flush=True)
        os._exit(0)
        """
    )
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "TMPDIR": str(base),  # the child's template directory is abandoned there too
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    return Path(out[0]), int(out[1])


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    # Not our child: it may linger as a zombie until its new parent reaps it.
    deadline = time.monotonic() + timeout
    while process_state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    return process_state(pid) in (None, "Z")


def _wait_removed(path: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not path.exists()


@pytest.mark.slow
def test_watchdog_cleans_up_after_an_owner_that_died(tmp_path):
    orphan_dir, orphan_pid = _abandon_a_server(tmp_path, watchdog=True)
    assert _wait_gone(orphan_pid)
    assert _wait_removed(orphan_dir)
    assert _wait_removed(next(iter(tmp_path.glob("pymysqllock-templates-*")), tmp_path / "x"))


@pytest.mark.slow
def test_orphans_of_a_dead_process_are_reaped(tmp_path):
    # Without a watchdog (say it was killed too), the server keeps running; the next
    # ThrowawayServer made in the same parent directory kills it and removes its directory.
    orphan_dir, orphan_pid = _abandon_a_server(tmp_path, watchdog=False)
    assert orphan_dir.is_dir()
    assert pid_alive(orphan_pid)
    srv = ThrowawayServer(base_dir=tmp_path)
    try:
        assert not orphan_dir.exists()
        assert list(tmp_path.glob("pymysqllock-templates-*")) == []
        assert _wait_gone(orphan_pid)
    finally:
        srv.close()


# --------------------------------------------------------------------------- URL parsing


def test_parse_url_full():
    url = parse_url("mysql://bob:p%40ss@db.example:3307/locks")
    assert (url.host, url.port, url.user, url.password, url.database) == (
        "db.example",
        3307,
        "bob",
        "p@ss",
        "locks",
    )
    assert url.url() == "mysql://bob:p%40ss@db.example:3307/locks"
    assert url.url(hide_password=True) == "mysql://bob:***@db.example:3307/locks"


def test_parse_url_defaults_and_schemes():
    url = parse_url("mariadb+pymysql://h")
    assert (url.host, url.port, url.user, url.password, url.database) == (
        "h",
        3306,
        "root",
        "",
        "pymysqllock",
    )


@pytest.mark.parametrize("bad", ["postgres://h/db", "mysql:///db", "mysql://h:port/db"])
def test_parse_url_rejects(bad):
    with pytest.raises(ValueError, match="mysql"):
        parse_url(bad)


def test_external_server_wraps_a_url_and_skips_lifecycle(fresh_server):
    ext = ExternalServer(fresh_server.url)
    assert ext.version == fresh_server.version
    assert ext.flavor == fresh_server.flavor
    assert ext.connect_kwargs() == fresh_server.connect_kwargs()
    assert ext.sql("SELECT CURRENT_USER()") == [("root@127.0.0.1",)]
    assert describe(ext).endswith(f"(external, {fresh_server.url})")
    with pytest.raises(pytest.skip.Exception, match="throwaway"):
        ext.restart()
