"""Security: passwords stay secret, least privilege works, SQL is constant.

* Passwords never appear in ``repr()``/``str()`` of any object, in any log record (DEBUG and
  up, over a whole lifecycle with failures and lost locks), or in any exception message or
  traceback (wrong password, bad database, unparsable URLs), with every driver.
* An account with no privilege at all (only ``USAGE``) can lock, release and list locks (MariaDB's
  ``METADATA_LOCK_INFO`` needs no privilege), and gets :class:`PermissionDeniedError` when it
  tries to ``force_release`` another account's lock.
* TLS has its own file, ``test_tls.py``.
* Every statement the library sends is a constant (an AST check of ``PyMySQLLock/*.py``).
"""

from __future__ import annotations

import ast
import logging
import secrets
import threading
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings, strategies as st

import PyMySQLLock
from PyMySQLLock import (
    LockConnectionError,
    Locker,
    LockLostError,
    PermissionDeniedError,
)
from PyMySQLLock.config import parse_url

PACKAGE = Path(PyMySQLLock.__file__).parent
SCHEMES = {"pymysql": "mysql+pymysql", "mysql.connector": "mysql+mysqlconnector"}
SCHEMES["MySQLdb"] = "mysql+mysqldb"
_TOKEN = secrets.token_hex(6)  # in the passwords only
_ACCOUNT_TAG = secrets.token_hex(3)  # in the account names, which may be shown
#: The secret account's password: URL-hostile characters and a unique token, so that even a
#: fragment of it in a message is found.
SECRET = f"S3cr3t-{_TOKEN}-@:/%?#&="
USAGE_SECRET = f"Us4ge-{_TOKEN}-pw"
#: Fragments that must never be shown (the token alone is already a leak).
FRAGMENTS = (SECRET, quote(SECRET, safe=""), _TOKEN, USAGE_SECRET)
DISCONNECT_GRACE = 5.0


def _leaks(text: str) -> list[str]:
    return [fragment for fragment in FRAGMENTS if fragment in text]


def _exception_text(exc: BaseException) -> str:
    """Message, repr and the whole chained traceback of an exception."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


# --------------------------------------------------------------------------- accounts


class _Account:
    def __init__(self, server: Any, user: str, password: str, grant: str | None) -> None:
        self.server = server
        self.user = user
        self.password = password
        server.sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        if grant:
            server.sql(f"GRANT {grant} TO %s@'%%'", (user,))

    def kwargs(self, **changes: Any) -> dict[str, Any]:
        options = {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.user,
            "password": self.password,
        }
        options.update(changes)
        return {key: value for key, value in options.items() if value is not None}

    def url(self, driver: str, *, port: int | None = None, query: str = "") -> str:
        secret = quote(self.password, safe="")
        where = f"{self.server.host}:{port or self.server.port}"
        return f"{SCHEMES[driver]}://{self.user}:{secret}@{where}/" + (f"?{query}" if query else "")

    def sessions(self) -> list[tuple[Any, ...]]:
        return self.server.sql(
            "SELECT ID, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE USER = %s",
            (self.user,),
        )

    def drop(self) -> None:
        self.server.sql("DROP USER IF EXISTS %s@'%%'", (self.user,))


@pytest.fixture(scope="module")
def account(server):
    """An account with a password full of URL syntax, allowed to use the test database."""
    made = _Account(
        server, f"sec_{_ACCOUNT_TAG}", SECRET, f"ALL PRIVILEGES ON `{server.database}`.*"
    )
    yield made
    made.drop()


@pytest.fixture(scope="module")
def usage_account(server):
    """An account with no privilege at all: ``SHOW GRANTS`` lists only ``USAGE``."""
    made = _Account(server, f"usage_{_ACCOUNT_TAG}", USAGE_SECRET, None)
    yield made
    made.drop()


@pytest.fixture(autouse=True)
def _accounts_leave_no_session(request):
    """The suite's leak check watches the root account only; this one watches ours."""
    yield
    for name in ("account", "usage_account"):
        if name in request.fixturenames:
            made = request.getfixturevalue(name)
            deadline = time.monotonic() + DISCONNECT_GRACE
            while made.sessions() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not made.sessions(), f"{made.user} left sessions open: {made.sessions()}"


# --------------------------------------------------------------------------- repr and messages


def _failures(account, driver, closed_port):
    """Exceptions of every kind of failure that involves the password."""
    attempts = [
        lambda: Locker(driver=driver, **account.kwargs(password=f"{SECRET}-wrong")),
        lambda: Locker(driver=driver, **account.kwargs(database="no_such_database")),
        lambda: Locker(driver=driver, **account.kwargs(user="no_such_user")),
        lambda: Locker(driver=driver, **account.kwargs(port=closed_port)),
        lambda: Locker(driver=driver, **account.kwargs(bogus_option=1)),
        lambda: Locker(driver=driver, **account.kwargs(port="not-a-port")),
        lambda: Locker.from_url(account.url(driver, port=closed_port)),
        lambda: Locker.from_url(account.url(driver).replace("mysql+", "mysql+nosuch")),
        lambda: Locker.from_url(account.url(driver, query="colour=blue")),
        lambda: Locker.from_url(account.url(driver, query="ssl_verify_cert=maybe")),
        lambda: Locker.from_url(account.url(driver).replace(f":{account.server.port}", ":x")),
    ]
    errors = []
    for attempt in attempts:
        try:
            attempt().close()
        except Exception as exc:  # noqa: BLE001 - every one is inspected by the caller
            errors.append(exc)
        else:
            pytest.fail("a misconfigured Locker connected")
    return errors


def _closed_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_password_is_in_no_repr_and_no_error(account, driver, server, lock_name):
    errors = _failures(account, driver, _closed_port())
    with Locker(driver=driver, **account.kwargs(database=server.database)) as locker:
        lock = locker.lock(lock_name)
        shown = [repr(locker), str(locker), repr(lock), repr(locker.driver), repr(locker.server)]
        assert lock.acquire(0)
        shown += [repr(lock), repr(locker), *map(repr, locker.list_locks())]
        settings_ = parse_url(account.url(driver))
        shown += [repr(settings_), str(settings_)]
        lock.release()
    assert settings_.connect_kwargs["password"] == SECRET
    shown += [_exception_text(error) for error in errors]
    leaked = [text for text in shown if _leaks(text)]
    assert not leaked


def test_password_echoed_by_the_server_is_masked(account, driver):
    # The server repeats the database name in its error; here that name is the password.
    keys = ["password"] + (["passwd"] if driver == "MySQLdb" else [])  # MySQLdb's own name
    for key in keys:
        options = {**account.kwargs(database=SECRET, password=None), key: SECRET}
        with pytest.raises(LockConnectionError) as raised:
            Locker(driver=driver, **options)
        message = str(raised.value)
        assert "Access denied" in message or "Unknown database" in message
        assert "***" in message
        assert not _leaks(message)


def _hold_until_killed(lock, server, lost):
    with lock:
        server.sql(f"KILL CONNECTION {int(lock.connection_id)}")
        assert lost.wait(10), "the keepalive never reported the killed session"


def test_password_is_in_no_log_record(account, driver, server, caplog, unique_name):
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []
    raised += _failures(account, driver, _closed_port())
    lost = threading.Event()
    kwargs = account.kwargs(database=server.database)
    with Locker(driver=driver, **kwargs) as locker, Locker(driver=driver, **kwargs) as other:
        # An ordinary round, contention, listing.
        lock = locker.lock(unique_name(), refresh_interval_secs=0.05, on_lost=lambda _: lost.set())
        assert lock.acquire(0)
        assert other.lock(lock.name).acquire(0) is False
        assert locker.get_all_locks()
        assert other.list_locks()
        # A lost lock: its session is killed, the keepalive notices and reports it.
        server.sql(f"KILL CONNECTION {int(lock.connection_id)}")
        assert lost.wait(10), "the keepalive never reported the killed session"
        lock.release()
        # A lost lock inside a with block.
        lost.clear()
        with pytest.raises(LockLostError) as in_with:
            _hold_until_killed(lock, server, lost)
        raised.append(in_with.value)
        # force_release of a lock held by another session of the same account.
        held = other.lock(unique_name())
        assert held.acquire(0)
        assert locker.force_release(held.name) is True
        held.release()
    levels = {record.levelno for record in caplog.records}
    assert logging.DEBUG in levels
    assert logging.WARNING in levels  # the lost locks
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        text = f"{formatter.format(record)} {record.args!r}"
        assert not _leaks(text), text
    for error in raised:
        assert not _leaks(_exception_text(error))


# --------------------------------------------------------------------------- URLs

PASSWORDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24)


@settings(max_examples=60, deadline=None)
@given(tail=PASSWORDS)
def test_url_password_round_trips_percent_encoded_and_is_never_shown(tail):
    password = f"{_TOKEN}{tail}"
    url = f"mysql://app:{quote(password, safe='')}@127.0.0.1:1/db?pool_size=2"
    settings_ = parse_url(url)
    assert settings_.connect_kwargs["password"] == password
    assert not _leaks(repr(settings_))
    assert not _leaks(str(settings_))


@settings(max_examples=60, deadline=None)
@given(tail=PASSWORDS)
@example(tail="\uff03")  # FULLWIDTH NUMBER SIGN: NFKC turns it into "#"
@example(tail="\u2100")  # ACCOUNT OF: NFKC turns it into "a/c"
@example(tail="\uff20x")  # FULLWIDTH COMMERCIAL AT
@example(tail="?colour=blue")
@example(tail="/x")
@example(tail="#x")
@example(tail="@#")  # the host after a "#" is a fragment: nothing failed to parse
@example(tail="[")
def test_url_with_an_unencoded_password_never_shows_it_in_an_error(tail):
    password = f"{_TOKEN}{tail}"
    url = f"mysql://app:{password}@127.0.0.1:1/db?colour=blue"
    # Whatever the error (its type is test_hostile's business), it must not show the password.
    with pytest.raises(ValueError) as raised:  # noqa: PT011
        parse_url(url)
    assert not _leaks(_exception_text(raised.value)), str(raised.value)


# --------------------------------------------------------------------------- least privilege


def _usage_only(account):
    grants = account.server.sql(f"SHOW GRANTS FOR '{account.user}'@'%'")
    assert [row[0].split(" TO ")[0] for row in grants] == ["GRANT USAGE ON *.*"]


def test_usage_only_account_can_lock_but_not_kill_another_accounts_session(
    usage_account, driver, make_locker, unique_name
):
    _usage_only(usage_account)
    root_lock = make_locker().lock(unique_name())
    assert root_lock.acquire(0)
    # No database: the account may not use any.
    with Locker(driver=driver, **usage_account.kwargs()) as locker:
        lock = locker.lock(unique_name())
        assert lock.acquire(0)
        assert locker.holder(lock.name) == lock.connection_id
        assert locker.holder(root_lock.name) == root_lock.connection_id
        assert locker.lock(root_lock.name).acquire(0) is False
        with pytest.raises(PermissionDeniedError) as denied:
            locker.force_release(root_lock.name)
        assert "CONNECTION ADMIN" in str(denied.value)
        assert denied.value.server_code == 1095
        assert locker.holder(root_lock.name) == root_lock.connection_id
        lock.release()
        assert locker.holder(lock.name) is None
    assert root_lock.locked()
    root_lock.release()


@pytest.mark.mariadb_only
def test_usage_only_account_can_list_every_lock_on_mariadb(
    usage_account, driver, make_locker, unique_name
):
    if usage_account.server.flavor != "mariadb":
        pytest.skip("MySQL lists locks through performance_schema, which USAGE cannot read")
    _usage_only(usage_account)
    root_lock = make_locker().lock(unique_name())
    assert root_lock.acquire(0)
    with Locker(driver=driver, **usage_account.kwargs()) as locker:
        lock = locker.lock(unique_name())
        assert lock.acquire(0)
        names = locker.get_all_locks()
        assert lock.name in names
        assert root_lock.name in names
        infos = {info.name: info for info in locker.list_locks()}
        assert infos[lock.name].connection_id == lock.connection_id
        assert infos[lock.name].user == usage_account.user
        # Without PROCESS the holder's account is not shown, but the lock and session are.
        assert infos[root_lock.name].connection_id == root_lock.connection_id
        lock.release()
    root_lock.release()


def test_usage_only_account_is_told_which_database_it_may_not_use(usage_account, driver, server):
    with pytest.raises(LockConnectionError) as raised:
        Locker(driver=driver, **usage_account.kwargs(database=server.database))
    assert "Access denied" in str(raised.value)
    assert server.database in str(raised.value)
    assert not _leaks(_exception_text(raised.value))


# --------------------------------------------------------------------------- SQL is constant

#: Methods whose first argument is a statement sent to the server.
STATEMENT_METHODS = frozenset({"run", "run_all", "run_write", "_admin"})
#: ``statements.create`` and ``statements.increment``: a ``FenceStatements``, whose texts only
#: ``fencing_sql.statements_for`` builds, from that module's constants and a table name that
#: ``validate_table`` admits only as plain identifiers (both checked in tests/test_fencing.py).
FENCE_STATEMENTS = frozenset({"statements.create", "statements.increment"})
#: The classes whose objects hold listing queries (``Strategy`` is listing.py's old name).
LISTING_CLASSES = frozenset({"Strategy", "Listing"})
#: Attributes of a listing object that hold a statement; ``details_sql`` holds a tuple of them.
LISTING_TEXTS = frozenset({"sql", "names_sql", "present_sql"})
#: The names listing objects go by where statements are sent (listing.py).
LISTING_RECEIVERS = frozenset({"self", "strategy", "candidate"})
#: Receivers of ``.run``/``.run_all`` that are not sessions (subprocess, the CLI's runners).
NOT_SESSIONS = frozenset({"subprocess"})


class _Constants:
    """The string constants of one module: names bound once, at module level, to constant text.

    Also ``Strategy(...)`` objects built at module level from constants (their ``.sql`` and
    ``.details_sql`` attributes) count as constants.
    """

    def __init__(self, tree: ast.Module, imported: dict[str, _Constants] | None = None) -> None:
        self.names: dict[str, str | tuple[str, ...]] = {}
        self.objects: set[str] = set()
        # ``from .module import NAME``: constants of the package's other modules.
        #: ``from . import module``: the package's modules by local name, for ``module.NAME``.
        self.modules: dict[str, _Constants] = {}
        for node in tree.body:
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 1
                and node.module is None
                and imported is not None
            ):
                for alias in node.names:
                    if alias.name in imported:
                        self.modules[alias.asname or alias.name] = imported[alias.name]
            if isinstance(node, ast.ImportFrom) and node.level == 1 and imported is not None:
                source = imported.get(node.module or "")
                for alias in node.names:
                    if source is not None and alias.name in source.names:
                        self.names[alias.asname or alias.name] = source.names[alias.name]
        assigned: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        assigned[target.id] = assigned.get(target.id, 0) + 1
        for node in tree.body:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not isinstance(target, ast.Name) or assigned.get(target.id) != 1:
                    continue
                value = self.text(node.value)
                if value is not None:
                    self.names[target.id] = value
                elif (
                    isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name)
                    and node.value.func.id in LISTING_CLASSES
                    and all(self.text(arg) is not None for arg in node.value.args)
                    and all(self.text(kw.value) is not None for kw in node.value.keywords)
                ):
                    self.objects.add(target.id)

    def text(self, node: ast.AST) -> str | tuple[str, ...] | None:
        """The constant text (or tuple of texts) ``node`` evaluates to, or ``None``."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.text(node.left), self.text(node.right)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            return None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = self.modules.get(node.value.id)
            if module is not None:
                return module.names.get(node.attr)
            if node.value.id in self.objects and node.attr == "sql":
                return "<Strategy.sql>"
            return None
        if isinstance(node, ast.Tuple):
            parts = [self.text(element) for element in node.elts]
            if all(isinstance(part, str) for part in parts):
                return tuple(parts)  # type: ignore[arg-type]
        return None


def _innermost_functions(tree: ast.Module) -> dict[ast.AST, ast.FunctionDef]:
    """Each node's innermost enclosing function (``ast.walk`` visits outer ones first)."""
    owner: dict[ast.AST, ast.FunctionDef] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            for child in ast.walk(function):
                if child is not function:
                    owner[child] = function
    return owner


def _package_constants() -> dict[str, _Constants]:
    """Each module's own constants, for resolving imports between the package's modules."""
    return {
        path.stem: _Constants(ast.parse(path.read_text(), filename=str(path)))
        for path in sorted(PACKAGE.glob("*.py"))
    }


def _statement_calls():
    """Every call that sends a statement, in every module of the package."""
    modules = _package_constants()
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = _Constants(tree, modules)
        owners = _innermost_functions(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in STATEMENT_METHODS
                and node.args
                and not (
                    isinstance(node.func.value, ast.Name) and node.func.value.id in NOT_SESSIONS
                )
            ):
                receiver = ast.unparse(node.func.value)
                if node.func.attr == "_admin" or "session" in receiver.lower():
                    yield path, node, constants, owners.get(node)


def _is_constant_statement(node: ast.AST, constants: _Constants, function: ast.AST | None) -> bool:
    if constants.text(node) is not None:
        return True
    # The ``sql`` parameter of a statement method itself (``_admin``): its callers are checked.
    if (
        isinstance(node, ast.Name)
        and isinstance(function, ast.FunctionDef)
        and function.name in STATEMENT_METHODS
        and node.id in {arg.arg for arg in function.args.args}
    ):
        return True
    # ``self.sql`` inside class Strategy: set only in __init__, and every Strategy is built at
    # module level from constants (``_Constants.objects``).
    if isinstance(node, ast.Attribute) and ast.unparse(node) == "self.sql":
        return bool(constants.objects)
    if isinstance(node, ast.Attribute) and ast.unparse(node) in FENCE_STATEMENTS:
        return True
    # ``strategy.names_sql``, ``candidate.present_sql``: a listing object, and every one is
    # built at module level of statements.py from constants (``_Constants.objects``).
    listings = constants.objects or _package_constants()["statements"].objects
    if (
        isinstance(node, ast.Attribute)
        and node.attr in LISTING_TEXTS
        and ast.unparse(node.value) in LISTING_RECEIVERS
    ):
        return bool(listings)
    # ``for number, sql in enumerate(strategy.details_sql, 1)``: a listing's constant tuple.
    if isinstance(node, ast.Name) and function is not None and listings:
        for loop in ast.walk(function):
            if isinstance(loop, ast.For) and node.id in {
                n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)
            }:
                iterated = loop.iter
                if isinstance(iterated, ast.Call) and ast.unparse(iterated.func) == "enumerate":
                    iterated = iterated.args[0]
                return (
                    isinstance(iterated, ast.Attribute)
                    and iterated.attr == "details_sql"
                    and ast.unparse(iterated.value) in LISTING_RECEIVERS
                )
    return False


def test_every_statement_is_a_constant():
    calls = list(_statement_calls())
    assert len(calls) >= 10, "the AST walk no longer finds the library's statements"
    bad = [
        f"{path.name}:{call.lineno}: {ast.unparse(call)}"
        for path, call, constants, function in calls
        if not _is_constant_statement(call.args[0], constants, function)
    ]
    assert not bad, "statements built from something other than constants:\n" + "\n".join(bad)


def test_no_statement_is_formatted_anywhere():
    """No f-string, ``%`` or ``.format`` reaches ``execute``/``run``/``_admin`` in the package."""
    bad = []
    for path in sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("drivers/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {*STATEMENT_METHODS, "execute", "query", "query_all"}
                and node.args
            ):
                continue
            first = node.args[0]
            formatted = (
                isinstance(first, ast.JoinedStr)
                or (isinstance(first, ast.BinOp) and isinstance(first.op, ast.Mod))
                or (
                    isinstance(first, ast.Call)
                    and isinstance(first.func, ast.Attribute)
                    and first.func.attr == "format"
                )
            )
            if formatted:
                bad.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


def test_the_constant_check_rejects_built_statements():
    tree = ast.parse(
        "A = 'SELECT 1'\nB = A + ' LIMIT 0'\n"
        "def f(session, name):\n"
        "    session.run(A)\n    session.run(B)\n"
        "    session.run(f'SELECT {name}')\n    session.run(A + name)\n"
        "    session.run('KILL %s' % name)\n    session.run(name)\n"
        "def _admin(sql, params):\n    session.run(sql)\n"
    )
    constants = _Constants(tree)
    function = tree.body[2]
    verdicts = [
        _is_constant_statement(call.args[0], constants, function)
        for call in ast.walk(function)
        if isinstance(call, ast.Call)
    ]
    assert verdicts == [True, True, False, False, False, False]
    admin = tree.body[3]
    call = next(c for c in ast.walk(admin) if isinstance(c, ast.Call))
    assert _is_constant_statement(call.args[0], constants, admin)
    # And the Strategy forms count only where Strategy objects are built from constants.
    strategy = ast.parse("X = Strategy('l', 'SELECT 1', ('SELECT 2',))\n")
    assert _Constants(strategy).objects == {"X"}
    dynamic = ast.parse("def g(q):\n    X = Strategy('l', q, ())\n")
    assert not _Constants(dynamic).objects
