"""The ``pytest11`` entry point: an off switch, until the pytest configuration turns it on.

Installing PyMySQLLock makes pytest load this module in every run (entry points are loaded
automatically). It must not give fixtures to test suites that never asked for them, so it only
declares the ``pymysqllock_fixtures`` ini option; when that is true it registers the plugin, as
``-p PyMySQLLock.testing`` would.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

__all__ = ["INI_OPTION", "pytest_addoption", "pytest_configure"]

#: The ini option (``pytest.ini``, ``[tool.pytest.ini_options]``...) that enables the plugin.
INI_OPTION = "pymysqllock_fixtures"
_PLUGIN = "PyMySQLLock.testing"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ini option (so that ``--strict-config`` accepts it)."""
    parser.addini(
        INI_OPTION,
        "give tests PyMySQLLock's throwaway_server and locker fixtures",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin when the ini option asks for it and ``-p`` did not already."""
    if config.getini(INI_OPTION) and not config.pluginmanager.has_plugin(_PLUGIN):
        config.pluginmanager.register(importlib.import_module(_PLUGIN), _PLUGIN)
