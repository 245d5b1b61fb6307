"""Django management commands of PyMySQLLock."""
