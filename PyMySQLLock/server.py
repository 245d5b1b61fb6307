"""What kind of server a Locker talks to, learned from the handshake of its first connection.

Server differences that the lock logic needs (today: whether ``GET_LOCK`` honours fractions of
a second) are answered here, so that no other module compares version strings.

.. versionadded:: 1.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .values import value, value_field

__all__ = ["MARIADB", "MYSQL", "PROBE_SQL", "TIDB", "UNSUPPORTED_CAUSES", "ServerInfo"]

MARIADB = "mariadb"
MYSQL = "mysql"
TIDB = "tidb"

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
#: Why a server refuses GET_LOCK, by error number, for the message users see.
UNSUPPORTED_CAUSES: Mapping[int, str] = {
    1235: (
        "the server rejects user locks; MariaDB Galera releases of May 2023 (10.4.29, 10.5.20, "
        "10.6.13, 10.11.3; MDEV-30473) do so when wsrep_on=ON: upgrade MariaDB, or run the lock "
        "connections with SET SESSION wsrep_on=OFF; TiDB before 6.1 also has no user locks"
    ),
    1836: (
        "the server is in read-only mode; an Aurora MySQL reader refuses GET_LOCK: connect to "
        "the cluster's writer endpoint"
    ),
}

#: Asked once per Locker: the variables that tell apart the topologies where user locks behave
#: differently. SHOW VARIABLES works on every flavour and for every account, and simply has no
#: row for a variable the server does not know.
PROBE_SQL = (
    "SHOW VARIABLES WHERE Variable_name IN "
    "('version', 'version_comment', 'wsrep_on', 'aurora_version', 'tidb_version')"
)

# MariaDB before 11.0 prefixes its handshake version with "5.5.5-" for old clients' sake.
_REPLICATION_HACK = "5.5.5-"


@value
class ServerInfo:
    """The server's flavour and version.

    :param flavor: :data:`MARIADB`, :data:`MYSQL` or :data:`TIDB`.
    :param version: ``(major, minor, patch)``.
    :param version_string: the version exactly as the server announced it in the handshake.
    """

    flavor: str
    version: tuple[int, int, int]
    version_string: str
    variables: Mapping[str, str] = value_field(default_factory=dict, compare=False)

    @classmethod
    def from_version_string(
        cls, announced: str, variables: Mapping[str, str] | None = None
    ) -> ServerInfo:
        """Recognise the server from its handshake and, if known, its :data:`PROBE_SQL` answer.

        :param announced: e.g. ``"5.5.5-10.11.19-MariaDB-0+deb12u1"`` or ``"8.4.3"``.
        :param variables: variable name (lower case) to value, from :data:`PROBE_SQL`.
        :returns: the server info; unknown servers are treated as MySQL.
        """
        variables = {key.lower(): str(value) for key, value in (variables or {}).items()}
        text = variables.get("version") or announced
        lowered = text.lower() + " " + variables.get("version_comment", "").lower()
        if "tidb_version" in variables:
            lowered += " tidb"
        if "mariadb" in lowered:
            flavor = MARIADB
            if text.startswith(_REPLICATION_HACK):
                text = text[len(_REPLICATION_HACK) :]
        elif "tidb" in lowered:
            flavor = TIDB
        else:
            flavor = MYSQL
        match = _VERSION.search(text)
        numbers = (0, 0, 0)
        if match:
            numbers = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
        return cls(flavor, numbers, announced, variables)

    @property
    def fractional_timeouts(self) -> bool:
        """Whether ``GET_LOCK`` waits for fractions of a second (MariaDB; MySQL rounds them)."""
        return self.flavor == MARIADB

    @property
    def compound_statements(self) -> bool:
        """Whether ``BEGIN NOT ATOMIC ... END`` runs outside a stored program (MariaDB 10.1.1+)."""
        return self.flavor == MARIADB and self.version >= (10, 1, 1)

    @property
    def galera(self) -> bool:
        """Whether Galera replication is on (``wsrep_on=ON``): locks are local to one node."""
        return self.variables.get("wsrep_on", "").upper() in ("ON", "1")

    @property
    def aurora(self) -> bool:
        """Whether this is Amazon Aurora MySQL (it has ``aurora_version``)."""
        return "aurora_version" in self.variables

    @property
    def min_wait_seconds(self) -> float:
        """The shortest wait the server can do: TiDB waits at least one second, even for 0."""
        return 1.0 if self.flavor == TIDB else 0.0

    @property
    def max_wait_seconds(self) -> float:
        """The longest single ``GET_LOCK`` wait the server honours (TiDB clamps at 3600 s)."""
        return 3600.0 if self.flavor == TIDB else 31536000.0

    def warnings(self) -> list[str]:
        """:returns: what users must know about this server before trusting its locks."""
        found = []
        if self.galera:
            found.append(
                "wsrep_on=ON: this is a Galera cluster node; user locks are local to the node "
                "and not replicated, so every process must use the same node"
            )
        if self.flavor == TIDB and self.version < (6, 1, 0):
            found.append("TiDB before 6.1 has no real GET_LOCK; locks are not exclusive")
        return found

    @property
    def label(self) -> str:
        """A short human-readable name, such as ``"MariaDB 10.11.19"``."""
        names = {MARIADB: "MariaDB", MYSQL: "MySQL", TIDB: "TiDB"}
        return f"{names[self.flavor]} {'.'.join(map(str, self.version))}"
