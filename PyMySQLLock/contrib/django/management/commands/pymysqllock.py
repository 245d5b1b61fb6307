"""``manage.py pymysqllock list|status|release``: the command line on a ``DATABASES`` alias."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from PyMySQLLock import cli
from PyMySQLLock.contrib import django as integration
from PyMySQLLock.errors import LockError

# The exit status of a busy answer, as the command line gives it, with its meaning.
_BUSY_MEANING = {"status": "the lock is held", "release": "the lock was free"}


class Command(BaseCommand):  # type: ignore[misc] # Django ships no types
    """Show and free PyMySQLLock locks on the server of a ``DATABASES`` alias."""

    help = (
        "Show and free PyMySQLLock locks on the server of a DATABASES alias: "
        "list, status NAME, release --force NAME."
    )

    def add_arguments(self, parser: Any) -> None:
        """Add the sub-commands."""
        parser.add_argument(
            "--database", default="default", help="the DATABASES alias (default: default)"
        )
        commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        listing = commands.add_parser("list", help="list the locks held and their holders")
        listing.add_argument("--prefix", help="only names starting with this")
        listing.add_argument("--json", action="store_true", help="print JSON")
        status = commands.add_parser("status", help="tell whether NAME is free or held")
        status.add_argument("name", metavar="NAME")
        release = commands.add_parser(
            "release", help="free NAME by ending the holder's session (KILL CONNECTION)"
        )
        release.add_argument("--force", action="store_true", help="required")
        release.add_argument("name", metavar="NAME")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the sub-command.

        Exit statuses are the command line's: ``status`` 1 when held, ``release`` 1 when free.
        """
        action = options["action"]
        if action == "release" and not options["force"]:
            raise CommandError(
                "release needs --force: it ends the holder's whole server session, while the "
                "holder's work may still be running"
            )
        locker = integration.get_locker(options["database"])
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output):
                if action == "list":
                    status = cli.list_locks(
                        locker, prefix=options["prefix"], as_json=options["json"]
                    )
                elif action == "status":
                    status = cli.lock_status(locker, options["name"])
                else:
                    status = cli.release_lock(locker, options["name"])
        except LockError as exc:
            raise CommandError(str(exc), returncode=cli.EXIT_UNAVAILABLE) from exc
        finally:
            self.stdout.write(output.getvalue(), ending="")
        if status != cli.EXIT_OK:
            raise CommandError(_BUSY_MEANING.get(action, action), returncode=status)
