"""How the command line finds its server: options, environment and option files to a Locker.

``pymysqllock`` takes its connection the way the mysql client does, from several sources
with a fixed precedence (see :func:`resolve_connection`); this module merges them into one
:class:`ConnectionOptions` and opens the :class:`~PyMySQLLock.Locker`. It is apart from the
argument parser because it is a policy of its own, tested on its own, and the place that
handles the password: it is never logged, and :class:`ConnectionOptions` never shows it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from .config import parse_url
from .drivers import resolve_adapter
from .locker import Locker
from .log import logger
from .tls import check_files, tls_request

__all__ = ["URL_ENV", "ConnectionOptions", "UsageError", "open_locker", "resolve_connection"]

#: The environment variable holding the connection URL.
URL_ENV = "PYMYSQLLOCK_URL"


_NOTHING = object()


# Defined here, not in the command line module, because resolving the connection is the
# first place a command line can prove unworkable, and this module must not import that one.
class UsageError(Exception):
    """The command line cannot be carried out as given (exit 2)."""


class ConnectionOptions:
    """Where and how to connect, resolved from the command line, environment and files.

    A plain class, not a dataclass: defining a dataclass (it compiles the generated methods)
    costs more than the rest of this module, in every ``pymysqllock run`` that cron starts.

    :param driver: the driver name, or ``None`` for the first installed.
    :param connect_kwargs: driver-neutral ``connect()`` arguments.
    :param locker_options: ``Locker`` options from a URL (``namespace``, ...).
    :param source: where the settings came from, for messages.
    """

    def __init__(
        self,
        driver: str | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        locker_options: dict[str, Any] | None = None,
        source: str = "defaults",
    ) -> None:
        self.driver = driver
        self.connect_kwargs: dict[str, Any] = {} if connect_kwargs is None else connect_kwargs
        self.locker_options: dict[str, Any] = {} if locker_options is None else locker_options
        self.source = source

    def __repr__(self) -> str:
        return f"<ConnectionOptions {self.describe()} from {self.source}>"

    def describe(self) -> str:
        """:returns: ``user@host:port`` or ``user@socket``, never the password."""
        kwargs = self.connect_kwargs
        where = kwargs.get("unix_socket") or (
            f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 3306)}"
        )
        user = kwargs.get("user")
        return where if user is None else f"{user}@{where}"


def resolve_connection(
    args: argparse.Namespace,
    environ: dict[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> ConnectionOptions:
    """Work out the connection settings, asking for the password when told to.

    Precedence: ``--url``, then ``--defaults-file``/``--defaults-extra-file``, then
    ``$PYMYSQLLOCK_URL``, then the default option files (unless ``--no-defaults``); the
    single-setting flags override any of them.

    :param args: the parsed command line.
    :param environ: the environment; default :data:`os.environ`.
    :param prompt: asks for the password; default :func:`getpass.getpass`.
    :returns: the settings.
    :raises UsageError: for contradicting options or a password prompt without an answer.
    :raises InvalidArgumentError: for a bad URL or option file, or a TLS file that cannot be
        read (see :func:`~PyMySQLLock.tls.check_files`).
    """
    env = dict(os.environ) if environ is None else environ
    named_files = [path for path in (args.defaults_file, args.defaults_extra_file) if path]
    if args.url and named_files:
        raise UsageError("--url cannot be combined with --defaults-file or --defaults-extra-file")
    if args.defaults_file and args.defaults_extra_file:
        raise UsageError("--defaults-file reads only that file: drop --defaults-extra-file")
    env_url = env.get(URL_ENV, "").strip()
    # The value of a password that asks to be prompted for; only an option file has one.
    prompt_value: object = _NOTHING
    if args.url or (env_url and not named_files):
        url = args.url or env_url
        settings = parse_url(url)
        connection = ConnectionOptions(
            settings.driver,
            dict(settings.connect_kwargs),
            dict(settings.locker_options),
            "--url" if args.url else f"${URL_ENV}",
        )
    else:
        # Imported here: a cron job given a URL reads no option file, and pays for none.
        from . import optionfile

        prompt_value = optionfile.PROMPT
        if args.defaults_file:
            files = [args.defaults_file]
        else:
            files = [] if args.no_defaults else optionfile.default_files(env, env.get("HOME"))
            if args.defaults_extra_file:
                # The mysql client reads the extra file just before the user's ~/.my.cnf.
                files.insert(max(len(files) - 1, 0), args.defaults_extra_file)
        options = optionfile.read_files(files, required=named_files)
        connection = ConnectionOptions(
            connect_kwargs=optionfile.connect_options(options),
            source=", ".join(str(path) for path in files) or "no option file",
        )
        unread = optionfile.unread_tls_options(options)
        if unread and args.ssl_mode is None:
            raise UsageError(
                f"the option files ({connection.source}) set {', '.join(unread)}, which "
                "pymysqllock does not read: say which TLS to use with --ssl-mode (and "
                "--ssl-ca, --ssl-cert, --ssl-key), or read no option file (--no-defaults)"
            )
    kwargs = connection.connect_kwargs
    for name, keyword in (
        ("host", "host"),
        ("port", "port"),
        ("user", "user"),
        ("socket", "unix_socket"),
        ("database", "database"),
        ("password", "password"),
        ("ssl_mode", "ssl_mode"),
        ("ssl_ca", "ssl_ca"),
        ("ssl_cert", "ssl_cert"),
        ("ssl_key", "ssl_key"),
    ):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[keyword] = value
    if args.driver:
        connection.driver = args.driver
    host = kwargs.get("host")
    if host not in (None, "", "localhost") and kwargs.pop("unix_socket", None) is not None:
        # The mysql client's rule: a socket is only for localhost.
        logger.debug("host %s is not localhost: the socket setting is not used", host)
    # Before the password prompt: a TLS file that cannot be read is refused, naming it.
    check_files(tls_request(kwargs))
    if args.password_prompt or ("password" in kwargs and kwargs["password"] is prompt_value):
        if prompt is None:
            import getpass  # only here: it is rarely needed, and every run would pay for it

            prompt = getpass.getpass
        try:
            kwargs["password"] = prompt("Enter password: ")
        except EOFError:
            raise UsageError("no password was entered") from None
    return connection


def open_locker(connection: ConnectionOptions, **locker_options: Any) -> Locker:
    """Connect.

    :param connection: the settings.
    :param locker_options: more :class:`Locker` arguments set by the command itself.
    :returns: a connected :class:`Locker`.
    :raises LockError: when the driver is missing or the server cannot be reached.
    """
    adapter = resolve_adapter(connection.driver)
    options: dict[str, Any] = dict(connection.locker_options)
    options.update(adapter.translate_options(connection.connect_kwargs))
    options.update(locker_options)
    logger.info(
        "connecting to %s with %s (settings from %s)",
        connection.describe(),
        adapter.name,
        connection.source,
    )
    return Locker(driver=adapter, **options)
