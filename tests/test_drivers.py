"""The driver registry: one list of drivers that every other list is read from, and the private
attributes of the drivers that the adapters' fast paths depend on."""

from __future__ import annotations

import configparser
import functools
import importlib.metadata
import logging
import pickle
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import DRIVER_IDS, DRIVERS

import PyMySQLLock.drivers
from PyMySQLLock import Locker
from PyMySQLLock.cli import build_parser
from PyMySQLLock.config import parse_url
from PyMySQLLock.contrib.sqlalchemy import DIALECT_DRIVERS
from PyMySQLLock.drivers import DRIVER_NAMES, Driver, resolve_adapter
from PyMySQLLock.statements import STILL_HELD

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = PyMySQLLock.drivers.DRIVERS


def test_every_list_of_drivers_is_the_registry() -> None:
    assert tuple(entry.name for entry in REGISTRY) == DRIVER_NAMES
    assert (DRIVER_NAMES, tuple(entry.short for entry in REGISTRY)) == (DRIVERS, DRIVER_IDS)
    assert set(DIALECT_DRIVERS.items()) == {(entry.dialects[0], entry.name) for entry in REGISTRY}
    help_text = build_parser().format_help() + "".join(
        action.format_help()
        for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        for action in action.choices.values()
    )
    for entry in REGISTRY:
        assert entry.name in help_text
        for dialect in entry.dialects:
            assert parse_url(f"mysql+{dialect}://u@h/db").driver == entry.name
        for spelling in (entry.name, entry.name.upper(), *entry.aliases):
            assert type(resolve_adapter(spelling)) is entry.adapter


def test_setup_cfg_installs_every_driver() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg", encoding="utf-8")
    extras = setup["options.extras_require"]

    def packages(extra: str) -> set[str]:
        lines = extras[extra].split("\n")
        return {line.split(">")[0].split("=")[0].strip() for line in lines if line.strip()}

    for entry in REGISTRY:
        assert entry.package in packages(entry.extra), entry
        assert entry.package in packages("all"), entry
        assert entry.package in packages("test"), entry


def test_the_docs_table_lists_every_driver() -> None:
    text = (ROOT / "docs" / "architecture.rst").read_text(encoding="utf-8")
    table = text.split(".. list-table::", 1)[1].split("\n\n", 2)[1]
    rows = [row for row in table.split("   * - ")[1:] if "package" not in row]
    found = [[cell.strip() for cell in row.split("\n     - ")] for row in rows]
    expected = [
        [
            f"``{entry.name}``",
            entry.package,
            f"``{entry.extra}``",
            f"``mysql+{entry.dialects[0]}://``",
            f":class:`~PyMySQLLock.drivers.{entry.adapter.__name__}`",
        ]
        for entry in REGISTRY
    ]
    assert found == expected


def test_the_public_names_keep_their_home() -> None:
    for name in PyMySQLLock.drivers.__all__:
        assert hasattr(PyMySQLLock.drivers, name)
    for entry in REGISTRY:
        assert getattr(PyMySQLLock.drivers, entry.adapter.__name__) is entry.adapter
        adapter = pickle.loads(pickle.dumps(entry.adapter()))  # noqa: S301 - our own bytes
        assert type(adapter) is entry.adapter


#: The drivers whose adapters use private attributes in their fast paths.
WITH_FAST_PATHS = [entry for entry in REGISTRY if entry.adapter.private_attributes]


@pytest.mark.parametrize("entry", WITH_FAST_PATHS, ids=lambda entry: entry.short)
def test_the_private_attributes_the_fast_paths_use_exist(server, entry: Driver) -> None:
    # A driver release that renames one of them must fail here, loudly, rather than leave a
    # fast path silently off (or writing an attribute nobody reads).
    locker = Locker(driver=entry.name, **server.connect_kwargs())
    try:
        session, _ = locker._pool.checkout()
        try:
            missing = [
                f"{path}.{name}".lstrip(".")
                for path, names in entry.adapter.private_attributes.items()
                for name in names
                if not hasattr(
                    functools.reduce(getattr, filter(None, path.split(".")), session.raw), name
                )
            ]
        finally:
            locker._pool.checkin(session)
        assert locker.driver.fast_paths
    finally:
        locker.close()
    version = importlib.metadata.version(entry.package)
    assert not missing, (
        f"{entry.package} {version} has none of {missing}: update {entry.adapter.__name__}"
    )


@pytest.mark.parametrize("entry", WITH_FAST_PATHS, ids=lambda entry: entry.short)
def test_a_renamed_private_attribute_turns_the_fast_paths_off_and_locks_still_work(
    server, entry: Driver, lock_name: str, sql: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base = entry.adapter
    checked = threading.Event()  # a keepalive check ran, through the public API

    class FutureRelease(base):  # type: ignore[misc, valid-type]
        private_attributes: ClassVar[Mapping[str, tuple[str, ...]]] = {
            **base.private_attributes,
            "": (*base.private_attributes[""], "_renamed_by_a_future_release"),
        }

        def query(self, cursor: Any, sql_text: str, params: Any) -> Any:
            if sql_text == STILL_HELD:
                checked.set()
            return super().query(cursor, sql_text, params)

    caplog.set_level(logging.DEBUG, logger="PyMySQLLock")
    with Locker(driver=FutureRelease(), **server.connect_kwargs()) as locker:
        assert locker.driver.fast_paths is False
        assert "_renamed_by_a_future_release" in caplog.text
        lock = locker.lock(lock_name, refresh_interval_secs=0.2)
        assert lock.acquire(0)
        assert checked.wait(10), "the keepalive never checked the lock"
        assert lock.locked()
        assert sql("SELECT IS_USED_LOCK(%s)", (lock.server_name,))[0][0] == lock.connection_id
        lock.release()
        assert sql("SELECT IS_USED_LOCK(%s)", (lock.server_name,))[0][0] is None


@pytest.mark.parametrize("entry", WITH_FAST_PATHS, ids=lambda entry: entry.short)
def test_a_connection_opened_while_the_first_is_checked_gets_no_fast_paths_it_lacks(
    server, entry: Driver, lock_name: str
) -> None:
    # A session reads fast_paths once, when made: a second connection opened while the first
    # one's check is still running must not be made a session with the fast paths still on.
    base = entry.adapter
    first_in, second_made = threading.Event(), threading.Event()
    calls: list[int] = []

    class FutureRelease(base):  # type: ignore[misc, valid-type]
        private_attributes: ClassVar[Mapping[str, tuple[str, ...]]] = {
            **base.private_attributes,
            "": (*base.private_attributes[""], "_renamed_by_a_future_release"),
        }

        def missing_private_attributes(self, raw: Any) -> list[str]:
            calls.append(1)
            if len(calls) == 1:
                first_in.set()
                second_made.wait(10)
            return super().missing_private_attributes(raw)  # type: ignore[no-any-return]

    locker = Locker(driver=FutureRelease(), lazy=True, **server.connect_kwargs())
    try:
        pool = locker._pool
        first: list[Any] = []
        opener = threading.Thread(target=lambda: first.append(pool.checkout(fresh=True)[0]))
        opener.start()
        assert first_in.wait(10), "the first connection was never checked"
        try:
            second, _ = pool.checkout(fresh=True)
        finally:
            second_made.set()
            opener.join(10)
        for session in (second, *first):
            with session.mutex:
                assert session.send(STILL_HELD, (lock_name,)) is False  # nothing sent
                assert session.run("SELECT 1") == (1,)
            pool.checkin(session)
        assert len(first) == 1
        assert locker.driver.fast_paths is False
    finally:
        locker.close()
