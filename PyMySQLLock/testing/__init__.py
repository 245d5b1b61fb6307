"""Test infrastructure shipped with the library: throwaway servers and a pytest plugin.

Nothing here is needed to use locks. :class:`ThrowawayServer` starts a private MySQL or MariaDB
server from the installed binaries (the library's own test suite, ``pymysqllock demo`` and the
benchmarks use it), and ``pytest -p PyMySQLLock.testing`` gives the tests of an application
a throwaway server and a :class:`~PyMySQLLock.Locker` as fixtures (``plugin``).

The supported names are the ones exported here; the submodules, one concern each, are:

- ``binaries``: finding the server binary and telling which server it is;
- ``datadir``: initialising a datadir and the per-process template copies;
- ``ports``: choosing a free TCP port;
- ``client``: short-lived connections with whichever driver is installed;
- ``cleanup``: orphan reaping and the watchdog process, for owners that die;
- ``server``: :class:`ThrowawayServer`, the lifecycle of one server;
- ``plugin`` and ``entrypoint``: the pytest plugin and its opt-in switch.
"""

from __future__ import annotations

from .binaries import find_server_binary
from .errors import ServerStartError
from .server import ThrowawayServer

__all__ = ["ServerStartError", "ThrowawayServer", "find_server_binary"]

# ``pytest -p PyMySQLLock.testing`` registers this package as a plugin; pytest then loads the
# modules named here. The fixtures live in their own module so that importing the package (the
# demo does) never imports pytest.
pytest_plugins = ["PyMySQLLock.testing.plugin"]
