"""The library's logger, ``logging.getLogger("PyMySQLLock")``, imported only when it can matter.

Importing :mod:`logging` imports ``traceback``, ``linecache``, ``tokenize`` and ``string``: a
noticeable share of a ``pymysqllock run`` that cron starts again and again, and which logs
nothing at all unless something goes wrong. :data:`logger` stands for the library's logger and
imports :mod:`logging` the first time a record could be seen by anyone:

* once :mod:`logging` has been imported (by the application, a test runner, the command
  line's ``-v``), every call goes straight to the real logger, whatever its configuration;
* before that nobody can have configured it, so the defaults apply: the root logger's level
  is WARNING, and records below it go nowhere. Those are dropped here without importing
  :mod:`logging`; a WARNING or above imports it and goes through as before (to the
  application's handlers, or ``logging.lastResort``).

The records are the real logger's own, with the caller's file, function and line (the calls
pass ``stacklevel`` on). Code that wants the real :class:`logging.Logger` (to add a handler)
uses ``logging.getLogger("PyMySQLLock")`` as before, or :func:`when_imported` to configure it
only if a record comes.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import logging

__all__ = ["DEBUG", "INFO", "NAME", "WARNING", "cancel", "logger", "when_imported"]

#: The logger's name.
NAME = "PyMySQLLock"
#: The levels, as :mod:`logging` numbers them.
DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50

_setups: list[Callable[[], None]] = []
_setups_lock = threading.Lock()


def when_imported(setup: Callable[[], None]) -> None:
    """Run ``setup`` just before the first record goes to :mod:`logging` (once).

    That is a WARNING or above while :mod:`logging` is not imported, or any call once it is.

    :param setup: configures logging (the command line adds its stderr handler); it must not
        log through :data:`logger`.
    """
    with _setups_lock:
        _setups.append(setup)


def cancel(setup: Callable[[], None]) -> None:
    """Forget ``setup`` if it has not run."""
    with _setups_lock:
        if setup in _setups:
            _setups.remove(setup)


_library: list[logging.Logger] = []  # the real logger, once looked up


def _real() -> logging.Logger:
    if _setups:
        with _setups_lock:
            while _setups:
                _setups.pop(0)()
    if not _library:
        import logging

        # Looked up once: getLogger() takes logging's module lock, which a record must not
        # need (an interrupt between its acquire and its try would leave it held).
        _library.append(logging.getLogger(NAME))
    return _library[0]


class _Logger:
    """The part of :class:`logging.Logger` the library calls, forwarded when it can matter."""

    __slots__ = ()

    def isEnabledFor(self, level: int) -> bool:
        """Whether a record at ``level`` would be handled (:meth:`logging.Logger.isEnabledFor`)."""
        if "logging" not in sys.modules:
            # Nobody configured logging: the root logger's default. A pending setup runs with
            # the first record that gets through.
            return level >= WARNING
        return _real().isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log ``msg % args`` at ``level``, as :meth:`logging.Logger.log`."""
        self._at(level, msg, args, kwargs)

    def _at(self, level: int, msg: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if level < WARNING and "logging" not in sys.modules:
            return
        # The common case in an application, which has imported logging: a DEBUG record of
        # the acquire path that nobody wants. Ask the real logger's cached level first, as a
        # direct call would, before building anything (the lock and release paths log twice
        # per cycle).
        real = _library[0] if _library and not _setups else _real()
        if not real.isEnabledFor(level):
            return
        # Skip this module's two frames: the record names the library's caller.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
        real.log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """As :meth:`logging.Logger.debug`."""
        self._at(DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """As :meth:`logging.Logger.info`."""
        self._at(INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """As :meth:`logging.Logger.warning`."""
        self._at(WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """As :meth:`logging.Logger.error`."""
        self._at(ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """As :meth:`logging.Logger.exception`: ERROR with the exception being handled."""
        kwargs.setdefault("exc_info", True)
        self._at(ERROR, msg, args, kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """As :meth:`logging.Logger.critical`."""
        self._at(CRITICAL, msg, args, kwargs)


#: The library's logger (see the module's description).
logger = _Logger()
