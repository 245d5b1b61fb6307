"""``python -m PyMySQLLock`` and the ``pymysqllock`` console script: the command line.

The command line itself is :mod:`PyMySQLLock.cli`; this module is the process's way in, which
imports it with the cyclic garbage collector held off (see :func:`main`).
"""

from __future__ import annotations

import gc


def main() -> int:
    """Run ``pymysqllock`` with ``sys.argv`` and return its exit status (the console script).

    The collector is off while the command line and the library are imported: the objects an
    import creates (functions, classes, module dicts) live until the process exits, and
    collecting them again and again, dozens of times during the imports, was a noticeable
    share of a ``run`` that cron starts again and again. Frozen afterwards, they are left out
    of every later collection, which runs as usual while the command runs.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .cli import main as command_line
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return command_line()


if __name__ == "__main__":
    raise SystemExit(main())
