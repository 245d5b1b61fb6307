"""The pytest plugin of PyMySQLLock.testing, run in an inner pytest session (pytester).

The example of docs/testing.rst ("Testing code that uses PyMySQLLock") is the test module of
the inner run, so the documented example is what is proven to work.
"""

from __future__ import annotations

import pytest
from server import external_mode, throwaway_possible
from test_docs_examples import ROOT, extract

pytest_plugins = ["pytester"]

DOC = ROOT / "docs" / "testing.rst"
FIXTURES = ("throwaway_server", "locker")


def _documented_test_module() -> str:
    examples = [e for e in extract(DOC) if e.language == "python" and "def test_" in e.code]
    assert len(examples) == 1, f"{DOC}: expected one example test module, found {len(examples)}"
    return examples[0].code


@pytest.fixture
def needs_binary() -> None:
    if not throwaway_possible():
        message = "the plugin starts a throwaway server, and no server binary is installed"
        if external_mode():
            pytest.skip(message)
        pytest.fail(message, pytrace=False)


#: pytest-asyncio, a test dependency of ours and not of these users' suites, warns at start-up
#: of every inner run whose ini lacks its loop-scope option: it is left out of them.
NO_ASYNCIO = ("-p", "no:asyncio")


def test_documented_example_passes_with_the_plugin(pytester, needs_binary):
    pytester.makepyfile(test_app=_documented_test_module())
    # Warnings are errors, as in a strict user suite.
    result = pytester.runpytest("-p", "PyMySQLLock.testing", *NO_ASYNCIO, "-W", "error")
    result.assert_outcomes(passed=2)


def test_plugin_is_off_without_opt_in(pytester):
    pytester.makepyfile(test_app="def test_uses_it(locker):\n    pass\n")
    result = pytester.runpytest(*NO_ASYNCIO)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'locker' not found*"])
    listing = pytester.runpytest("--fixtures", *NO_ASYNCIO).stdout.str()
    assert "PyMySQLLock.testing.plugin" not in listing


@pytest.mark.parametrize(
    "enable",
    [
        pytest.param({"ini": "[pytest]\npymysqllock_fixtures = true\n"}, id="ini-option"),
        pytest.param({"args": ("-p", "PyMySQLLock.testing")}, id="dash-p"),
        pytest.param({"conftest": 'pytest_plugins = ["PyMySQLLock.testing"]\n'}, id="conftest"),
        pytest.param(
            {
                "ini": "[pytest]\npymysqllock_fixtures = true\n",
                "args": ("-p", "PyMySQLLock.testing"),
            },
            id="ini-and-dash-p",
        ),
    ],
)
def test_each_way_of_opting_in_gives_the_fixtures(pytester, enable):
    if "ini" in enable:
        pytester.makeini(enable["ini"])
    if "conftest" in enable:
        pytester.makeconftest(enable["conftest"])
    result = pytester.runpytest(
        "--strict-config", "--fixtures", *NO_ASYNCIO, *enable.get("args", ())
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*fixtures defined from PyMySQLLock.testing.plugin*"])
    for name in FIXTURES:
        result.stdout.fnmatch_lines([f"{name} *-- *plugin.py:*"])
