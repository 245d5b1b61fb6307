"""A fast path for the one-row statements PyMySQLLock runs on mysql-connector-python.

On the connector's pure-Python connection, :class:`ConnectorFastPath` sends a statement's
``COM_QUERY`` packet and reads its answer straight from the connection's socket, instead of
going through the cursor and the connector's packet layer.

Why: the connector reads each packet with two ``recv()`` calls, and gives each a
``settimeout()`` (an ioctl) and a ``poll()`` of its own, then parses every column definition into
a description: about 27 system calls and most of the CPU of a one-row answer. The keepalive
checks each held lock once per interval on its own connection, so with 1,000 locks that cost is
the keepalive's CPU. The fast path writes the command packet with one ``write()`` and reads the
whole answer with (normally) one ``read()`` into a buffer, then walks the text protocol itself.

When: only on a connected pure-Python connection past its handshake, with plain (uncompressed)
packets and no unread result, for one statement whose parameters are plain values (see
:meth:`ConnectorFastPath.query` for the cursor's conditions). Whatever it does not know goes
through the connector's own code: for a compressed or still-connecting connection, a C-extension
connection, a release of the connector without a network broker, or a statement it does not
build itself, the methods return :data:`UNHANDLED` (or ``False``) before sending or reading
anything, and the driver adapter runs the connector's code instead; an answer that starts with a
LOCAL INFILE request is handed to the connector's own handling of it.

This module is internal to :mod:`PyMySQLLock.drivers`.
"""

from __future__ import annotations

import enum
import importlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Final, Literal

if TYPE_CHECKING:
    import socket

__all__ = ["UNHANDLED", "ConnectorFastPath"]

#: Bytes of a packet header: a 3-byte little-endian payload length and a sequence id.
_HEADER_SIZE = 4
#: A payload of this length continues in the next packet.
_MAX_PAYLOAD = 0xFFFFFF
#: Bytes asked for by one read; a check's answer is about 100.
_READ_SIZE = 16384
#: Prepended to a payload for the connector's packet parsers, which skip a header they never read.
_NO_HEADER = bytes(_HEADER_SIZE)
#: First payload byte of an OK, a LOCAL INFILE request, an EOF, and an error packet.
_OK, _LOCAL_INFILE, _EOF, _ERR = 0x00, 0xFB, 0xFE, 0xFF
#: A NULL value in a text-protocol row.
_NULL = 0xFB
#: An EOF packet (when the server sends them) is shorter than this; a row starting with 0xFE is
#: at least 9 bytes long.
_EOF_LIMIT = 9
#: Width of a length-encoded integer, by its first byte (below 0xFB the byte is the value).
_LENENC_WIDTH = {0xFC: 2, 0xFD: 3, 0xFE: 8}
#: The column-definition payload ends with 13 fixed bytes: their length byte (0x0C), charset,
#: display length, type, flags, decimals and filler; the type is 6 bytes before the end.
_FIXED_FIELDS, _FIXED_FIELDS_LENGTH, _TYPE_FROM_END = 13, 0x0C, 6
#: Parameter types whose escaped form depends only on the value and the connection's settings,
#: so that the statement can be kept (``bool`` is listed apart from ``int`` in the key).
_CACHEABLE_PARAMETERS = frozenset({str, int, float, bool, bytes, type(None)})
#: Statements kept per adapter before the cache starts over (each entry is a few hundred bytes).
_STATEMENT_CACHE_SIZE = 4096


class _ConnectorWire:
    """The parts of mysql-connector-python the fast path uses, looked up once per adapter.

    :param module: the imported ``mysql.connector``.
    :raises ImportError: on an older release, whose socket layer has no network broker; the
        adapter then always uses the connector's own code.
    """

    def __init__(self, module: Any) -> None:
        constants = importlib.import_module(f"{module.__name__}.constants")
        cursor = importlib.import_module(f"{module.__name__}.cursor")
        network = importlib.import_module(f"{module.__name__}.network")
        conversion = importlib.import_module(f"{module.__name__}.conversion")
        utils = importlib.import_module(f"{module.__name__}.utils")
        self.errors: Any = importlib.import_module(f"{module.__name__}.errors")
        # The connector has imported socket by now; this module does not at its own import,
        # which every run of a program using another driver would pay for.
        import socket

        #: The plain socket class (a subclass may not be non-blocking underneath).
        self.plain_socket: type[socket.socket] = socket.socket
        #: What a socket timeout raises (an OSError of its own before Python 3.10).
        self.socket_timeout: type[OSError] = socket.timeout
        if not hasattr(network, "NetworkBrokerPlain"):
            raise ImportError("mysql.connector has no NetworkBrokerPlain")
        self.plain_broker: type = network.NetworkBrokerPlain
        self.converter: type = conversion.MySQLConverter
        self.cursor: type = cursor.MySQLCursor
        self.read_lc_string_list: Callable[[bytes], tuple[bytes | None, ...] | None] = (
            utils.read_lc_string_list
        )
        self.query_command = bytes([constants.ServerCmd.QUERY])
        self.query_attributes: int = constants.ClientFlag.CLIENT_QUERY_ATTRIBUTES
        self.deprecate_eof: int = constants.ClientFlag.DEPRECATE_EOF
        self.more_results: int = constants.ServerFlag.MORE_RESULTS_EXISTS
        # Releases before read_timeout leave the socket's timeout as connect() set it.
        self.has_read_timeout = "read_timeout" in getattr(constants, "DEFAULT_CONFIGURATION", {})
        field = constants.FieldType
        # The types the stock converter turns into int() of the text: one int column, the
        # answer of every statement PyMySQLLock runs, skips the connector's row conversion.
        self.integer_types = frozenset(
            {field.TINY, field.SHORT, field.INT24, field.LONG, field.LONGLONG}
        )

    def server_error(self, payload: bytes | bytearray) -> BaseException:
        """:returns: the connector's own exception for an error packet's payload."""
        return self.errors.get_exception(_NO_HEADER + payload)  # type: ignore[no-any-return]

    def protocol_error(self, message: str) -> BaseException:
        """:returns: the connector's exception for an answer that breaks the protocol."""
        return self.errors.InterfaceError(message)  # type: ignore[no-any-return]

    def socket_error(self, stream: Any, exc: OSError, *, reading: bool) -> BaseException:
        """:returns: the exception the connector's socket layer raises for ``exc``.

        Releases without read and write timeouts report a timeout like any socket error.
        """
        if isinstance(exc, (self.socket_timeout, TimeoutError)):
            name = "ReadTimeoutError" if reading else "WriteTimeoutError"
            if hasattr(self.errors, name):
                message = exc.strerror if reading else None
                return getattr(self.errors, name)(errno=3024, msg=message)  # type: ignore[no-any-return]
        reason = f"Errno {exc.errno}: {exc.strerror}" if exc.errno else str(exc)
        return self.errors.OperationalError(errno=2055, values=(stream.address, reason))  # type: ignore[no-any-return]


class _Answer:
    """The packets of one answer, read from a connector socket with as few reads as possible.

    After a command the server sends nothing but that command's answer until the next command,
    so a read of everything that has arrived takes nothing that belongs to anyone else.

    :param stream: the connector's ``MySQLSocket`` (for error messages).
    :param sock: its socket, already given the read timeout.
    :param wire: the connector's parts.
    :param arrived: whether the answer has probably arrived (the keepalive waited for it); if
        not, the first read waits at once instead of trying a read that would find nothing.
    """

    __slots__ = ("_buffer", "_fd", "_position", "_sock", "_stream", "_wire", "sequence")

    def __init__(
        self, stream: Any, sock: socket.socket, wire: _ConnectorWire, arrived: bool
    ) -> None:
        self._stream = stream
        self._sock = sock
        self._wire = wire
        # A plain socket with a timeout is non-blocking underneath, so a read of its descriptor
        # returns at once; the socket's own recv() would first poll() even when data is there.
        plain = type(sock) is wire.plain_socket
        self._fd = sock.fileno() if plain and sock.gettimeout() else -1
        self._buffer: bytes | bytearray = self._receive(_READ_SIZE, arrived)
        self._position = 0
        #: The sequence id of the last packet read (the connector keeps it for LOCAL INFILE).
        self.sequence = 0

    @property
    def done(self) -> bool:
        """Whether every byte read so far has been consumed."""
        return self._position == len(self._buffer)

    def packet(self) -> bytes | bytearray:
        """:returns: the next payload, joined from its parts when it fills several packets."""
        buffer, position = self._buffer, self._position
        start = position + _HEADER_SIZE
        if start <= len(buffer):
            end = start + (
                buffer[position] | buffer[position + 1] << 8 | buffer[position + 2] << 16
            )
            if end <= len(buffer) and end - start < _MAX_PAYLOAD:
                # The usual case, inline: a whole packet that is already buffered.
                self._position = end
                self.sequence = buffer[position + 3]
                return buffer[start:end]
        payload = self._next()
        if len(payload) < _MAX_PAYLOAD:
            return payload
        parts = [payload]
        while len(parts[-1]) == _MAX_PAYLOAD:
            parts.append(self._next())
        return b"".join(parts)

    def _next(self) -> bytes | bytearray:
        """:returns: the next packet's payload, reading until it is whole."""
        buffer, position = self._buffer, self._position
        if len(buffer) - position < _HEADER_SIZE:
            buffer, position = self._fill(_HEADER_SIZE)
        length = buffer[position] | buffer[position + 1] << 8 | buffer[position + 2] << 16
        self.sequence = buffer[position + 3]
        end = position + _HEADER_SIZE + length
        if len(buffer) < end:
            buffer, position = self._fill(_HEADER_SIZE + length)
            end = _HEADER_SIZE + length
        self._position = end
        return buffer[position + _HEADER_SIZE : end]

    def _fill(self, size: int) -> tuple[bytearray, int]:
        """Read until ``size`` unconsumed bytes are buffered; returns the new buffer and 0."""
        buffer = bytearray(self._buffer[self._position :])
        while len(buffer) < size:
            buffer += self._receive(max(_READ_SIZE, size - len(buffer)))
        self._buffer, self._position = buffer, 0
        return buffer, 0

    def _receive(self, size: int, arrived: bool = True) -> bytes:
        """One read of what has arrived, waiting up to the socket's timeout when nothing has.

        :raises: the connector's exceptions, as its socket layer raises them: a read timeout,
            a socket error (2055) or the server closing the connection (2013).
        """
        try:
            data = b""
            if arrived and self._fd >= 0:
                try:
                    data = os.read(self._fd, size)
                except BlockingIOError:
                    data = b""  # nothing yet: wait below
            if not data:
                data = self._sock.recv(size)
        except OSError as exc:
            raise self._wire.socket_error(self._stream, exc, reading=True) from exc
        if not data:
            raise self._wire.errors.InterfaceError(errno=2013)
        return data


def _lenenc(data: bytes | bytearray, position: int) -> tuple[int, int]:
    """:returns: the length-encoded integer at ``position`` and the position after it.

    :raises KeyError: for a first byte that starts no integer (0xFB, 0xFF).
    """
    first = data[position]
    if first < 0xFB:
        return first, position + 1
    width = _LENENC_WIDTH[first]
    end = position + 1 + width
    if end > len(data):
        raise IndexError("truncated length-encoded integer")
    return int.from_bytes(data[position + 1 : end], "little"), end


def _ok_status(payload: bytes | bytearray) -> int:
    """:returns: the server status flags of an OK packet (or of an EOF sent as an OK)."""
    _, position = _lenenc(payload, 1)  # affected rows
    _, position = _lenenc(payload, position)  # last insert id
    return payload[position] | payload[position + 1] << 8


class _Unhandled(enum.Enum):
    """The type of :data:`UNHANDLED`."""

    UNHANDLED = "unhandled"


#: Returned by :class:`ConnectorFastPath` when the connector's own code must do the work.
UNHANDLED: Final = _Unhandled.UNHANDLED


class ConnectorFastPath:
    """Send one-row statements and read their answers on the connector's pure-Python socket.

    One instance serves one driver adapter: it holds the connector's parts, looked up once,
    and the adapter's cache of command packets.

    :param module: the imported ``mysql.connector``.
    :raises ImportError: on an older release, whose socket layer has no network broker; the
        adapter then always uses the connector's own code.
    :raises AttributeError: when a part the fast path uses is missing; likewise.
    """

    def __init__(self, module: Any) -> None:
        self._wire = _ConnectorWire(module)
        # Command packets by statement, parameters and what their escaping depends on: the
        # keepalive sends the same check for each lock every interval, and escaping costs
        # more than the rest of sending it.
        self._packets: dict[tuple[Any, ...], bytes | None] = {}

    def query(
        self, cursor: Any, sql: str, params: Sequence[Any]
    ) -> tuple[Any, ...] | Literal[_Unhandled.UNHANDLED] | None:
        """Run one statement and return its first row, without the cursor when that is safe.

        The cursor's ``execute`` and ``fetchall`` cost several times the round trip of a
        ``GET_LOCK``. The fast path sends what ``execute`` would send and reads the answer as
        :meth:`read_first_row` does; it is taken only for the stock (unbuffered) cursor of a
        pure-Python connection that has no warnings to fetch, no query attributes and no
        cursor-level timeouts, and only for one statement whose parameters are plain values.
        The others differ in small ways worth keeping (a buffered cursor raises for a statement
        without a result set, for one).

        :param cursor: the connector cursor the statement would run on.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders.
        :returns: the first row, ``None`` when there is none, or :data:`UNHANDLED` (nothing
            sent) when the cursor must run the statement.
        """
        wire = self._wire
        raw = getattr(cursor, "_connection", None)
        if (
            raw is not None
            and type(cursor) is wire.cursor
            and getattr(cursor, "_read_timeout", None) is None
            and getattr(cursor, "_write_timeout", None) is None
            and not getattr(raw, "_get_warnings", True)
            and not getattr(raw, "_raise_on_warnings", True)
            and not getattr(raw, "_query_attrs", True)
        ):
            stream = self._stream(raw)
            packet = None if stream is None else self._command_packet(raw, sql, params)
            if packet is not None:
                self._write_packet(raw, stream, packet)
                # The answer is a round trip away: wait for it at once.
                return self._read_answer(raw, stream, arrived=False)
        return UNHANDLED

    def send(self, raw: Any, sql: str, params: Sequence[Any]) -> bool:
        """Send a text query without waiting for its answer, as ``cmd_query`` would send it.

        That is the cursor's escaping, an empty query-attributes header when the server
        expects one, and the command packet, written straight to the socket.

        :param raw: the connection.
        :param sql: the statement, with ``%s`` placeholders.
        :param params: the values for the placeholders.
        :returns: ``False`` (nothing sent) when the connector's own code must send it.
        """
        stream = self._stream(raw)
        if stream is not None:
            packet = self._command_packet(raw, sql, params)
            if packet is not None:
                self._write_packet(raw, stream, packet)
                return True
        return False

    def read_first_row(self, raw: Any) -> tuple[Any, ...] | Literal[_Unhandled.UNHANDLED] | None:
        """Read the answer to :meth:`send` straight from the socket.

        :param raw: the connection.
        :returns: the answer's first row, converted as the connector does, ``None`` when it
            has none, or :data:`UNHANDLED` (nothing read) when the connector must read it.
        """
        stream = self._stream(raw)
        if stream is None:
            return UNHANDLED
        return self._read_answer(raw, stream)

    def _stream(self, raw: Any) -> Any:
        """:returns: the connection's ``MySQLSocket`` when the fast path may use it, else None.

        It may when the connection is a connected pure-Python one, past its handshake, with
        plain (uncompressed) packets and no result waiting to be read.
        """
        try:
            stream = raw._socket
            if (
                stream is None
                or stream.sock is None
                or stream.sock.fileno() < 0  # closed by close()
                or stream._connection_timeout
                or type(stream._netbroker) is not self._wire.plain_broker
                or raw._unread_result
            ):
                return None
        except AttributeError:
            return None
        return stream

    def _command_packet(self, raw: Any, sql: str, params: Sequence[Any]) -> bytes | None:
        """The ``COM_QUERY`` packet for ``sql`` with ``params``, as the cursor would build it.

        :returns: the packet with its header, or ``None`` when the connector must build it:
            parameters that are not plain values, ``%`` other than the placeholders, more
            than one statement or a ``DELIMITER``, a count of placeholders that does not
            match, or an escaping error (the connector then raises its own exception).
        """
        params = tuple(params)
        kinds = tuple(map(type, params))
        mode = raw._sql_mode
        if mode is None or not _CACHEABLE_PARAMETERS.issuperset(kinds):
            # connect() reads sql_mode; without it the connector asks the server itself.
            return None
        converter = raw.converter
        # Everything the bytes depend on: the escaping reads sql_mode (NO_BACKSLASH_ESCAPES)
        # and the converter's charset (which follows the connection's), and the client flags
        # decide the query-attributes header.
        key = (sql, params, kinds, mode, converter.charset, type(converter), raw._client_flags)
        try:
            return self._packets[key]
        except KeyError:
            pass
        packet = self._build_command_packet(raw, sql, params, mode)
        packets = self._packets
        if len(packets) >= _STATEMENT_CACHE_SIZE:
            packets.clear()
        packets[key] = packet
        return packet

    def _build_command_packet(
        self, raw: Any, sql: str, params: tuple[Any, ...], mode: Any
    ) -> bytes | None:
        """See :meth:`_command_packet`."""
        wire = self._wire
        try:
            template = sql.encode(raw.python_charset)
            pieces = template.split(b"%s")
            if (
                not template
                or len(pieces) != len(params) + 1
                or template.count(b"%") != len(params)
                or b";" in template
                or b"delimiter" in template.lower()
            ):
                return None
            converter = raw.converter
            values = [
                bytes(converter.quote(converter.escape(converter.to_mysql(value), mode)))
                for value in params
            ]
        except Exception:  # noqa: BLE001 - the connector's own code raises its own error
            return None
        statement = bytearray(pieces[0])
        for value, piece in zip(values, pieces[1:]):
            statement += value
            statement += piece
        if raw._client_flags & wire.query_attributes:
            # Zero attributes, one parameter set: the header cmd_query sends without attributes.
            statement[0:0] = b"\x00\x01"
        payload = wire.query_command + statement
        if len(payload) >= _MAX_PAYLOAD:
            return None
        return len(payload).to_bytes(3, "little") + b"\x00" + payload

    def _apply_read_timeout(self, raw: Any, sock: socket.socket) -> float | None:
        """Give ``sock`` the connection's read timeout, as the connector's ``recv`` does.

        Only a change costs a system call; the connector sets it again for every read.

        :returns: the timeout.
        """
        if not self._wire.has_read_timeout:
            return sock.gettimeout()
        seconds = raw._read_timeout
        wanted = float(seconds) if seconds else None
        if sock.gettimeout() != wanted:
            sock.settimeout(wanted)
        return wanted

    def _write_packet(self, raw: Any, stream: Any, packet: bytes) -> None:
        """Send ``packet`` as the command starting a new exchange (sequence id 0).

        The socket keeps the read timeout, which then serves the answer too; a write that does
        not complete at once (a full send buffer) waits for the connection's write timeout or,
        when there is none, at most the read timeout, and fails like the connector's send.
        """
        sock = stream.sock
        wanted = self._apply_read_timeout(raw, sock)
        sent = 0
        try:
            if wanted is not None and type(sock) is self._wire.plain_socket:
                # Non-blocking underneath (see _Answer): a small packet goes out in one write.
                try:
                    sent = os.write(sock.fileno(), packet)
                except BlockingIOError:
                    sent = 0
            if sent < len(packet):
                seconds = getattr(raw, "_write_timeout", None)  # only in recent releases
                if seconds and float(seconds) != wanted:
                    sock.settimeout(float(seconds))
                sock.sendall(memoryview(packet)[sent:])
        except OSError as exc:
            raise self._wire.socket_error(stream, exc, reading=False) from exc
        stream._netbroker._pktnr = 0

    def _read_answer(self, raw: Any, stream: Any, arrived: bool = True) -> tuple[Any, ...] | None:
        """Read a whole answer to a ``COM_QUERY`` and return its first row.

        Every result of the answer is read, up to the final EOF or OK packet, so the
        connection is ready for the next statement. An error packet raises the connector's
        exception for it; a LOCAL INFILE request goes to the connector.

        :returns: the first row of the first result, or ``None`` when it has none (or is an OK).
        """
        wire = self._wire
        self._apply_read_timeout(raw, stream.sock)
        answer = _Answer(stream, stream.sock, wire, arrived)
        try:
            found = self._walk_answer(raw, answer)
        except (IndexError, KeyError) as exc:
            raise wire.protocol_error(f"Malformed packet in the answer: {exc!r}") from exc
        stream._netbroker._pktnr = answer.sequence
        if isinstance(found, (bytes, bytearray)):
            # Not a result set nor an OK: what the connector does with it is the behaviour.
            raw._handle_result(_NO_HEADER + found)
            return None
        if found is None:
            return None
        columns, row = found
        return self._convert_row(raw, columns, row)

    def _walk_answer(
        self, raw: Any, answer: _Answer
    ) -> tuple[list[bytes | bytearray], bytes | bytearray] | bytes | bytearray | None:
        """Read the results of an answer; see :meth:`_read_answer`.

        :returns: the first result's column definitions and first row; ``None`` when it has
            no row; or the payload of a first packet that only the connector handles.
        """
        wire = self._wire
        deprecate_eof = raw._client_flags & wire.deprecate_eof and (
            (raw._handshake or {}).get("capabilities", 0) & wire.deprecate_eof
        )
        found: tuple[list[bytes | bytearray], bytes | bytearray] | None = None
        first = True
        while True:
            payload = answer.packet()
            if not payload:
                raise wire.protocol_error("Empty response")
            head = payload[0]
            if head == _ERR:
                raise wire.server_error(payload)
            if head == _OK:
                status = _ok_status(payload)
            elif head in (_LOCAL_INFILE, _EOF):
                if not first or not answer.done:
                    raise wire.protocol_error(f"Unexpected packet 0x{head:02x} in the answer")
                return payload
            else:
                columns, row, status = self._read_result_set(answer, payload, deprecate_eof)
                if first and row is not None:
                    found = (columns, row)
            raw._handle_server_status(status)
            first = False
            if not status & wire.more_results:
                break
        if not answer.done:
            raise wire.protocol_error("More data than the answer on the connection")
        return found

    def _read_result_set(
        self, answer: _Answer, header: bytes | bytearray, deprecate_eof: int
    ) -> tuple[list[bytes | bytearray], bytes | bytearray | None, int]:
        """Read one text result set after its column-count packet ``header``.

        :returns: the column-definition payloads, the first row's payload (``None`` without
            rows) and the server status of the closing packet.
        """
        wire = self._wire
        count, end = _lenenc(header, 0)
        if not count or end != len(header):
            raise wire.protocol_error("Illegal result set")
        columns = [answer.packet() for _ in range(count)]
        if not deprecate_eof:
            # Without CLIENT_DEPRECATE_EOF an EOF packet ends the column definitions.
            payload = answer.packet()
            if payload[0] == _ERR:
                raise wire.server_error(payload)
            if payload[0] != _EOF or len(payload) >= _EOF_LIMIT:
                raise wire.protocol_error("Expected EOF packet")
        # The rows end with an EOF packet, or with CLIENT_DEPRECATE_EOF an OK packet that
        # starts with 0xFE; an error packet ends them too (a statement killed half-way).
        limit = _MAX_PAYLOAD if deprecate_eof else _EOF_LIMIT
        row = None
        while True:
            payload = answer.packet()
            head = payload[0]
            if head == _EOF and len(payload) < limit:
                if deprecate_eof:
                    return columns, row, _ok_status(payload)
                return columns, row, payload[3] | payload[4] << 8
            if head == _ERR:
                raise wire.server_error(payload)
            if row is None:
                row = payload

    def _convert_row(
        self,
        raw: Any,
        columns: list[bytes | bytearray],
        row: bytes | bytearray,
    ) -> tuple[Any, ...]:
        """Turn a text-protocol row into Python values exactly as ``get_rows`` does.

        One integer column with the stock converter (the answer of every statement PyMySQLLock
        runs) is ``int()`` of its text, which is what the converter would do; anything else
        goes through the connector's column parser and converter.
        """
        wire = self._wire
        if len(columns) == 1 and not raw._raw and type(raw.converter) is wire.converter:
            column = columns[0]
            if (
                len(column) > _FIXED_FIELDS
                and column[-_FIXED_FIELDS] == _FIXED_FIELDS_LENGTH
                and column[-_TYPE_FROM_END] in wire.integer_types
            ):
                size = row[0]
                if size == _NULL and len(row) == 1:
                    return (None,)
                if size < 0xFB and len(row) == size + 1:
                    return (int(row[1:]),)
        values = wire.read_lc_string_list(bytes(row))
        if values is None:
            raise wire.server_error(row)
        if raw._raw or not hasattr(raw, "converter"):
            return tuple(values)
        charset = raw.python_charset
        descriptions = [
            raw._protocol.parse_column(_NO_HEADER + column, charset) for column in columns
        ]
        return tuple(raw.converter.row_to_python(values, descriptions))
