"""The API reference says what 1.0 added or changed, name by name, and agrees with migration.rst.

Every public method and property of ``Locker`` and ``Lock`` and every public class carries a
``versionadded`` or ``versionchanged`` directive (1.0 changed or added all of them relative to
0.2.0), and each name a directive calls new is listed in docs/migration.rst.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import PyMySQLLock
from PyMySQLLock import Lock, Locker

MIGRATION = (Path(__file__).resolve().parent.parent / "docs" / "migration.rst").read_text()
DIRECTIVE = re.compile(r"^\s*\.\. version(added|changed):: 1\.0\s*$", re.MULTILINE)


def _public_members(cls: type) -> list[tuple[str, str]]:
    """``(qualified name, docstring)`` of the public methods and properties ``cls`` defines."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if isinstance(function, property) or inspect.isfunction(function):
            members.append((f"{cls.__name__}.{name}", function.__doc__ or ""))
    return members


MEMBERS = _public_members(Locker) + _public_members(Lock)
CLASSES = [
    value
    for value in vars(PyMySQLLock).values()
    if inspect.isclass(value) and value.__module__.startswith("PyMySQLLock")
]


def test_members_are_found():
    names = {name for name, _doc in MEMBERS}
    assert {"Locker.lock", "Locker.get_all_locks", "Lock.acquire", "Lock.release"} <= names


@pytest.mark.parametrize(("name", "doc"), MEMBERS, ids=[name for name, _doc in MEMBERS])
def test_member_says_what_changed_in_1_0(name, doc):
    assert DIRECTIVE.search(doc), f"{name}: no versionadded/versionchanged 1.0 directive"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_class_says_what_changed_in_1_0(cls):
    assert DIRECTIVE.search(cls.__doc__ or ""), f"{cls.__name__}: no 1.0 directive"


#: The members a directive calls new; changed ones are described by the page's prose.
NEW_MEMBERS = [name for name, doc in MEMBERS if ".. versionadded:: 1.0" in doc]


@pytest.mark.parametrize("name", NEW_MEMBERS)
def test_new_member_is_listed_in_the_migration_page(name):
    attribute = name.split(".", 1)[1]
    assert re.search(rf"\b{attribute}\b", MIGRATION), f"{name} is new but not in migration.rst"
