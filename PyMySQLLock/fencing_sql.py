"""Fencing tokens in SQL: the counter table's statements and the meaning of the server's answers.

Pure code without I/O, shared by the blocking and the asyncio lock: the callers send the
statements on the session that holds the lock and hand the answers back here.

A token is one row per server lock name in a small InnoDB table, incremented by the holder right
after ``GET_LOCK`` returned 1, on the same session and in autocommit mode::

    INSERT INTO t (name, token) VALUES (name, LAST_INSERT_ID(1))
        ON DUPLICATE KEY UPDATE token = LAST_INSERT_ID(token + 1)

``LAST_INSERT_ID(expr)`` makes the server report the new value in the statement's OK packet
(the driver's ``cursor.lastrowid``), so a token costs one round trip. Only the session that holds
the lock runs the increment, so tokens grow strictly in the order the lock was held, as long
as the row is durable and every holder writes to the same server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LockError,
    PermissionDeniedError,
    UnsupportedServerError,
)
from .server import MARIADB, ServerInfo
from .values import value

__all__ = [
    "DEFAULT_TABLE",
    "ENGINE_QUERY",
    "SERVER_CHECK",
    "FenceStatements",
    "check_engine",
    "check_server",
    "is_missing_table",
    "statement_error",
    "statements_for",
    "token_from",
    "validate_table",
]

#: The counter table's name unless the Locker is given another.
DEFAULT_TABLE = "pymysqllock_fence"

# One identifier: what MySQL accepts unquoted, minus the characters that could need escaping.
# The name is quoted with backticks in every statement; this rule keeps it from ever needing
# more than that.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}")

# The key is the lock name as the *server* compares it, so that two names that are one lock are
# one row. MariaDB compares user lock names byte for byte; MySQL lowercases them in utf8mb3
# (``my_casedn_str(system_charset_info)``). VARBINARY keeps the comparison exact and
# trailing spaces significant, as they are for the locks.
_CREATE = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    "name VARBINARY(255) NOT NULL PRIMARY KEY, "
    "token BIGINT UNSIGNED NOT NULL"
    ") ENGINE=InnoDB"
)
_INCREMENT_BYTES = (
    "INSERT INTO {table} (name, token) VALUES (%s, LAST_INSERT_ID(1)) "
    "ON DUPLICATE KEY UPDATE token = LAST_INSERT_ID(token + 1)"
)
_INCREMENT_LOWERCASED = (
    "INSERT INTO {table} (name, token) VALUES (LOWER(CONVERT(%s USING utf8mb3)), "
    "LAST_INSERT_ID(1)) ON DUPLICATE KEY UPDATE token = LAST_INSERT_ID(token + 1)"
)
#: The counter table's storage engine, which decides whether a token survives a restart (MEMORY
#: forgets, MyISAM may tear); two ``%s``: the database (or ``None``) and the table.
ENGINE_QUERY = (
    "SELECT ENGINE FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s"
)

#: Asked once per Locker before its first token: the settings under which tokens can be wrong.
#: SHOW VARIABLES has no row for a variable the server lacks, so one statement fits every
#: flavour. GLOBAL: a session that turned ``wsrep_on`` off for itself is still on a Galera node.
SERVER_CHECK = (
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only', "
    "'innodb_read_only', 'wsrep_on', 'group_replication_single_primary_mode', "
    "'group_replication_group_name', 'innodb_flush_log_at_trx_commit')"
)

# Server errors of the increment or of CREATE TABLE, by what they mean for the user.
_NO_SUCH_TABLE = 1146
_NO_DATABASE = frozenset({1046, 1049})  # no database selected; unknown database
_DENIED = frozenset({1044, 1142, 1143, 1227})
# --read-only / --super-read-only (1290), read-only mode (1836), read-only transaction (1792),
# innodb_read_only (1874 on MySQL, 1036 "table is read only" on MariaDB), and MariaDB's
# "Running in read-only mode" storage engine error (1030).
_READ_ONLY = frozenset({1290, 1836, 1792, 1874, 1036, 1030})
_BAD_TABLE = frozenset({1054, 1364, 1366, 1406})  # the table exists with other columns


def validate_table(table: object) -> tuple[str | None, str]:
    """Check a counter table name: ``"table"`` or ``"database.table"``.

    :param table: the name given to the Locker.
    :returns: ``(database or None, table)``.
    :raises InvalidArgumentTypeError: when it is not a :class:`str`.
    :raises InvalidArgumentError: when a part is not a plain identifier (letters, digits, ``_``
        and ``$``, at most 64 characters, not starting with a digit).
    """
    if not isinstance(table, str):
        raise InvalidArgumentTypeError(f"fencing_table must be a str, not {type(table).__name__}")
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise InvalidArgumentError(
            f"fencing_table must be 'table' or 'database.table' made of letters, digits, '_' "
            f"and '$' (at most 64 each, not starting with a digit), not {table!r}"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@value
class FenceStatements:
    """The statements for one counter table on one server flavour.

    Built only by :func:`statements_for`, from this module's constant texts and a name that
    passed :func:`validate_table`.

    :param database: the table's database, or ``None`` for the connection's default.
    :param table: the table's own name.
    :param create: ``CREATE TABLE IF NOT EXISTS``.
    :param increment: the increment; one ``%s``: the server lock name.
    """

    database: str | None
    table: str
    create: str
    increment: str

    @property
    def shown(self) -> str:
        """The table's name for messages."""
        return self.table if self.database is None else f"{self.database}.{self.table}"


def statements_for(table: object, server: ServerInfo | None) -> FenceStatements:
    """Build the statements for a counter table.

    :param table: ``"table"`` or ``"database.table"``, checked by :func:`validate_table`.
    :param server: the server, whose flavour decides how a lock name becomes a row key;
        ``None`` when not known yet (only its ``create`` is then meaningful).
    :returns: the statements.
    """
    database, name = validate_table(table)
    quoted = f"`{name}`" if database is None else f"`{database}`.`{name}`"
    bytewise = server is None or server.flavor == MARIADB
    increment = _INCREMENT_BYTES if bytewise else _INCREMENT_LOWERCASED
    return FenceStatements(
        database,
        name,
        _CREATE.replace("{table}", quoted),
        increment.replace("{table}", quoted),
    )


def check_server(server: ServerInfo, variables: Mapping[str, str]) -> list[str]:
    """Refuse a server where tokens cannot be trusted to grow.

    :param server: the server (its probe already tells Galera apart).
    :param variables: lower-case name to value, from :data:`SERVER_CHECK`.
    :returns: warnings for settings that weaken tokens without making them wrong at once.
    :raises UnsupportedServerError: on Galera, a read-only server or multi-primary Group
        Replication.
    """
    values = {key.lower(): str(value).upper() for key, value in variables.items()}
    if server.galera or values.get("wsrep_on") in ("ON", "1"):
        raise UnsupportedServerError(
            "fencing tokens need one writer for the counter, and this is a Galera node "
            "(wsrep_on=ON): user locks are local to a node while the counter row replicates, so "
            "holders on two nodes could take tokens out of order"
        )
    for flag in ("read_only", "super_read_only", "innodb_read_only"):
        if values.get(flag) in ("ON", "1"):
            raise UnsupportedServerError(
                f"fencing tokens are written to the server, and it is read-only ({flag}=ON): "
                "connect to the primary; a replica's counter follows the primary's, so a token "
                "taken there would not be ordered with the primary's"
            )
    if (
        values.get("group_replication_single_primary_mode") == "OFF"
        and variables.get("group_replication_group_name", "").strip()
    ):
        raise UnsupportedServerError(
            "fencing tokens need one writer for the counter, and this server is in a "
            "multi-primary Group Replication group: user locks are local to a member"
        )
    found = []
    if values.get("innodb_flush_log_at_trx_commit") == "0":
        found.append(
            "innodb_flush_log_at_trx_commit=0: a server crash can lose the last second of "
            "fencing tokens, and a token would then be issued twice"
        )
    return found


def statement_error(code: int | None, message: str, statements: FenceStatements) -> LockError:
    """Translate a server error from the counter's statements into the exception to raise.

    :param code: the server's error number.
    :param message: the driver's message.
    :param statements: the counter table's statements (for its name).
    :returns: the exception, with :attr:`~PyMySQLLock.LockError.server_code` set.
    """
    table = statements.shown
    detail = f"server error {code}: {message}"
    error: LockError
    if code in _DENIED:
        error = PermissionDeniedError(
            f"fencing tokens need INSERT and UPDATE on {table} (and CREATE once, unless an "
            f"administrator creates it with 'pymysqllock fencing init'): {detail}"
        )
    elif code in _READ_ONLY:
        error = UnsupportedServerError(
            f"fencing tokens are written to the server, and it refuses writes to {table} "
            f"(read-only): connect to the primary ({detail})"
        )
    elif code in _NO_DATABASE:
        error = InvalidArgumentError(
            f"the fencing table {table} needs a database: connect with database=..., or name "
            f"it 'database.table' in fencing_table ({detail})"
        )
    elif code in _BAD_TABLE:
        error = InvalidArgumentError(
            f"the table {table} exists but is not a fencing counter (columns name VARBINARY "
            f"primary key, token BIGINT UNSIGNED); choose another fencing_table ({detail})"
        )
    else:
        error = LockError(f"taking a fencing token from {table}: {detail}")
    error.server_code = code
    return error


def is_missing_table(code: int | None) -> bool:
    """:returns: whether the error says the counter table does not exist (yet)."""
    return code == _NO_SUCH_TABLE


def check_engine(engine: str | None, statements: FenceStatements) -> bool:
    """Tell whether the counter table exists, and refuse one whose rows may not survive.

    :param engine: the ``ENGINE`` that :data:`ENGINE_QUERY` returned, or
        ``None`` when it returned no row.
    :returns: ``True`` if the table exists (and is InnoDB), ``False`` if it must be created.
    :raises InvalidArgumentError: for a table of another engine.
    """
    if engine is None:
        return False
    if str(engine).upper() != "INNODB":
        raise InvalidArgumentError(
            f"the fencing table {statements.shown} uses the {engine} engine; tokens need "
            "InnoDB, whose committed rows survive a crash (MEMORY forgets them at a restart)"
        )
    return True


def token_from(affected: int | None, insert_id: int | None, statements: FenceStatements) -> int:
    """Read the token from the increment's answer.

    :param affected: the statement's affected-row count (1 for a new row, 2 for an update).
    :param insert_id: the value the OK packet carries (``cursor.lastrowid``).
    :returns: the token, at least 1.
    :raises LockError: when the answer is not that of a committed increment (never a guess).
    """
    if affected in (1, 2) and isinstance(insert_id, int) and insert_id >= 1:
        return insert_id
    raise LockError(
        f"the server's answer to the fencing increment on {statements.shown} carries no token "
        f"(affected rows {affected!r}, insert id {insert_id!r}); is something between the "
        "client and the server rewriting statements?"
    )
