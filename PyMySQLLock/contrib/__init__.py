"""Integrations with frameworks: SQLAlchemy, Django and Celery.

Each submodule imports its framework, and nothing imports the submodules but the user (and
:meth:`PyMySQLLock.Locker.from_engine`), so ``import PyMySQLLock`` never pulls in a framework.
"""
