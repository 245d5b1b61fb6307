"""``make dist``: the built wheel, installed in a fresh virtualenv, runs the README's quick start.

Run by that virtualenv's interpreter from a directory outside the checkout, with the path of
README.rst as its argument. It checks that PyMySQLLock comes from the virtualenv (the wheel),
starts a throwaway server with the ``PyMySQLLock.testing`` the wheel ships, runs the Python
blocks of the README's "Quick start" section in order, as a reader would type them, with their
placeholder connection arguments pointed at that server, and runs the installed
``pymysqllock`` console script once. Not a pytest module: the suite runs from the checkout.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import PyMySQLLock
from PyMySQLLock.testing import ThrowawayServer

#: What the README's examples pass to Locker(): replaced by the throwaway server's.
PLACEHOLDERS = {"host": "localhost", "user": "root", "password": "pw", "database": "db"}
SECTION = "Quick start"
_BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)


def quick_start_blocks(readme: Path) -> list[str]:
    """The Python blocks of the README's quick start section, dedented."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n{'=' * len(SECTION)}\n")
    end = re.compile(r"\n[^\n]+\n=+\n").search(text, start + len(SECTION) + 2)
    section = text[start : end.start() if end else len(text)]
    blocks = [
        "\n".join(line[3:] for line in match.group(1).splitlines())
        for match in _BLOCK.finditer(section)
    ]
    if not blocks:
        raise SystemExit(f"no python blocks in the {SECTION!r} section of {readme}")
    return blocks


def main() -> int:
    readme = Path(sys.argv[1])
    package = Path(PyMySQLLock.__file__).resolve()
    if Path(sys.prefix).resolve() not in package.parents:
        print(f"PyMySQLLock was imported from {package}, not from {sys.prefix}")
        return 1
    real_locker = PyMySQLLock.Locker
    # On MariaDB it installs metadata_lock_info, which get_all_locks() needs there.
    with ThrowawayServer() as server:

        class Locker(real_locker):  # type: ignore[misc,valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                if {key: kwargs.get(key) for key in PLACEHOLDERS} == PLACEHOLDERS:
                    kwargs.update(server.connect_kwargs())
                super().__init__(*args, **kwargs)

        # The blocks' own "from PyMySQLLock import Locker" gets the one above.
        PyMySQLLock.Locker = Locker
        namespace: dict[str, Any] = {"__name__": "__quickstart__"}
        for block in quick_start_blocks(readme):
            code = compile(block, f"{readme} ({SECTION})", "exec")
            exec(code, namespace)  # noqa: S102 - running the documentation is the point
        namespace["locker"].close()
        script = Path(sys.executable).parent / "pymysqllock"
        subprocess.run(
            [str(script), "run", "--no-defaults", "--url", server.url, "quick-start", "--", "true"],
            check=True,
            timeout=60,
        )
    print(f"the quick start ran with PyMySQLLock {PyMySQLLock.__version__} from {package.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
