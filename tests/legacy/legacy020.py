"""pytest plugin: run PyMySQLLock 0.2.0's own test suite against this package, unchanged.

``make test`` downloads 0.2.0's sdist, extracts its ``tests/`` into ``.cache/`` and runs them
with ``-p legacy020``. The only change is where they connect: their ``mysql_conn_params``
fixture returns ``{"user": "root"}`` (the server on localhost:3306), and this plugin adds the
host, port and database of a throwaway server it starts, to that same dict. Nothing in their
files is edited.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from PyMySQLLock.testing import ThrowawayServer

_SERVER: list[ThrowawayServer] = []


def pytest_configure(config: pytest.Config) -> None:
    server = ThrowawayServer()
    server.start()
    _SERVER.append(server)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _SERVER:
        _SERVER.pop().close()


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    outcome = yield
    if fixturedef.argname == "mysql_conn_params" and _SERVER:
        params = outcome.get_result()
        # The same dict the fixture returned (and pytest cached): their tests see the change.
        params.update(_SERVER[0].connect_kwargs())
