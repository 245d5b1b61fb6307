"""What kind of server a Locker talks to, learned from the handshake of its first connection.

Server differences that the lock logic needs (today: whether ``GET_LOCK`` honours fractions of
a second) are answered here, so that no other module compares version strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MARIADB", "MYSQL", "TIDB", "ServerInfo"]

MARIADB = "mariadb"
MYSQL = "mysql"
TIDB = "tidb"

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# MariaDB before 11.0 prefixes its handshake version with "5.5.5-" for old clients' sake.
_REPLICATION_HACK = "5.5.5-"


@dataclass(frozen=True)
class ServerInfo:
    """The server's flavour and version.

    :param flavor: :data:`MARIADB`, :data:`MYSQL` or :data:`TIDB`.
    :param version: ``(major, minor, patch)``.
    :param version_string: the version exactly as announced, for messages.
    """

    flavor: str
    version: tuple[int, int, int]
    version_string: str

    @classmethod
    def from_version_string(cls, announced: str) -> ServerInfo:
        """Recognise the server from its handshake version string.

        :param announced: e.g. ``"5.5.5-10.11.19-MariaDB-0+deb12u1"`` or ``"8.4.3"``.
        :returns: the server info; unknown servers are treated as MySQL.
        """
        text = announced
        lowered = announced.lower()
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
        return cls(flavor, numbers, announced)

    @property
    def fractional_timeouts(self) -> bool:
        """Whether ``GET_LOCK`` waits for fractions of a second (MariaDB; MySQL rounds them)."""
        return self.flavor == MARIADB

    @property
    def label(self) -> str:
        """A short human-readable name, such as ``"MariaDB 10.11.19"``."""
        names = {MARIADB: "MariaDB", MYSQL: "MySQL", TIDB: "TiDB"}
        return f"{names[self.flavor]} {'.'.join(map(str, self.version))}"
