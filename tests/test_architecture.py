"""The package's module graph (docs/architecture.rst): layers without cycles, read from the source.

Imports are read with :mod:`ast`, not by importing: an import at module level counts as a run
time edge, one under ``if TYPE_CHECKING:`` as a typing edge, one inside a function (a lazy
import) as neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import PyMySQLLock

PACKAGE = Path(PyMySQLLock.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(module: str) -> tuple[set[str], set[str]]:
    """:returns: the package modules ``module`` imports at run time, and for typing only."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    runtime: set[str] = set()
    typing: set[str] = set()

    def targets(node: ast.ImportFrom | ast.Import) -> set[str]:
        if isinstance(node, ast.Import):
            return {alias.name for alias in node.names if alias.name in MODULES}
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        found = {f"{origin}.{alias.name}" for alias in node.names}
        submodules = found & MODULES.keys()
        # ``from . import x`` imports the submodule x; ``from .m import name`` imports m.
        return submodules if len(submodules) == len(node.names) else submodules | {origin}

    def visit(statements: list[ast.stmt], into: set[str]) -> None:
        for statement in statements:
            if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                visit(statement.body, typing)
            elif isinstance(statement, (ast.If, ast.Try)):
                visit(statement.body, into)
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                into.update(name for name in targets(statement) if name in MODULES)

    visit(ast.parse(path.read_text(encoding="utf-8")).body, runtime)
    return runtime - {module}, typing - {module}


GRAPH = {module: _imports(module) for module in MODULES}


def _reaches(start: str, goal: str, typing: bool) -> list[str] | None:
    """:returns: an import path from ``start`` to ``goal``, or ``None``."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        module = todo.pop()
        runtime, types = GRAPH[module]
        for imported in runtime | types if typing else runtime:
            if imported not in paths:
                paths[imported] = [*paths[module], imported]
                todo.append(imported)
    return paths.get(goal)


def test_no_module_imports_itself_back_at_run_time() -> None:
    cycles = []
    for module, (runtime, _) in GRAPH.items():
        for imported in runtime:
            back = _reaches(imported, module, typing=False)
            if back is not None:
                cycles.append(" -> ".join([module, *back]))
    assert not cycles, cycles


def test_lock_and_pool_do_not_know_the_locker() -> None:
    # A Lock talks to its Locker through LockHost; the pool knows neither.
    for module in ("PyMySQLLock.lock", "PyMySQLLock.pool"):
        path = _reaches(module, "PyMySQLLock.locker", typing=True)
        assert path is None, " -> ".join(path or [])
    assert _reaches("PyMySQLLock.pool", "PyMySQLLock.lock", typing=True) is None


def test_the_pure_modules_do_no_io() -> None:
    io = {"PyMySQLLock.connection", "PyMySQLLock.drivers", "PyMySQLLock.pool"}
    pure = ("statements", "names", "timeouts", "selfwait")
    for module in (f"PyMySQLLock.{name}" for name in pure):
        runtime, types = GRAPH[module]
        assert not (runtime | types) & io, module


def test_every_module_says_its_job_first() -> None:
    missing = [
        module
        for module, path in MODULES.items()
        if not (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    ]
    assert not missing, missing
