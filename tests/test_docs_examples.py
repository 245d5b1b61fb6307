"""Every Python example in README.rst and docs/*.rst runs against the test server.

Examples are ``.. code-block:: python`` blocks. Each document's blocks run in order in one
namespace, as a reader would type them, so a later block may use what an earlier one defined.
They are compiled with the document as file name and their real line numbers, so a failure
points at the line of the ``.rst`` file.

Examples connect the way users do, with ``host="localhost", user="root", password="pw",
database="db"``. The ``import`` statements of the examples themselves (and nothing else) get a
``PyMySQLLock`` whose ``Locker`` and a ``pymysql`` whose ``connect`` replace exactly those
placeholder arguments with the test server's. An example that names any other server fails,
unless it is one the example started itself on a non-standard local port: no example may reach
a server that is not the test's.

Other blocks (``console``, ``sql``, ``ini``) are not executed; a block in a language this file
does not know fails the run, so that no Python example can escape by a typo.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest
from server import Server, external_mode, throwaway_possible

import PyMySQLLock
from PyMySQLLock import aio
from PyMySQLLock.aio import AsyncLocker

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst")))

#: What examples pass to Locker() and pymysql.connect(): replaced by the test server's.
PLACEHOLDERS = {"host": "localhost", "user": "root", "password": "pw", "database": "db"}
#: Connect arguments that say which server to reach.
TARGET_KEYS = frozenset(
    {"host", "port", "user", "password", "passwd", "database", "db", "unix_socket"}
)
#: The standard port: an example may never reach a server there unless it is the test's.
STANDARD_PORT = 3306
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
RUN = frozenset({"python"})
NOT_RUN = frozenset({"console", "sql", "ini", "json", "text", "none"})

_DIRECTIVE = re.compile(
    r"^(?P<indent>[ ]*)\.\.[ ]+(?:code-block|code|sourcecode)::[ ]*(?P<language>\S*)[ ]*$"
)


@dataclass(frozen=True)
class Example:
    """One code block of a document."""

    path: Path
    line: int  # 1-based line of the directive
    language: str
    code: str  # padded with blank lines so that line numbers match the document

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def extract(path: Path) -> list[Example]:
    """The code blocks of ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    examples = []
    number = 0
    while number < len(lines):
        match = _DIRECTIVE.match(lines[number])
        if match is None:
            number += 1
            continue
        indent = len(match["indent"])
        body_start = number + 1
        # Directive options (":caption: ...") come right after the directive line.
        while (
            body_start < len(lines)
            and lines[body_start].strip().startswith(":")
            and _indent(lines[body_start]) > indent
        ):
            body_start += 1
        end = body_start
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            end += 1
        body = textwrap.dedent("\n".join(lines[body_start:end]))
        examples.append(
            Example(
                path=path,
                line=number + 1,
                language=match["language"],
                code="\n" * body_start + body + "\n",
            )
        )
        number = end
    return examples


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _python_examples(path: Path) -> list[Example]:
    return [example for example in extract(path) if example.language in RUN]


# --------------------------------------------------------------------------- static checks


def test_documents_are_found():
    names = {path.name for path in DOCUMENTS}
    assert {"README.rst", "index.rst", "quickstart.rst", "concepts.rst"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=_doc_id)
def test_code_blocks_have_known_languages(path):
    for example in extract(path):
        assert example.language in RUN | NOT_RUN, (
            f"{example.where}: code block language {example.language!r} is neither run "
            f"({', '.join(sorted(RUN))}) nor known not to be ({', '.join(sorted(NOT_RUN))})"
        )
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*>>> ", text, re.MULTILINE), (
        f"{_doc_id(path)}: doctest-style '>>>' examples are not run; use a python code-block"
    )


def test_readme_and_docs_have_examples():
    assert len(_python_examples(ROOT / "README.rst")) >= 4
    assert sum(len(_python_examples(path)) for path in DOCUMENTS) >= 20


def test_readme_is_valid_restructuredtext():
    """The README (with HISTORY.rst after it, as on PyPI) renders without a warning."""
    docutils_core = pytest.importorskip(
        "docutils.core", reason="docutils comes with the docs extra (make test installs it)"
    )
    source = "\n".join(
        (ROOT / name).read_text(encoding="utf-8") for name in ("README.rst", "HISTORY.rst")
    )
    docutils_core.publish_doctree(
        source,
        settings_overrides={
            "halt_level": 2,  # a warning is an error
            "report_level": 2,
            "file_insertion_enabled": False,  # as PyPI renders it
            "raw_enabled": False,
        },
    )


# --------------------------------------------------------------------------- running


@dataclass
class DocEnvironment:
    """What the examples of one document see instead of the real entry points."""

    server: Server
    lockers: list[Any] = field(default_factory=list)
    locks: list[Any] = field(default_factory=list)
    connections: list[Any] = field(default_factory=list)
    async_lockers: list[Any] = field(default_factory=list)

    def retarget(self, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The connect arguments to really use for an example's ``what(*args, **kwargs)``."""
        if args:
            pytest.fail(f"{what}() in an example must take keyword arguments only", pytrace=False)
        target = {key: value for key, value in kwargs.items() if key in TARGET_KEYS}
        others = {key: value for key, value in kwargs.items() if key not in TARGET_KEYS}
        if target == PLACEHOLDERS:
            return {**others, **self.server.connect_kwargs()}
        ours = self.server.connect_kwargs()
        host, port = target.get("host"), target.get("port")
        if host == ours["host"] and port == ours["port"]:
            if all(ours.get(key) == value for key, value in target.items()):
                return kwargs  # the test server itself, e.g. from server.connect_kwargs()
        elif host in LOOPBACK and isinstance(port, int) and port != STANDARD_PORT:
            return kwargs  # a throwaway server the example started itself
        shown = {key: ("***" if "pass" in key else value) for key, value in target.items()}
        pytest.fail(
            f"{what}() in an example must connect with {PLACEHOLDERS} (replaced by the test "
            f"server's), not {shown}",
            pytrace=False,
        )

    def locker_class(self) -> type[PyMySQLLock.Locker]:
        env = self

        class Locker(PyMySQLLock.Locker):
            __doc__ = PyMySQLLock.Locker.__doc__

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(**env.retarget("Locker", args, kwargs))
                env.lockers.append(self)

            def lock(self, name: str, **kwargs: Any) -> PyMySQLLock.Lock:
                made = super().lock(name, **kwargs)
                env.locks.append(made)
                return made

        return Locker

    def async_locker_class(self) -> type[AsyncLocker]:
        env = self

        class AsyncLocker(aio.AsyncLocker):
            __doc__ = aio.AsyncLocker.__doc__

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(**env.retarget("AsyncLocker", args, kwargs))
                env.async_lockers.append(self)

            def lock(self, name: str, **kwargs: Any) -> aio.AsyncLock:
                made = super().lock(name, **kwargs)
                env.locks.append(made)
                return made

        return AsyncLocker

    def pymysql_connect(self, *args: Any, **kwargs: Any) -> Any:
        connection = pymysql.connect(**self.retarget("pymysql.connect", args, kwargs))
        self.connections.append(connection)
        return connection

    def namespace(self, path: Path) -> dict[str, Any]:
        """Fresh globals for the examples of ``path``."""
        package = _proxy(PyMySQLLock, Locker=self.locker_class())
        async_package = _proxy(aio, AsyncLocker=self.async_locker_class())
        driver = _proxy(pymysql, connect=self.pymysql_connect)
        real_import = builtins.__import__

        def doc_import(
            name: str,
            globals: Any = None,
            locals: Any = None,
            fromlist: Any = (),
            level: int = 0,
        ) -> Any:
            module = real_import(name, globals, locals, fromlist, level)
            if level == 0:
                top = name.partition(".")[0]
                # `import PyMySQLLock.names` binds the package; `from PyMySQLLock.names
                # import x` takes x from the submodule, which stays the real one.
                if top == "PyMySQLLock" and (name == top or not fromlist):
                    return package
                if name == aio.__name__ and fromlist:
                    return async_package
                if top == "pymysql" and (name == top or not fromlist):
                    return driver
            return module

        example_builtins = dict(vars(builtins))
        example_builtins["__import__"] = doc_import
        return {"__builtins__": example_builtins, "__name__": f"docs_example_{path.stem}"}

    def close(self) -> None:
        for connection in self.connections:
            if connection.open:
                connection.close()
        for locker in self.lockers:
            locker.close()
        left_open = [locker for locker in self.async_lockers if not locker.closed]
        for locker in left_open:
            # Its loop is gone with the example's asyncio.run(): close what can be closed.
            with contextlib.suppress(Exception):
                asyncio.run(locker.close())
        if left_open:
            pytest.fail(f"examples leave {len(left_open)} AsyncLocker(s) open", pytrace=False)


def _proxy(module: types.ModuleType, **overrides: Any) -> types.ModuleType:
    """A module that is ``module`` except for ``overrides`` (PEP 562 ``__getattr__``)."""
    proxy = types.ModuleType(module.__name__, module.__doc__)
    vars(proxy).update(overrides)
    vars(proxy)["__getattr__"] = lambda name: getattr(module, name)
    return proxy


@pytest.fixture
def doc_environment(server: Server) -> Iterator[DocEnvironment]:
    env = DocEnvironment(server)
    try:
        yield env
    finally:
        env.close()


_RUNNABLE_DOCUMENTS = [path for path in DOCUMENTS if _python_examples(path)]


@pytest.mark.parametrize("path", _RUNNABLE_DOCUMENTS, ids=_doc_id)
def test_examples_run(path, doc_environment):
    examples = _python_examples(path)
    if any("ThrowawayServer(" in example.code for example in examples) and (
        not throwaway_possible()
    ):
        # The same rule as the server_factory fixture: only an external server excuses it.
        message = f"{_doc_id(path)} starts a throwaway server, and no server binary is installed"
        if external_mode():
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    namespace = doc_environment.namespace(path)
    for example in examples:
        code = compile(example.code, str(example.path), "exec")
        exec(code, namespace)  # noqa: S102 - running the documentation is the point
    still_held = [lock.name for lock in doc_environment.locks if lock.locked()]
    assert not still_held, f"{_doc_id(path)}: its examples leave locks held: {still_held}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": "localhost", "user": "app", "password": "pw", "database": "db"},
        {"host": "127.0.0.1", "port": STANDARD_PORT, "user": "someone-else"},
        {"unix_socket": "/run/mysqld/mysqld.sock", "user": "root"},
        {"host": "db.example", "port": 3307, "user": "root", "password": "pw"},
    ],
    ids=["other-user", "standard-port", "system-socket", "remote-host"],
)
def test_examples_cannot_reach_another_server(kwargs, doc_environment):
    with pytest.raises(pytest.fail.Exception, match="must connect with"):
        doc_environment.retarget("Locker", (), kwargs)


def test_placeholders_are_replaced_by_the_test_server(doc_environment, server):
    kwargs = doc_environment.retarget("Locker", (), {**PLACEHOLDERS, "namespace": "docs"})
    assert kwargs == {**server.connect_kwargs(), "namespace": "docs"}
