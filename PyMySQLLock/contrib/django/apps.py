"""The Django app of PyMySQLLock: add ``"PyMySQLLock.contrib.django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class PyMySQLLockConfig(AppConfig):  # type: ignore[misc] # Django ships no types
    """Registers the ``pymysqllock`` management command."""

    name = "PyMySQLLock.contrib.django"
    label = "pymysqllock"
    verbose_name = "PyMySQLLock"
