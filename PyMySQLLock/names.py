"""Lock names: validation, namespaces, and the mapping of long names to what the server stores.

The two servers disagree about names: MySQL allows 64 characters (and no 4-byte characters),
MariaDB 192 bytes; MariaDB cuts a name at a NUL byte. A name that fits everywhere is sent
verbatim, so PyMySQLLock 0.2.0, other languages and the ``mysql`` client contend on the same
names. Any other name is mapped deterministically to a readable prefix plus a hash that fits::

    <up to 23 characters of the name, unsafe ones as "_">~<40 hex digits of SHA-256>

With a namespace the namespace and :data:`SEPARATOR` come first, and only the part after them is
hashed, so a namespace's names can always be listed by prefix.

.. versionadded:: 1.0
"""

from __future__ import annotations

import functools
from typing import Any

from .errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "HASH_MARK",
    "MAX_NAMESPACE_CHARS",
    "MAX_SERVER_NAME_CHARS",
    "SEPARATOR",
    "cached_server_name",
    "fits_verbatim",
    "server_name",
    "strip_namespace",
    "validate_name",
    "validate_namespace",
]

#: The longest name that both MySQL (64 characters) and MariaDB (192 bytes) accept.
MAX_SERVER_NAME_CHARS = 64
#: Between a namespace and a name: ``namespace="billing"`` turns ``"job"`` into
#: ``"billing.job"``, the form the MySQL manual recommends for lock names.
SEPARATOR = "."
#: Between the readable prefix and the hash of a mapped name.
HASH_MARK = "~"
_HASH_HEX_DIGITS = 40
#: A namespace is short enough that a hashed name still keeps a few readable characters.
MAX_NAMESPACE_CHARS = 20


def _is_safe(char: str) -> bool:
    """Tell whether both servers store ``char`` as is.

    Not NUL (MariaDB cuts the name there), not a surrogate (not encodable), nothing outside
    the BMP (MySQL rejects 4-byte characters).
    """
    code = ord(char)
    return code != 0 and not 0xD800 <= code <= 0xDFFF and code <= 0xFFFF


def fits_verbatim(full_name: str) -> bool:
    """:returns: whether the server can store ``full_name`` unchanged on MySQL and MariaDB."""
    if len(full_name) > MAX_SERVER_NAME_CHARS:
        return False
    if full_name.isascii():  # the common case, checked in C
        return "\0" not in full_name
    return all(map(_is_safe, full_name))


def validate_name(name: Any) -> str:
    """Check a lock name given by the user.

    :param name: the name.
    :returns: the name.
    :raises InvalidArgumentTypeError: when it is not a :class:`str`.
    :raises InvalidArgumentError: when it is empty.
    """
    if not isinstance(name, str):
        raise InvalidArgumentTypeError(f"lock name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidArgumentError("lock name must not be empty")
    return name


def validate_namespace(namespace: Any) -> str | None:
    """Check a namespace given to :class:`~PyMySQLLock.Locker`.

    :param namespace: ``None`` or the namespace.
    :returns: the namespace, or ``None``.
    :raises InvalidArgumentTypeError: when it is neither ``None`` nor a :class:`str`.
    :raises InvalidArgumentError: when it is empty, longer than :data:`MAX_NAMESPACE_CHARS`
        characters, contains :data:`SEPARATOR` (reserved: namespace ``"a.b"`` with name
        ``"c"`` would be the same lock as namespace ``"a"`` with name ``"b.c"``), or has a
        character that cannot be stored verbatim.
    """
    if namespace is None:
        return None
    if not isinstance(namespace, str):
        raise InvalidArgumentTypeError(
            f"namespace must be a str or None, not {type(namespace).__name__}"
        )
    if not namespace:
        raise InvalidArgumentError("namespace must not be empty (use None for no namespace)")
    if SEPARATOR in namespace:
        raise InvalidArgumentError(
            f"namespace must not contain {SEPARATOR!r}, the separator between namespace and "
            f"name (namespace 'a.b' with name 'c' would be the same lock as namespace 'a' "
            f"with name 'b.c'); got {namespace!r}"
        )
    if len(namespace) > MAX_NAMESPACE_CHARS or not fits_verbatim(namespace):
        raise InvalidArgumentError(
            f"namespace must be at most {MAX_NAMESPACE_CHARS} characters, with no NUL, "
            f"surrogate or 4-byte character; got {namespace!r}"
        )
    return namespace


def server_name(name: str, namespace: str | None = None) -> str:
    """Map a (valid) user name to the name sent to the server.

    :param name: the name, already checked by :func:`validate_name`.
    :param namespace: the namespace, already checked by :func:`validate_namespace`.
    :returns: ``namespace + SEPARATOR + name`` when that fits verbatim, else its hashed form.
    """
    prefix = "" if namespace is None else namespace + SEPARATOR
    full = prefix + name
    if fits_verbatim(full):
        return full
    # Hash the whole name (namespace included) so that equal inputs always map to one lock;
    # surrogatepass keeps even unencodable strings distinct instead of failing. hashlib is
    # imported here, for the rare long name: it loads OpenSSL, a cost to every short process.
    import hashlib

    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()
    readable_chars = MAX_SERVER_NAME_CHARS - len(prefix) - len(HASH_MARK) - _HASH_HEX_DIGITS
    readable = "".join(c if _is_safe(c) else "_" for c in name[:readable_chars])
    return f"{prefix}{readable}{HASH_MARK}{digest[:_HASH_HEX_DIGITS]}"


#: :func:`server_name` for the names a program uses again and again (a fresh Lock per run of a
#: job): the mapping is pure, so it is worked out once per name. Only for exact ``str`` names,
#: whose hashing and equality cannot be overridden.
cached_server_name = functools.lru_cache(maxsize=1024)(server_name)


def strip_namespace(stored: str, namespace: str | None) -> str | None:
    """Turn a name read from the server back into the form users see.

    :param stored: a name as the server lists it.
    :param namespace: the Locker's namespace.
    :returns: ``stored`` without the namespace prefix, or ``None`` when it belongs to another
        namespace (or to none). Hashed names come back as stored.
    """
    if namespace is None:
        return stored
    prefix = namespace + SEPARATOR
    if stored.startswith(prefix) and len(stored) > len(prefix):
        return stored[len(prefix) :]
    return None
