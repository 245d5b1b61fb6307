"""Hostile input: any name, any timeout, garbage for every public parameter, misconfiguration.

The properties:

* every ``str`` is a usable lock name, and the server lists it exactly (or, when it cannot be
  stored verbatim, as :attr:`Lock.server_name`);
* an invalid argument raises :class:`InvalidArgumentError` / :class:`InvalidArgumentTypeError`
  (a ``ValueError`` / ``TypeError``) before anything is sent and before any connection is opened;
* a misconfigured Locker fails with one :class:`LockError` whose message names what to fix;
* nothing leaks: after every example the server has exactly the connections it had before.

The hypothesis tests reuse one Locker per driver for all their examples (function-scoped
fixtures are not reset between examples): ``_Shared`` below. They count what each Locker sends by
wrapping its driver adapter, and the server-side counters (``Com_select``, ``Connections``)
confirm it for a fixed list of bad values.
"""

from __future__ import annotations

import contextlib
import decimal
import fractions
import logging
import math
import numbers
import socket
import sys
import time
from typing import Any
from urllib.parse import quote

import pytest
from conftest import DRIVERS
from hypothesis import HealthCheck, example, given, settings, strategies as st

from PyMySQLLock import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockConnectionError,
    Locker,
)
from PyMySQLLock.config import parse_url
from PyMySQLLock.names import fits_verbatim, server_name, strip_namespace
from PyMySQLLock.timeouts import MAX_REFRESH_INTERVAL, MIN_REFRESH_INTERVAL

INVALID = (InvalidArgumentError, InvalidArgumentTypeError)
NAMESPACE = "hostile"
#: One Locker per driver serves every example, so these settings allow function-scoped
#: fixtures: the ones used (``driver``, ``server``, the autouse leak check) hold no per-example
#: state.
HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Seconds a closed connection may take to leave the server's process list.
DISCONNECT_GRACE = 5.0
#: The schemes of ``Locker.from_url`` per driver.
SCHEMES = {"pymysql": "mysql+pymysql", "mysql.connector": "mysql+mysqlconnector"}
SCHEMES["MySQLdb"] = "mysql+mysqldb"


# --------------------------------------------------------------------------- shared lockers


class _Counting:
    """Counts the connections a Locker opens and the statements it sends, via its adapter."""

    def __init__(self, locker: Locker) -> None:
        self.connects = 0
        self.statements = 0
        adapter = locker.driver
        connect, query, query_all = adapter.connect, adapter.query, adapter.query_all

        def counted_connect(*args: Any, **kwargs: Any) -> Any:
            self.connects += 1
            return connect(*args, **kwargs)

        def counted_query(*args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return query(*args, **kwargs)

        def counted_query_all(*args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return query_all(*args, **kwargs)

        # Instance attributes shadow the methods for this Locker's adapter only.
        adapter.connect = counted_connect  # type: ignore[method-assign]
        adapter.query = counted_query  # type: ignore[method-assign]
        adapter.query_all = counted_query_all  # type: ignore[method-assign]

    def snapshot(self) -> tuple[int, int]:
        return self.connects, self.statements


class _Shared:
    """One plain and one namespaced Locker per driver, with their counters."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.plain: dict[str, Locker] = {}
        self.namespaced: dict[str, Locker] = {}
        self.counters: dict[int, _Counting] = {}
        for driver in DRIVERS:
            for table, extra in ((self.plain, {}), (self.namespaced, {"namespace": NAMESPACE})):
                locker = Locker(driver=driver, pool_size=2, **extra, **server.connect_kwargs())
                # Warm the pool to its steady state: a lock's connection plus one for listing.
                # From then on every example reuses these two, so any new server session is a
                # leak (and the suite's own leak check sees no connection come and go).
                warm = locker.lock("hostile-warm-up")
                assert warm.acquire(0)
                locker.get_all_locks()
                warm.release()
                table[driver] = locker
                self.counters[id(locker)] = _Counting(locker)

    def counter(self, locker: Locker) -> _Counting:
        return self.counters[id(locker)]

    def close(self) -> None:
        for locker in [*self.plain.values(), *self.namespaced.values()]:
            locker.close()


@pytest.fixture(scope="module")
def shared(server):
    made = _Shared(server)
    yield made
    made.close()


def _sessions(server) -> set[int]:
    rows = server.sql(
        "SELECT ID FROM information_schema.PROCESSLIST "
        "WHERE ID <> CONNECTION_ID() AND USER = %s AND COMMAND <> 'Daemon'",
        (server.user,),
    )
    return {int(row[0]) for row in rows}


def _assert_no_new_sessions(server, before: set[int]) -> None:
    """Every session opened since ``before`` is gone (closing is asynchronous on the server)."""
    deadline = time.monotonic() + DISCONNECT_GRACE
    while True:
        new = _sessions(server) - before
        if not new:
            return
        assert time.monotonic() < deadline, f"connections left open: {sorted(new)}"
        time.sleep(0.02)


@contextlib.contextmanager
def _nothing_sent(counter: _Counting):
    before = counter.snapshot()
    yield
    assert counter.snapshot() == before, "something was sent to the server"


# --------------------------------------------------------------------------- names

ANY_CHAR = st.characters(exclude_categories=())  # surrogates and NUL included
NAMES = st.one_of(
    st.text(ANY_CHAR, min_size=1, max_size=70),
    st.text(ANY_CHAR, min_size=60, max_size=400),
    st.text(st.sampled_from("aAzZ._- "), min_size=1, max_size=64),
    st.text(st.characters(min_codepoint=0x10000), min_size=1, max_size=8),
    st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a, b: f"{a}\ud800{b}", st.text(max_size=8), st.text(max_size=8)),
)


@pytest.mark.slow
@HOSTILE
@given(name=NAMES, namespaced=st.booleans())
@example(name="Mixed.Case", namespaced=False)
@example(name="x" * 64, namespaced=False)
@example(name="x" * 65, namespaced=False)
@example(name="trailing space ", namespaced=True)
@example(name="nul\x00inside", namespaced=False)
@example(name="\ud800\udfff lone surrogates", namespaced=False)
@example(name="emoji \U0001f512", namespaced=True)
@example(name="%s'; SELECT 1; -- \\", namespaced=False)
@example(name="é" * 64, namespaced=False)
@example(name="\uffff\ufffe", namespaced=True)
def test_any_name_is_listed_exactly_or_as_its_server_name(shared, server, driver, name, namespaced):
    locker = (shared.namespaced if namespaced else shared.plain)[driver]
    namespace = locker.namespace
    before = _sessions(server)
    lock = locker.lock(name)
    full = name if namespace is None else f"{namespace}.{name}"
    assert lock.name == name
    assert lock.server_name == server_name(name, namespace)
    assert fits_verbatim(lock.server_name)
    expected = name if fits_verbatim(full) else strip_namespace(lock.server_name, namespace)
    if fits_verbatim(full):
        assert lock.server_name == full
    assert lock.acquire(0) is True
    try:
        assert locker.get_all_locks().count(expected) == 1
        assert locker.holder(name) == lock.connection_id
        infos = [info for info in locker.list_locks() if info.server_name == lock.server_name]
        assert [(info.name, info.connection_id) for info in infos] == [
            (expected, lock.connection_id)
        ]
    finally:
        lock.release()
    assert locker.holder(name) is None
    assert expected not in locker.get_all_locks()
    _assert_no_new_sessions(server, before)


# --------------------------------------------------------------------------- timeouts


def _timeout_problem(value: Any, none_means_default: bool) -> type[Exception] | None:
    """The documented error for ``value`` as a timeout, or ``None`` when it is valid."""
    if value is None and none_means_default:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return InvalidArgumentTypeError
    if value == -1 or value >= 0:  # NaN fails both comparisons
        return None
    return InvalidArgumentError


def _interval_problem(value: Any, none_means_default: bool) -> type[Exception] | None:
    """The documented error for ``value`` as a refresh interval, or ``None`` when it is valid."""
    if value is None and none_means_default:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return InvalidArgumentTypeError
    # Intervals are seconds as floats: a number beyond float range (a huge int or Fraction)
    # counts as infinite, and a positive one too small for a float as zero.
    try:
        seconds = float(value)
    except OverflowError:
        return InvalidArgumentError
    if MIN_REFRESH_INTERVAL <= seconds <= MAX_REFRESH_INTERVAL:
        return None
    return InvalidArgumentError


ANY_VALUE = st.one_of(
    st.floats(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.fractions(),
    st.decimals(),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.complex_numbers(max_magnitude=10),
    st.sampled_from([-1, 0, -0.0, 1e-300, 5e-324, 1e308, math.inf, -math.inf, math.nan, [], {}]),
)


def _check_arguments(shared, driver, where, timeout, interval):
    locker = shared.plain[driver]
    counter = shared.counter(locker)
    at_acquire = where == "acquire"
    problems = {
        p
        for p in (_timeout_problem(timeout, at_acquire), _interval_problem(interval, at_acquire))
        if p is not None
    }
    name = "hostile-timeout"
    with _nothing_sent(counter):
        if at_acquire:
            lock = locker.lock(name)
            call = lambda: lock.acquire(timeout, interval)  # noqa: E731
        else:
            call = lambda: locker.lock(  # noqa: E731
                name, timeout=timeout, refresh_interval_secs=interval
            )
        if problems:
            with pytest.raises(INVALID) as raised:
                call()
            assert type(raised.value) in problems, f"{raised.value!r} for {problems}"
            assert str(raised.value)
    if problems:
        # The failed call changed nothing: the lock object is still usable.
        lock = locker.lock(name)
        assert lock.acquire(0) is True
        lock.release()
        return
    if not at_acquire:
        lock = call()
        assert lock.acquire() is True
    else:
        assert call() is True
    try:
        assert lock.locked()
    finally:
        lock.release()
    assert not lock.locked()


@pytest.mark.slow
@HOSTILE
@given(
    where=st.sampled_from(["lock", "acquire"]),
    timeout=ANY_VALUE,
    interval=st.one_of(ANY_VALUE, st.just(10)),
)
@example(where="acquire", timeout=10**400, interval=None)
@example(where="lock", timeout=fractions.Fraction(10**400, 3), interval=10)
@example(where="acquire", timeout=None, interval=10**400)
@example(where="acquire", timeout=math.nan, interval=None)
@example(where="acquire", timeout=None, interval=math.inf)
@example(where="lock", timeout=True, interval=10)
@example(where="lock", timeout=-0.5, interval=10)
@example(where="acquire", timeout="1", interval=None)
@example(where="acquire", timeout=decimal.Decimal(1), interval=None)
@example(where="lock", timeout=None, interval=10)
def test_any_timeout_and_interval_is_used_or_rejected_before_anything_is_sent(
    shared, driver, where, timeout, interval
):
    _check_arguments(shared, driver, where, timeout, interval)


BAD_TIMEOUTS = [math.nan, -2, -0.5, -math.inf, "1", b"1", True, [], 1j, decimal.Decimal("1")]
BAD_INTERVALS = [math.nan, 0, -1, 1e-9, 0.009, 86401, 1e10, math.inf, "1", True, None]


def test_bad_arguments_reach_no_server(locker, lock_name, server_traffic):
    lock = locker.lock(lock_name)
    with server_traffic() as traffic:
        for value in BAD_TIMEOUTS:
            with pytest.raises(INVALID):
                lock.acquire(value)
            with pytest.raises(INVALID):
                locker.lock(lock_name, timeout=value)
        for value in BAD_INTERVALS:
            with pytest.raises(INVALID):
                locker.lock(lock_name, refresh_interval_secs=value)
            if value is not None:
                with pytest.raises(INVALID):
                    lock.acquire(refresh_interval_secs=value)
        for bad_name in ("", None, b"name", 42, ["name"]):
            with pytest.raises(INVALID):
                locker.lock(bad_name)
            with pytest.raises(INVALID):
                locker.holder(bad_name)
            with pytest.raises(INVALID):
                locker.is_locked(bad_name)
            with pytest.raises(INVALID):
                locker.force_release(bad_name)
        for on_lost in (42, "callback", object()):
            with pytest.raises(InvalidArgumentTypeError, match="on_lost"):
                locker.lock(lock_name, on_lost=on_lost)
        with pytest.raises(InvalidArgumentError, match="on_busy"):
            locker.synchronized(lock_name, on_busy="sometimes")
    assert traffic.selects == 0
    assert traffic.connections == 0
    assert not lock.locked()


# --------------------------------------------------------------------------- Locker arguments

BAD_LOCKER_ARGUMENTS = [
    pytest.param({"namespace": ""}, InvalidArgumentError, "namespace", id="namespace-empty"),
    pytest.param({"namespace": 7}, InvalidArgumentTypeError, "namespace", id="namespace-int"),
    pytest.param({"namespace": b"ns"}, InvalidArgumentTypeError, "namespace", id="ns-bytes"),
    pytest.param({"namespace": "n" * 21}, InvalidArgumentError, "namespace", id="ns-long"),
    pytest.param({"namespace": "a\x00b"}, InvalidArgumentError, "namespace", id="ns-nul"),
    pytest.param({"namespace": "billing.eu"}, InvalidArgumentError, "separator", id="ns-dot"),
    pytest.param({"namespace": "\ud800"}, InvalidArgumentError, "namespace", id="ns-surrogate"),
    pytest.param({"namespace": "\U0001f512"}, InvalidArgumentError, "namespace", id="ns-4byte"),
    pytest.param({"pool_size": -1}, InvalidArgumentError, "pool_size", id="pool-negative"),
    pytest.param({"pool_size": 1.5}, InvalidArgumentTypeError, "pool_size", id="pool-float"),
    pytest.param({"pool_size": "3"}, InvalidArgumentTypeError, "pool_size", id="pool-str"),
    pytest.param({"pool_size": True}, InvalidArgumentTypeError, "pool_size", id="pool-bool"),
    pytest.param({"pool_size": None}, InvalidArgumentTypeError, "pool_size", id="pool-none"),
    pytest.param({"ping_timeout": 0}, InvalidArgumentError, "ping_timeout", id="ping-zero"),
    pytest.param({"ping_timeout": -1}, InvalidArgumentError, "ping_timeout", id="ping-negative"),
    pytest.param({"ping_timeout": math.nan}, InvalidArgumentError, "ping_timeout", id="ping-nan"),
    pytest.param({"ping_timeout": math.inf}, InvalidArgumentError, "ping_timeout", id="ping-inf"),
    pytest.param({"ping_timeout": "10"}, InvalidArgumentTypeError, "ping_timeout", id="ping-str"),
    pytest.param({"ping_timeout": True}, InvalidArgumentTypeError, "ping_timeout", id="ping-bool"),
    pytest.param({"ping_timeout": None}, InvalidArgumentTypeError, "ping_timeout", id="ping-none"),
    pytest.param({"read_timeout": -1}, InvalidArgumentError, "read_timeout", id="read-negative"),
    pytest.param({"read_timeout": "x"}, InvalidArgumentTypeError, "read_timeout", id="read-str"),
    pytest.param({"connect_timeout": 0}, InvalidArgumentError, "connect_timeout", id="connect-0"),
    pytest.param({"write_timeout": 1e10}, InvalidArgumentError, "write_timeout", id="write-huge"),
    pytest.param({"port": "3306"}, InvalidArgumentTypeError, "port", id="port-str"),
    pytest.param({"port": 70000}, InvalidArgumentError, "port", id="port-range"),
    pytest.param({"charset": "bogus"}, InvalidArgumentError, "'bogus'", id="charset-unknown"),
    pytest.param({"charset": 8}, InvalidArgumentTypeError, "charset", id="charset-int"),
    pytest.param({"defer_connect": True}, InvalidArgumentError, "defer_connect", id="defer"),
    pytest.param({"driver": "nosuch"}, InvalidArgumentError, "unknown driver", id="driver-name"),
    pytest.param({"driver": 42}, InvalidArgumentTypeError, "driver", id="driver-int"),
    pytest.param({"driver": object()}, InvalidArgumentTypeError, "driver", id="driver-object"),
    pytest.param(
        {"mysql_lib_connector": 42}, InvalidArgumentTypeError, "mysql_lib_connector", id="conn-int"
    ),
    pytest.param(
        {"mysql_lib_connector": len}, InvalidArgumentError, "mysql_lib_connector", id="conn-len"
    ),
    pytest.param(
        {"mysql_lib_connector": lambda **kw: None},
        InvalidArgumentError,
        "mysql_lib_connector",
        id="conn-lambda",
    ),
]


@pytest.mark.parametrize(("arguments", "error", "words"), BAD_LOCKER_ARGUMENTS)
def test_bad_locker_arguments_fail_before_connecting(
    server, driver, server_traffic, caplog, arguments, error, words
):
    options = {"driver": driver, **server.connect_kwargs(), **arguments}
    if "mysql_lib_connector" in arguments:
        del options["driver"]
    with server_traffic() as traffic, pytest.raises(error) as raised:
        Locker(**options)
    assert words in str(raised.value)
    assert traffic.connections == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# Every positive finite ping_timeout is documented as valid. The drivers' own limits (PyMySQL:
# one year; mysqlclient: a C int; mysql-connector: a C time) are far below 1e300.
PING_TIMEOUTS = (0.5, 3600.0, 31536000.0, 31536001.0, 1e9, 1e10, 1e300, sys.float_info.max)


def test_any_finite_ping_timeout_works_or_is_rejected_as_invalid(make_locker, lock_name, driver):
    wrong = []
    for ping_timeout in PING_TIMEOUTS:
        try:
            locker = make_locker(ping_timeout=ping_timeout)
        except InvalidArgumentError as exc:
            if "ping_timeout" not in str(exc):
                wrong.append(f"{ping_timeout}: message does not name ping_timeout: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to report what it was
            wrong.append(f"{ping_timeout}: {type(exc).__name__}: {exc}")
            continue
        lock = locker.lock(lock_name)
        if lock.acquire(0) is not True:
            wrong.append(f"{ping_timeout}: the free lock was not acquired")
        else:
            lock.release()
    assert not wrong, f"ping_timeout with {driver}:\n" + "\n".join(wrong)


# --------------------------------------------------------------------------- misconfiguration


def _closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (never 3306: it is an ephemeral port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    assert port != 3306
    return port


def _misconfigured(server, driver, caplog, **changes):
    """Make a Locker that must fail; :returns: its one exception."""
    options = {**server.connect_kwargs(), **changes}
    caplog.clear()
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type is asserted by each test
        Locker(driver=driver, **options)
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, f"more than one error reported: {noisy}"
    return raised.value


def test_closed_port_says_where_it_tried(server, driver, caplog):
    port = _closed_port()
    error = _misconfigured(server, driver, caplog, host="127.0.0.1", port=port)
    assert isinstance(error, LockConnectionError)
    message = str(error)
    assert f"127.0.0.1:{port}" in message
    assert "Could not connect to db" in message
    assert driver in message


def test_unknown_host_is_named(server, driver, caplog):
    error = _misconfigured(server, driver, caplog, host="no-such-host.invalid")
    assert isinstance(error, LockConnectionError)
    assert "no-such-host.invalid" in str(error)
    assert "Could not connect to db" in str(error)


def test_wrong_password_says_access_denied(server, driver, caplog):
    error = _misconfigured(server, driver, caplog, password="not-the-password")
    assert isinstance(error, LockConnectionError)
    assert "Access denied" in str(error)
    assert server.user in str(error)


def test_unknown_user_says_access_denied(server, driver, caplog):
    error = _misconfigured(server, driver, caplog, user="no_such_user")
    assert isinstance(error, LockConnectionError)
    assert "Access denied for user 'no_such_user'" in str(error)


def test_unknown_database_is_named(server, driver, caplog):
    error = _misconfigured(server, driver, caplog, database="no_such_database")
    assert isinstance(error, LockConnectionError)
    assert "Unknown database 'no_such_database'" in str(error)


def test_unknown_connect_argument_is_named(server, driver, caplog):
    error = _misconfigured(server, driver, caplog, bogus_option=1)
    assert isinstance(error, InvalidArgumentTypeError), repr(error)
    assert "bogus_option" in str(error)


@pytest.mark.parametrize(
    "changes",
    [{"port": "abc"}, {"password": 12345}, {"charset": "no_such_charset"}],
    ids=["port-str", "password-int", "charset-unknown"],
)
def test_wrong_connect_argument_values_raise_a_lock_error(server, driver, caplog, changes):
    error = _misconfigured(server, driver, caplog, **changes)
    # Documented: InvalidArgument*Error for arguments the driver rejects, LockConnectionError
    # when the server cannot be reached with them. A bare driver exception is neither.
    assert isinstance(error, (*INVALID, LockConnectionError)), repr(error)


def test_bad_driver_name_lists_the_choices(server, caplog):
    error = _misconfigured(server, "postgres", caplog)
    assert isinstance(error, InvalidArgumentError)
    assert "unknown driver 'postgres'" in str(error)
    for name in DRIVERS:
        assert name in str(error)


# --------------------------------------------------------------------------- URLs


def _url(server, driver, query=""):
    # Always an explicit host and port: a URL without them would reach the machine's own server.
    account = quote(server.user, safe="") + (
        f":{quote(server.password, safe='')}" if server.password else ""
    )
    where = f"{account}@{server.host}:{server.port}/{server.database}"
    return f"{SCHEMES[driver]}://{where}" + (f"?{query}" if query else "")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        pytest.param("http://h:1/db", "scheme", id="scheme"),
        pytest.param("", "scheme", id="empty"),
        pytest.param("mysql+postgres://h:1/db", "scheme", id="driver-suffix"),
        pytest.param("mysql://h:99999/db", "port", id="port-range"),
        pytest.param("mysql://h:port/db", "port", id="port-text"),
        pytest.param("mysql://h:1/db?colour=blue", "colour", id="unknown-option"),
        pytest.param("mysql://h:1/db?ssl_verify_cert=maybe", "ssl_verify_cert", id="bad-bool"),
        pytest.param("mysql://h:1/db?connect_timeout=soon", "connect_timeout", id="bad-number"),
        pytest.param("mysql://h:1/db?pool_size=many", "pool_size", id="bad-int"),
        pytest.param("mysql://[::1/db", "URL", id="unclosed-ipv6"),
    ],
)
def test_malformed_urls_raise_invalid_argument_error(url, words):
    with pytest.raises(InvalidArgumentError) as raised:
        Locker.from_url(url)
    assert words in str(raised.value)


@pytest.mark.parametrize("url", [None, b"mysql://h:1/db", 42], ids=["none", "bytes", "int"])
def test_url_of_wrong_type(url):
    with pytest.raises(InvalidArgumentTypeError, match="url must be a str"):
        Locker.from_url(url)


@pytest.mark.parametrize("option", ["connect_timeout", "read_timeout", "ping_timeout"])
def test_url_timeouts_must_be_positive_finite_numbers(server, driver, option):
    wrong = []
    # Not a positive finite number: must be rejected. 1e300 is one: it must work or be
    # rejected as out of range, like ping_timeout= in the constructor.
    for value in ("nan", "inf", "0", "-1", "1e300"):
        try:
            locker = Locker.from_url(_url(server, driver, f"{option}={value}"))
        except InvalidArgumentError as exc:
            if option not in str(exc):
                wrong.append(f"{value}: message does not name {option}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the point is to report what it was
            wrong.append(f"{value}: {type(exc).__name__}: {exc}")
        else:
            locker.close()
            if value != "1e300":
                wrong.append(f"{value}: accepted")
    assert not wrong, f"{option} via URL with {driver}:\n" + "\n".join(wrong)


def test_url_unix_socket_is_used_even_with_a_tcp_host(server, driver, tmp_path):
    missing = tmp_path / "no-server.sock"
    with pytest.raises(LockConnectionError) as raised:
        Locker.from_url(_url(server, driver, f"unix_socket={missing}")).close()
    assert str(missing) in str(raised.value)


URL_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        "".join,
        st.lists(
            st.sampled_from(
                ["mysql", "mariadb", "+pymysql", "+x", "://", "u", ":", "p", "@", "h", "[", "]",
                 "::1", "99999", "0", "/", "db", "?", "&", "=", "%", "%zz", "#", "ssl_ca",
                 "pool_size", "ping_timeout", "nan", "true", "\uff03", "\u2100", " "]
            ),
            max_size=14,
        ),
    ),
)  # fmt: skip


@HOSTILE
@given(url=URL_TEXT)
def test_parse_url_raises_only_argument_errors(url):
    # InvalidArgumentError is a ValueError; urllib's own ValueError for a malformed URL passes
    # here (``test_malformed_urls_raise_invalid_argument_error`` asks for more).
    try:
        parsed = parse_url(url)
    except (ValueError, TypeError) as exc:
        message = str(exc)
    else:
        assert parsed.driver in (None, *DRIVERS)
        assert isinstance(parsed.connect_kwargs, dict)
        return
    assert message


def test_lock_objects_from_one_locker_are_independent_of_bad_calls(locker, lock_name):
    lock = locker.lock(lock_name)
    with pytest.raises(InvalidArgumentError):
        lock.acquire(math.nan)
    assert lock.acquire(0) is True
    with pytest.raises(INVALID):
        lock.acquire("now")  # still held: the argument is checked first
    assert lock.locked()
    lock.release()
    assert not lock.locked()
