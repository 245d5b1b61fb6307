"""``python -m PyMySQLLock``: the ``pymysqllock`` command line (see :mod:`PyMySQLLock.cli`)."""

from __future__ import annotations

from PyMySQLLock.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
