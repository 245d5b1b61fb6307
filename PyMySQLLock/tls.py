"""What TLS a Locker's connections must have: one meaning for every driver, the mysql client's.

Users say it the way the ``mysql`` client does, with ``ssl_mode`` (``ssl-mode`` in option files
and on the command line): ``DISABLED``, ``PREFERRED``, ``REQUIRED``, ``VERIFY_CA`` or
``VERIFY_IDENTITY``, plus ``ssl_ca``, ``ssl_cert`` and ``ssl_key`` files. The drivers' own TLS
options are understood too (PyMySQL's and mysql-connector's ``ssl_ca``, ``ssl_verify_cert``,
``ssl_verify_identity``, ``ssl_disabled``; mysqlclient's ``ssl`` dict and ``ssl_mode``; an
:class:`ssl.SSLContext` as ``ssl``) and mean the same with every driver. Without a mode:

* a CA file means ``VERIFY_CA`` (``ssl_verify_identity`` makes it ``VERIFY_IDENTITY``);
* any other TLS option (a client certificate, ``ssl_verify_cert``) means at least ``REQUIRED``;
* nothing means ``PREFERRED``: encrypted when the server offers it, unverified.

As for the mysql client, a client certificate without a key (or a key without a certificate)
means both are in that one file; and the blocking driver adapters refuse a TLS file that
cannot be read, naming it (:func:`check_files`), where each driver would fail its own way,
some only once the server offers TLS (mysql-connector also refused a lone certificate).

``REQUIRED`` and above never fall back to plain text: every new connection is checked after
connecting (``Ssl_cipher`` must not be empty) and refused otherwise, whatever the driver did.
This module decides (and checks the files); the driver adapters turn the decision into each
driver's options.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
import sys
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, InvalidArgumentTypeError
from .values import value

if TYPE_CHECKING:
    # The ssl module is imported only when a context is built: it costs a short-lived
    # process such as the command line (run by cron) more than the rest of this module.
    import ssl

__all__ = [
    "CIPHER_SQL",
    "TLS_KWARGS",
    "SslMode",
    "TlsRequest",
    "build_context",
    "check_files",
    "tls_request",
]

#: Asked on a new connection that must be encrypted; an empty value means plain text.
CIPHER_SQL = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"


class SslMode(enum.IntEnum):
    """The mysql client's ``--ssl-mode`` values, weakest first."""

    DISABLED = 0
    PREFERRED = 1
    REQUIRED = 2
    VERIFY_CA = 3
    VERIFY_IDENTITY = 4

    @classmethod
    def parse(cls, value: Any, what: str = "ssl_mode") -> SslMode:
        """:returns: the mode named by ``value`` (any case, ``-`` or ``_``).

        :raises InvalidArgumentTypeError: when ``value`` is not a str or an SslMode.
        :raises InvalidArgumentError: for an unknown name.
        """
        if isinstance(value, SslMode):
            return value
        if not isinstance(value, str):
            raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
        key = value.strip().upper().replace("-", "_")
        if key not in cls.__members__:
            raise InvalidArgumentError(
                f"{what} must be one of {', '.join(cls.__members__)}, not {value!r}"
            )
        return cls[key]


#: Every connect() keyword this module reads (and the adapters replace by their own).
TLS_KWARGS = frozenset(
    {
        "ssl_mode",
        "ssl",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_disabled",
        "ssl_verify_cert",
        "ssl_verify_identity",
    }
)


@value
class TlsRequest:
    """The TLS a Locker's connections must have.

    :param mode: the mode.
    :param ca: the CA file that must have signed the server's certificate, if given.
    :param cert: the client certificate file, if given.
    :param key: the client key file, if given.
    :param context: an :class:`ssl.SSLContext` the user passed as ``ssl`` (PyMySQL's form).
    """

    mode: SslMode
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    context: ssl.SSLContext | None = None

    @property
    def must_encrypt(self) -> bool:
        """Whether a connection in plain text must be refused."""
        return self.mode >= SslMode.REQUIRED

    @property
    def verify_ca(self) -> bool:
        """Whether the server's certificate chain must be verified."""
        return self.mode >= SslMode.VERIFY_CA

    @property
    def verify_identity(self) -> bool:
        """Whether the certificate must also name the host connected to."""
        return self.mode == SslMode.VERIFY_IDENTITY


def _flag(kwargs: dict[str, Any], name: str) -> bool | None:
    value = kwargs.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidArgumentTypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _path(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(
            f"{name} must be a file path str, not {type(value).__name__}"
        )
    return value


def _context_mode(context: ssl.SSLContext) -> SslMode:
    import ssl

    if context.verify_mode == ssl.CERT_NONE:
        return SslMode.REQUIRED
    return SslMode.VERIFY_IDENTITY if context.check_hostname else SslMode.VERIFY_CA


def tls_request(kwargs: dict[str, Any]) -> TlsRequest:
    """Work out the TLS a user's ``connect()`` arguments ask for.

    :param kwargs: the user's keyword arguments (only the TLS ones are read).
    :returns: the request.
    :raises InvalidArgumentError: for an unknown mode, or options that contradict each other
        (``ssl_disabled`` with a verifying mode, a verifying mode with ``ssl_disabled``).
    :raises InvalidArgumentTypeError: for an option of the wrong type.
    """
    native = kwargs.get("ssl")
    # A caller that made an SSLContext has imported ssl: no need to import it to recognize one.
    ssl_module = sys.modules.get("ssl")
    is_context = ssl_module is not None and isinstance(native, ssl_module.SSLContext)
    context: ssl.SSLContext | None = native if is_context else None
    files: dict[str, Any] = {}
    if isinstance(native, dict):
        files = native
    elif native is not None and context is None and native is not False:
        raise InvalidArgumentTypeError(
            f"ssl must be a dict of files or an ssl.SSLContext, not {type(native).__name__}"
        )
    ca = _path(kwargs.get("ssl_ca", files.get("ca")), "ssl_ca")
    cert = _path(kwargs.get("ssl_cert", files.get("cert")), "ssl_cert")
    key = _path(kwargs.get("ssl_key", files.get("key")), "ssl_key")
    # The mysql client's meaning: one file holds both (PEM keeps them apart).
    cert, key = cert or key, key or cert
    disabled = _flag(kwargs, "ssl_disabled")
    verify_cert = _flag(kwargs, "ssl_verify_cert")
    verify_identity = _flag(kwargs, "ssl_verify_identity")
    explicit = kwargs.get("ssl_mode")
    if explicit is not None:
        mode = SslMode.parse(explicit)
        if disabled and mode != SslMode.DISABLED:
            raise InvalidArgumentError(f"ssl_disabled=True contradicts ssl_mode={mode.name}")
    elif disabled:
        mode = SslMode.DISABLED
    elif verify_identity:
        mode = SslMode.VERIFY_IDENTITY
    elif context is not None:
        mode = _context_mode(context)
    elif verify_cert or (ca is not None and verify_cert is None):
        mode = SslMode.VERIFY_CA
    elif ca or cert or key or files:
        mode = SslMode.REQUIRED
    else:
        mode = SslMode.PREFERRED
    if mode == SslMode.DISABLED and context is not None:
        raise InvalidArgumentError("an ssl.SSLContext contradicts ssl_mode=DISABLED")
    return TlsRequest(mode, ca, cert, key, context)


def check_files(request: TlsRequest) -> None:
    """Refuse a TLS file of ``request`` that cannot be read, naming it.

    Not for ``DISABLED``, which reads none. Opened without blocking, so that a FIFO named by
    mistake cannot hang the check; its contents are left to the driver.

    :raises InvalidArgumentError: for a missing or unreadable file, or a directory.
    """
    if request.mode == SslMode.DISABLED:
        return
    named = {"ssl_ca": request.ca, "ssl_cert": request.cert, "ssl_key": request.key}
    for path in dict.fromkeys(path for path in named.values() if path is not None):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            finally:
                os.close(fd)
        except OSError as exc:
            # A lone certificate or key names one file for both: the message says so.
            names = " and ".join(name for name, each in named.items() if each == path)
            raise InvalidArgumentError(
                f"cannot read the {names} file {path}: {exc.strerror}"
            ) from None


def build_context(request: TlsRequest) -> ssl.SSLContext:
    """An :class:`ssl.SSLContext` that checks exactly what ``request`` asks (for PyMySQL).

    :param request: a request of mode ``REQUIRED`` or above.
    :returns: the user's own context, or a new one: verifying against ``request.ca`` (the
        system's CAs when none is given) for ``VERIFY_CA`` and up, checking the host name only
        for ``VERIFY_IDENTITY``, with the client certificate loaded when given.
    :raises InvalidArgumentError: when a file cannot be read.
    """
    import ssl

    if request.context is not None:
        return request.context
    try:
        if request.verify_ca:
            context = ssl.create_default_context(cafile=request.ca)
            # Certificates the servers make for themselves lack extensions this flag demands.
            context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
            context.check_hostname = request.verify_identity
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if request.cert is not None:
            context.load_cert_chain(request.cert, request.key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError(f"cannot use the TLS files: {exc}") from exc
    return context
