"""PyMySQLLock.log: the library's logger imports logging only when a record could be seen.

Before anything imported :mod:`logging` nobody can have configured it, so records below
WARNING go nowhere and are dropped without importing it; everything else reaches the real
``logging.getLogger("PyMySQLLock")`` with the caller's own location.
"""

from __future__ import annotations

import ast
import logging
import os

import pytest
from conftest import fresh_interpreter

from PyMySQLLock import log


def _fresh(code: str) -> tuple[object, str]:
    """Run ``code`` in a new interpreter; :returns: its last stdout line (a literal) and stderr."""
    result = fresh_interpreter(code)
    return ast.literal_eval(result.stdout.strip().splitlines()[-1]), result.stderr


def test_records_below_warning_import_nothing_before_logging_is_configured():
    found, stderr = _fresh(
        """
        import sys
        from PyMySQLLock.log import DEBUG, INFO, WARNING, logger
        logger.debug("quiet %s", 1)
        logger.info("quiet too", extra={"lock": "x"})
        enabled = [logger.isEnabledFor(level) for level in (DEBUG, INFO, WARNING)]
        print([("logging" in sys.modules), enabled])
        """
    )
    assert found == [False, [False, False, True]]
    assert stderr == ""


def test_a_warning_reaches_logging_as_without_configuration():
    found, stderr = _fresh(
        """
        import sys
        from PyMySQLLock.log import logger
        logger.warning("lock %r was lost", "job")
        print("logging" in sys.modules)
        """
    )
    assert found is True
    assert stderr == "lock 'job' was lost\n"  # logging.lastResort, as before


def test_a_setup_runs_once_before_the_first_record_that_gets_through():
    found, stderr = _fresh(
        """
        import sys
        from PyMySQLLock import log
        calls = []

        def setup():
            import logging
            calls.append("logging" in sys.modules)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("tool: %(levelname)s: %(message)s"))
            logging.getLogger(log.NAME).addHandler(handler)

        log.when_imported(setup)
        log.logger.info("dropped")
        before = list(calls)
        log.logger.warning("first")
        log.logger.error("second")
        forgotten = []
        log.when_imported(forgotten.append)
        log.cancel(forgotten.append)
        log.logger.warning("third")
        print([before, calls, forgotten])
        """
    )
    assert found == [[], [True], []]
    assert stderr == "tool: WARNING: first\ntool: ERROR: second\ntool: WARNING: third\n"


def test_once_logging_is_imported_every_call_goes_to_the_real_logger(caplog):
    caplog.set_level(logging.DEBUG, logger=log.NAME)
    assert log.logger.isEnabledFor(log.DEBUG)
    log.logger.debug("checking %r", "job", extra={"lock": "job"})
    log.logger.log(log.INFO, "info %d", 2)
    try:
        raise ValueError("boom")
    except ValueError:
        log.logger.exception("it failed")
    log.logger.critical("bad")
    records = [r for r in caplog.records if r.name == log.NAME]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "checking 'job'"),
        (logging.INFO, "info 2"),
        (logging.ERROR, "it failed"),
        (logging.CRITICAL, "bad"),
    ]
    assert records[0].lock == "job"
    assert records[2].exc_info is not None
    assert records[2].exc_info[0] is ValueError
    # The record names the caller, not the stand-in.
    here = test_once_logging_is_imported_every_call_goes_to_the_real_logger.__name__
    assert {(r.funcName, os.path.basename(r.pathname)) for r in records} == {
        (here, os.path.basename(__file__))
    }


@pytest.mark.parametrize("level", [logging.INFO, logging.ERROR])
def test_is_enabled_for_follows_the_real_logger_once_imported(level):
    real = logging.getLogger(log.NAME)
    saved = real.level
    real.setLevel(level)
    try:
        assert log.logger.isEnabledFor(logging.INFO) is (level <= logging.INFO)
        assert log.logger.isEnabledFor(logging.WARNING) is (level <= logging.WARNING)
    finally:
        real.setLevel(saved)


def test_a_record_does_not_look_the_logger_up(caplog, monkeypatch):
    """getLogger() takes logging's module lock; an interrupt landing between its acquire and
    its try would leave it held and every other thread's logging blocked (the interrupt tests
    of test_lifecycle found it): the real logger is looked up once."""
    caplog.set_level(logging.INFO, logger=log.NAME)
    log.logger.info("first")

    original = logging.getLogger

    def refuse(name=None):
        # pytest's own handlers may ask for the root logger.
        assert name != log.NAME, "the library's logger was looked up for a record"
        return original(name)

    monkeypatch.setattr(logging, "getLogger", refuse)
    log.logger.info("second")
    log.logger.debug("third")
    assert [r.getMessage() for r in caplog.records if r.name == log.NAME] == ["first", "second"]
