"""TLS has one meaning with every driver: the mysql client's ``ssl-mode``.

Against real throwaway servers with certificates made here: the right CA works, in every form
(URL, ``Locker(ssl_mode=...)``, the drivers' own options, an option file, the command line);
a certificate of another CA, a server without TLS, and (for ``VERIFY_IDENTITY``) a certificate
for another host name are refused, with every driver. A refused connection is closed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI
from server import ThrowawayServer, external_mode, throwaway_possible

from PyMySQLLock import InvalidArgumentError, LockConnectionError, Locker, optionfile
from PyMySQLLock.aio import AsyncLocker
from PyMySQLLock.tls import SslMode, check_files, tls_request

SCHEMES = {"pymysql": "mysql+pymysql", "mysql.connector": "mysql+mysqlconnector"}
SCHEMES["MySQLdb"] = "mysql+mysqldb"


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, label: str) -> None:
    """``ca.pem`` and ``ca-key.pem`` of a new CA."""
    directory.mkdir(parents=True)
    _openssl(
        directory,
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-keyout", "ca-key.pem", "-out", "ca.pem", "-subj", f"/CN=PyMySQLLock {label} CA"),
    )


def _make_server_cert(ca: Path, directory: Path, names: str) -> None:
    """A server directory for ``ssl_dir``: ``ca.pem``, ``server-cert.pem``, ``server-key.pem``.

    :param names: the certificate's subjectAltName, e.g. ``IP:127.0.0.1,DNS:localhost``.
    """
    directory.mkdir(parents=True)
    _openssl(
        directory,
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem"),
        *("-out", "server.csr", "-subj", "/CN=PyMySQLLock test server"),
    )
    (directory / "ext.cnf").write_text(f"basicConstraints=CA:FALSE\nsubjectAltName={names}\n")
    _openssl(
        directory,
        *("x509", "-req", "-in", "server.csr", "-CA", str(ca / "ca.pem")),
        *("-CAkey", str(ca / "ca-key.pem"), "-CAcreateserial", "-days", "2"),
        *("-extfile", "ext.cnf", "-out", "server-cert.pem"),
    )
    (directory / "ca.pem").write_bytes((ca / "ca.pem").read_bytes())


class _TLS:
    """The certificates, and the servers started from them on first use."""

    def __init__(self, base: Path) -> None:
        self.base = base
        _make_ca(base / "ca", "test")
        _make_ca(base / "other", "unrelated")
        _make_server_cert(base / "ca", base / "right", "IP:127.0.0.1,DNS:localhost")
        _make_server_cert(base / "ca", base / "misnamed", "DNS:elsewhere.invalid")
        self.ca = str(base / "ca" / "ca.pem")
        self.wrong_ca = str(base / "other" / "ca.pem")
        self._servers: dict[str, ThrowawayServer] = {}

    def client_pem(self) -> str:
        """A client certificate of our CA with its key, both in one file (made on first use)."""
        directory = self.base / "client"
        both = directory / "client.pem"
        if not both.exists():
            directory.mkdir()
            _openssl(
                directory,
                *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem"),
                *("-out", "client.csr", "-subj", "/CN=PyMySQLLock test client"),
            )
            _openssl(
                directory,
                *("x509", "-req", "-in", "client.csr", "-CA", self.ca, "-days", "2"),
                *("-CAkey", str(self.base / "ca" / "ca-key.pem"), "-CAcreateserial"),
                *("-out", "cert.pem"),
            )
            both.write_bytes(
                (directory / "cert.pem").read_bytes() + (directory / "key.pem").read_bytes()
            )
        return str(both)

    def server(self, kind: str = "right") -> ThrowawayServer:
        if kind not in self._servers:
            started = ThrowawayServer(ssl_dir=self.base / kind)
            self._servers[kind] = started
            started.start()
        return self._servers[kind]

    def close(self) -> None:
        for started in self._servers.values():
            started.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """Certificates of our own CA, and TLS servers (one per module: starting is slow)."""
    if not throwaway_possible():
        message = "needs mariadbd or mysqld installed to start a TLS server"
        if external_mode():
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    made = _TLS(tmp_path_factory.mktemp("tls"))
    try:
        yield made
    finally:
        made.close()


def _url(target: Any, driver: str, query: str) -> str:
    return f"{SCHEMES[driver]}://root@127.0.0.1:{target.port}/{target.database}?{query}"


def _cipher_of_a_lock_connection(locker: Locker, name: str) -> str:
    """``Ssl_cipher`` of the connection a lock was held on (``''`` when not encrypted).

    No public API runs a statement on a Locker's own connection, and MariaDB shows no TLS state
    of other sessions, so this uses the private ``Locker._admin``: with ``pool_size=1`` the
    released lock's connection is the only idle one, which ``_admin`` then takes (checked by
    comparing ``CONNECTION_ID()``).
    """
    lock = locker.lock(name)
    assert lock.acquire(0)
    connection_id = lock.connection_id
    lock.release()
    assert locker._admin("SELECT CONNECTION_ID()", ())[0][0] == connection_id
    rows = locker._admin("SHOW SESSION STATUS LIKE 'Ssl_cipher'", ())
    return str(rows[0][1]) if rows else ""


def _native_verifying_options(driver: str, ca: str) -> dict[str, Any]:
    """The driver's own way of saying "verify against this CA"."""
    if driver == "MySQLdb":
        return {"ssl": {"ca": ca}}
    return {"ssl_ca": ca}


def _verifying_forms(tls: _TLS, target: Any, driver: str, ca: str) -> dict[str, Any]:
    """Ways to ask for a verified connection: a thunk per form that makes the Locker."""
    base = {**target.connect_kwargs(), "driver": driver, "pool_size": 1}
    return {
        "url-ca": lambda: Locker.from_url(_url(target, driver, f"ssl_ca={ca}"), pool_size=1),
        "url-mode": lambda: Locker.from_url(
            _url(target, driver, f"ssl-mode=VERIFY_IDENTITY&ssl_ca={ca}"), pool_size=1
        ),
        "url-verify-cert": lambda: Locker.from_url(
            _url(target, driver, f"ssl_ca={ca}&ssl_verify_cert=true"), pool_size=1
        ),
        "locker-mode": lambda: Locker(**base, ssl_mode="VERIFY_CA", ssl_ca=ca),
        "native": lambda: Locker(**base, **_native_verifying_options(driver, ca)),
    }


FORMS = ("url-ca", "url-mode", "url-verify-cert", "locker-mode", "native")


@pytest.mark.parametrize("form", FORMS)
def test_the_right_ca_gives_an_encrypted_lock_connection(tls, driver, lock_name, form):
    server = tls.server()
    with _verifying_forms(tls, server, driver, tls.ca)[form]() as locker:
        assert _cipher_of_a_lock_connection(locker, lock_name)


@pytest.mark.parametrize("form", FORMS)
def test_a_certificate_of_another_ca_is_refused(tls, driver, form):
    server = tls.server()
    with pytest.raises(LockConnectionError, match="Could not connect to db"):
        _verifying_forms(tls, server, driver, tls.wrong_ca)[form]()


@pytest.mark.parametrize("mode", ["REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY", None])
def test_a_server_without_tls_is_refused_when_encryption_is_required(tls, server, driver, mode):
    options = {**server.connect_kwargs(), "driver": driver}
    if mode is not None:  # None: a CA alone, which means VERIFY_CA
        options["ssl_mode"] = mode
    if mode != "REQUIRED":
        options["ssl_ca"] = tls.ca
    with pytest.raises(LockConnectionError) as raised:
        Locker(**options)
    # Some drivers refuse during the handshake, the others are caught by the check after it.
    assert "Could not connect to db" in str(raised.value)


def test_native_options_that_ask_for_verification_never_fall_back_to_plain_text(
    tls, server, driver
):
    native = {"ssl_ca": tls.ca, "ssl_verify_identity": True}
    if driver == "MySQLdb":
        native = {"ssl": {"ca": tls.ca}, "ssl_mode": "VERIFY_IDENTITY"}
    with pytest.raises(LockConnectionError):
        Locker(driver=driver, **server.connect_kwargs(), **native)


def test_verify_identity_refuses_a_certificate_for_another_host(tls, driver, lock_name):
    misnamed = tls.server("misnamed")
    base = {**misnamed.connect_kwargs(), "driver": driver, "ssl_ca": tls.ca, "pool_size": 1}
    with pytest.raises(LockConnectionError, match="Could not connect to db"):
        Locker(**base, ssl_mode="VERIFY_IDENTITY")
    if driver == "MySQLdb":
        # libmariadb checks the host name whenever it verifies the certificate: stricter than
        # VERIFY_CA asks, never weaker. The other drivers verify the chain alone.
        return
    with Locker(**base, ssl_mode="VERIFY_CA") as locker:
        assert _cipher_of_a_lock_connection(locker, lock_name)


def test_required_encrypts_without_verifying(tls, driver, lock_name):
    server = tls.server()
    options = {**server.connect_kwargs(), "driver": driver, "pool_size": 1}
    with Locker(**options, ssl_mode="REQUIRED", ssl_ca=tls.wrong_ca) as locker:
        assert _cipher_of_a_lock_connection(locker, lock_name)


def test_disabled_means_plain_text(tls, driver, lock_name):
    server = tls.server()
    with Locker.from_url(
        _url(server, driver, f"ssl_ca={tls.ca}&ssl_disabled=true"), pool_size=1
    ) as locker:
        assert _cipher_of_a_lock_connection(locker, lock_name) == ""
    with Locker.from_url(_url(server, driver, "ssl_mode=disabled"), pool_size=1) as locker:
        assert _cipher_of_a_lock_connection(locker, lock_name) == ""


def test_an_option_file_says_it_as_the_mysql_client_does(tls, driver, lock_name, tmp_path):
    server = tls.server()
    for ca, works in ((tls.ca, True), (tls.wrong_ca, False)):
        path = tmp_path / f"my-{works}.cnf"
        path.write_text(
            f"[client]\nhost=127.0.0.1\nport={server.port}\nuser=root\n"
            f"database={server.database}\nssl-mode=VERIFY_CA\nssl-ca={ca}\n"
        )
        options = optionfile.connect_options(optionfile.read_files([path], required=[path]))
        assert options["ssl_mode"] == "VERIFY_CA"
        if works:
            with Locker(driver=driver, pool_size=1, **options) as locker:
                assert _cipher_of_a_lock_connection(locker, lock_name)
        else:
            with pytest.raises(LockConnectionError):
                Locker(driver=driver, **options)


def test_the_command_line_takes_ssl_mode_flags(tls, driver, tmp_path, lock_name):
    server = tls.server()
    flags = [
        *("--no-defaults", "--driver", driver, "-h", "127.0.0.1", "-P", str(server.port)),
        *("-u", "root", "-D", server.database, "--ssl-mode", "VERIFY_IDENTITY"),
    ]
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for ca, code in ((tls.ca, 0), (tls.wrong_ca, 69)):
        finished = subprocess.run(
            [*CLI, "list", *flags, "--ssl-ca", ca],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert finished.returncode == code, finished.stderr


@pytest.mark.parametrize("half", ["ssl_cert", "ssl_key"])
def test_a_lone_client_certificate_or_key_means_one_file_holds_both(tls, driver, lock_name, half):
    """As for the mysql client, with every driver (PyMySQL dropped a lone key, mysql-connector
    refused a lone certificate): the account requires a client certificate, so it was sent."""
    server = tls.server()
    user = f"x509_{half}_{driver.replace('.', '')}".lower()
    server.sql("DROP USER IF EXISTS %s@'%%'", (user,))
    server.sql("CREATE USER %s@'%%' IDENTIFIED BY 'pw' REQUIRE X509", (user,))
    server.sql(f"GRANT ALL ON `{server.database}`.* TO %s@'%%'", (user,))
    try:
        options = {**server.connect_kwargs(), "user": user, "password": "pw", "driver": driver}
        with pytest.raises(LockConnectionError):
            Locker(**options, ssl_mode="REQUIRED")  # no client certificate: refused
        with Locker(**options, pool_size=1, **{half: tls.client_pem()}) as locker:
            assert _cipher_of_a_lock_connection(locker, lock_name)
    finally:
        server.sql("DROP USER IF EXISTS %s@'%%'", (user,))


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_tls_file_that_cannot_be_read_is_refused_naming_it(
    server, driver, tmp_path, kind, server_traffic
):
    """Each driver failed its own way, some only once the server offered TLS."""
    path = tmp_path / "ca.pem"
    if kind == "directory":
        path.mkdir()
    options = {**server.connect_kwargs(), "driver": driver}
    with server_traffic() as traffic:
        for keyword, named in (
            ("ssl_ca", "ssl_ca"),
            ("ssl_cert", "ssl_cert and ssl_key"),  # one file holds both
            ("ssl_key", "ssl_cert and ssl_key"),
        ):
            with pytest.raises(InvalidArgumentError, match=f"the {named} file {path}: "):
                Locker(**options, **{keyword: str(path)})
    assert traffic.connections == 0
    with Locker(**options, pool_size=1, ssl_mode="DISABLED", ssl_ca=str(path)):
        pass  # DISABLED reads no file


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_async_a_tls_file_that_cannot_be_read_is_refused_naming_it(
    server, async_driver, tmp_path, kind
):
    """The blocking check, before an AsyncLocker connects (no event loop is needed)."""
    path = tmp_path / "key.pem"
    if kind == "directory":
        path.mkdir()
    options = {**server.connect_kwargs(), "driver": async_driver}
    with pytest.raises(InvalidArgumentError, match=f"the ssl_cert and ssl_key file {path}: "):
        AsyncLocker(**options, ssl_key=str(path))
    AsyncLocker(**options, ssl_mode="DISABLED", ssl_key=str(path))  # DISABLED reads no file


def test_the_tls_file_check_does_not_wait_for_a_fifo_writer(tmp_path):
    # A FIFO (a shell's <(...)) is opened without blocking; reading it is the driver's affair.
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    check_files(tls_request({"ssl_ca": str(fifo), "ssl_cert": str(fifo)}))


def test_tls_request_pairs_a_lone_certificate_or_key():
    for options in ({"ssl_cert": "c.pem"}, {"ssl_key": "c.pem"}, {"ssl": {"cert": "c.pem"}}):
        request = tls_request(options)
        assert (request.cert, request.key, request.mode) == ("c.pem", "c.pem", SslMode.REQUIRED)
    both = tls_request({"ssl_cert": "c.pem", "ssl_key": "k.pem"})
    assert (both.cert, both.key) == ("c.pem", "k.pem")


@pytest.mark.parametrize(
    ("options", "mode"),
    [
        ({}, SslMode.PREFERRED),
        ({"ssl_ca": "ca.pem"}, SslMode.VERIFY_CA),
        ({"ssl": {"ca": "ca.pem"}}, SslMode.VERIFY_CA),
        ({"ssl_ca": "ca.pem", "ssl_verify_identity": True}, SslMode.VERIFY_IDENTITY),
        ({"ssl_ca": "ca.pem", "ssl_mode": "required"}, SslMode.REQUIRED),
        ({"ssl_ca": "ca.pem", "ssl_verify_cert": False}, SslMode.REQUIRED),
        ({"ssl_cert": "c.pem", "ssl_key": "k.pem"}, SslMode.REQUIRED),
        ({"ssl_ca": "ca.pem", "ssl_disabled": True}, SslMode.DISABLED),
        ({"ssl_mode": "verify-identity"}, SslMode.VERIFY_IDENTITY),
    ],
)
def test_what_each_combination_of_options_means(options, mode):
    assert tls_request(options).mode == mode


@pytest.mark.parametrize(
    "options",
    [
        {"ssl_mode": "bogus"},
        {"ssl_mode": "VERIFY_CA", "ssl_disabled": True},
    ],
)
def test_contradictions_and_unknown_modes_are_refused(server, driver, options, server_traffic):
    with server_traffic() as traffic, pytest.raises(InvalidArgumentError, match="ssl_"):
        Locker(driver=driver, **server.connect_kwargs(), **options)
    assert traffic.connections == 0


# -- the asyncio drivers: the same meaning ------------------------------------------------------


@pytest.fixture
def tls_server(tls):
    """The TLS server with the right certificate, started before any event loop runs."""
    return tls.server()


async def _async_cipher(locker: Any, name: str) -> str:
    """``Ssl_cipher`` of an AsyncLocker's lock connection (see ``_cipher_of_a_lock_connection``)."""
    lock = locker.lock(name)
    assert await lock.acquire(0)
    connection_id = lock.connection_id
    await lock.release()
    pool = locker._pool
    assert await pool.on_idle(lambda s: s.run("SELECT CONNECTION_ID()")) == (connection_id,)
    row = await pool.on_idle(lambda s: s.run("SHOW SESSION STATUS LIKE 'Ssl_cipher'"))
    return str(row[1]) if row else ""


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("options", "encrypted"),
    [
        ({"ssl_mode": "VERIFY_CA", "ssl_ca": "right"}, True),
        ({"ssl_ca": "right", "ssl_verify_identity": True}, True),
        ({"ssl_mode": "REQUIRED"}, True),
        ({}, True),  # PREFERRED: encrypted when the server offers it
        ({"ssl_mode": "DISABLED"}, False),
    ],
    ids=["verify-ca", "verify-identity", "required", "preferred", "disabled"],
)
async def test_async_drivers_give_tls_the_same_meaning(
    tls, tls_server, async_driver, watch_loop, lock_name, options, encrypted
):
    target = tls_server
    if options.get("ssl_ca") == "right":
        options = {**options, "ssl_ca": tls.ca}
    kwargs = {**target.connect_kwargs(), "host": "127.0.0.1", **options}
    async with AsyncLocker(driver=async_driver, **kwargs) as locker:
        cipher = await _async_cipher(locker, lock_name)
    assert bool(cipher) is encrypted, cipher


@pytest.mark.asyncio
async def test_async_close_closes_tls_sockets_while_the_server_is_silent(
    tls_server, async_driver, watch_loop, lock_name
):
    # Closing a TLS connection ends with a goodbye exchange that the drivers leave running in
    # the background; close() must not return before the sockets are closed (an application
    # may stop its loop right after). A stopped server never answers the goodbye.
    target = tls_server
    kwargs = {**target.connect_kwargs(), "host": "127.0.0.1"}
    locker = AsyncLocker(driver=async_driver, **kwargs)
    lock = locker.lock(lock_name)
    assert await lock.acquire(0)
    await lock.release()
    sockets = [session._transport.get_extra_info("socket") for session in locker._pool._idle]
    assert sockets
    target.pause()
    try:
        await asyncio.wait_for(locker.close(), 30)
    finally:
        target.resume()
    assert [sock.fileno() for sock in sockets] == [-1] * len(sockets)


@pytest.mark.asyncio
async def test_async_drivers_refuse_what_tls_cannot_prove(tls, server, async_driver, watch_loop):
    target = tls.server()
    wrong = AsyncLocker(
        driver=async_driver, **target.connect_kwargs(), ssl_mode="VERIFY_CA", ssl_ca=tls.wrong_ca
    )
    with pytest.raises(LockConnectionError):
        await wrong.connect()
    await wrong.close()
    plain = AsyncLocker(driver=async_driver, **server.connect_kwargs(), ssl_mode="REQUIRED")
    with pytest.raises(LockConnectionError, match=r"not encrypted|cannot connect"):
        await plain.connect()
    await plain.close()


@pytest.fixture
def misnamed_server(tls):
    """The TLS server whose certificate names another host, started before any loop runs."""
    return tls.server("misnamed")


@pytest.mark.asyncio
async def test_async_verify_identity_refuses_a_certificate_for_another_host(
    tls, misnamed_server, async_driver, watch_loop, lock_name
):
    base = {**misnamed_server.connect_kwargs(), "ssl_ca": tls.ca, "pool_size": 1}
    refused = AsyncLocker(driver=async_driver, **base, ssl_mode="VERIFY_IDENTITY")
    with pytest.raises(LockConnectionError):
        await refused.connect()
    await refused.close()
    # The chain alone is right: VERIFY_CA does not look at the name.
    async with AsyncLocker(driver=async_driver, **base, ssl_mode="VERIFY_CA") as locker:
        assert await _async_cipher(locker, lock_name)


@pytest.mark.asyncio
async def test_async_a_ca_alone_means_verify_ca(tls, tls_server, server, async_driver, watch_loop):
    k = tls_server.connect_kwargs()
    url = f"mysql+{async_driver}://{k['user']}@{k['host']}:{k['port']}/{k['database']}"
    lockers = [
        # A CA that did not sign the server's certificate: refused, not merely encrypted.
        AsyncLocker(driver=async_driver, **tls_server.connect_kwargs(), ssl_ca=tls.wrong_ca),
        AsyncLocker.from_url(f"{url}?ssl_ca={tls.wrong_ca}"),
        # A server without TLS: never plain text once a CA is given.
        AsyncLocker(driver=async_driver, **server.connect_kwargs(), ssl_ca=tls.ca),
    ]
    for locker in lockers:
        with pytest.raises(LockConnectionError):
            await locker.connect()
        await locker.close()


@pytest.mark.asyncio
async def test_async_a_cancelled_wait_does_not_linger_on_a_tls_server(
    tls_server, async_driver, watch_loop, lock_name
):
    # The server does not notice that the client of a waiting GET_LOCK closed a TLS
    # connection: the wait went on for its whole chunk (about ten minutes at this
    # ping_timeout) until PyMySQLLock.aio.waits killed it from another session.
    kwargs = {**tls_server.connect_kwargs(), "host": "127.0.0.1", "ssl_mode": "REQUIRED"}
    ask = "SELECT ID FROM information_schema.PROCESSLIST WHERE INSTR(INFO, %s) > 0 AND ID = %s"
    async with (
        AsyncLocker(driver=async_driver, **kwargs) as holder,
        AsyncLocker(driver=async_driver, ping_timeout=600, **kwargs) as locker,
    ):

        async def sessions(connection_id: int) -> list[Any]:
            return await holder._pool.on_idle(lambda s: s.run_all(ask, ("GET_LOCK", connection_id)))

        held = holder.lock(lock_name)
        assert await held.acquire(0)
        lock = locker.lock(lock_name)
        task = asyncio.ensure_future(lock.acquire())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while lock._waiting is None or not await sessions(lock._waiting.connection_id):
            assert loop.time() < deadline, "the acquire never waited on the server"
            await asyncio.sleep(0.01)
        waiter = lock._waiting.connection_id
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = loop.time() + 20
        while await sessions(waiter):
            assert loop.time() < deadline, f"session {waiter} still waits 20 s after the cancel"
            await asyncio.sleep(0.02)
        await held.release()
        assert await holder.lock(lock_name).acquire(0)  # nobody else was waiting for it
