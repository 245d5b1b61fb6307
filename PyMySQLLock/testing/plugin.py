"""The pytest plugin: a throwaway server and a Locker for the tests of code that uses locks.

Enabled with ``pytest -p PyMySQLLock.testing`` (or ``addopts``, or ``pymysqllock_fixtures =
true`` in the pytest configuration, see :mod:`.entrypoint`). It only defines fixtures: nothing
starts until a test asks for one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..locker import Locker
from .server import ThrowawayServer

__all__ = ["locker", "throwaway_server"]


@pytest.fixture(scope="session")
def throwaway_server() -> Iterator[ThrowawayServer]:
    """A started :class:`~PyMySQLLock.testing.ThrowawayServer`, shared by the whole session.

    It is removed at the end of the session. Fails every test that uses it, with the reason,
    when no ``mariadbd`` or ``mysqld`` binary is installed or the server cannot start.
    """
    with ThrowawayServer() as server:
        yield server


@pytest.fixture
def locker(throwaway_server: ThrowawayServer) -> Iterator[Locker]:
    """A :class:`~PyMySQLLock.Locker` connected to :func:`throwaway_server`.

    Closed after the test, which releases every lock the test left held.
    """
    with Locker(**throwaway_server.connect_kwargs()) as made:
        yield made
