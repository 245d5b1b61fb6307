"""Sphinx configuration for the PyMySQLLock documentation.

Build with ``make docs`` (``sphinx-build -W --keep-going -n -b html docs docs/_build/html``):
warnings are errors and every cross-reference must resolve (``nitpicky``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sphinx.application import Sphinx

# Document the checkout, not whatever version happens to be installed.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from PyMySQLLock.version import __version__  # noqa: E402

project = "PyMySQLLock"
author = "PyMySQLLock developers"
copyright = "2026, PyMySQLLock developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
]

root_doc = "index"
# Plain ``::`` blocks are shell output or SQL, never Python: do not highlight them as Python.
highlight_language = "none"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = True
# Builtins (``str``, ``TimeoutError``...) and ``typing`` names need no inventory: Sphinx's
# Python domain accepts them without a target. Nothing else is ignored.
nitpick_ignore: list[tuple[str, str]] = []
# Standard-library types that appear in signatures. They are external (the Python docs), and
# without a network connection there is no inventory to resolve them against.
nitpick_ignore_regex = [
    ("py:class", r"collections\.abc\.\w+"),
    ("py:class", r"types\.TracebackType"),
    ("py:class", r"os\.PathLike"),
    ("py:class", r"contextlib\.Abstract(Async)?ContextManager"),
    ("py:class", r"ssl\.SSLContext"),
    ("py:class", r"asyncio\.(locks\.)?Event"),
]

# Links into the Python documentation need its objects.inv, which means network access at
# build time. The build must pass offline (CI and development machines have no internet), so
# intersphinx is opt-in: PYMYSQLLOCK_DOCS_INTERSPHINX=1 turns the builtin names into links.
# Without it nothing in these docs depends on an external inventory.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("PYMYSQLLOCK_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping["python"] = ("https://docs.python.org/3", None)

# -- autodoc ----------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = False
autodoc_inherit_docstrings = False
autoclass_content = "class"

# -- HTML -------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"PyMySQLLock {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
pygments_style = "sphinx"
pygments_dark_style = "monokai"


def _dataclass_factory_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """Show a dataclass field's ``default_factory`` default as ``...``.

    ``inspect.signature`` renders it as ``<factory>``, which is not Python, so Sphinx cannot
    parse the signature and splits it at the wrong commas.
    """
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def setup(app: Sphinx) -> None:
    """Sphinx extension hook of this configuration."""
    app.connect("autodoc-process-signature", _dataclass_factory_defaults)
