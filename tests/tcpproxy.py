"""A small threaded TCP proxy for fault-injection tests: cut or black-hole a real TCP path.

>>> proxy = TcpProxy("127.0.0.1", server.port)  # doctest: +SKIP
>>> Locker(host="127.0.0.1", port=proxy.port, ...)  # connects through the proxy
>>> proxy.sever()  # every connection through it is closed, on both sides
>>> proxy.blackhole()  # bytes stop flowing; every socket stays open
>>> proxy.restore()  # bytes flow again
>>> proxy.keep_upstream()  # a client's close no longer reaches the server
>>> proxy.close()  # stop listening, close everything, join every thread

``ProxyProcess`` runs the same proxy in a process of its own, with the same methods: for tests
of the asyncio API, whose event loop must not share the interpreter lock with the proxy's
pumps (two threads per connection: under load, waiting for that lock is a blocked loop step).

The proxy listens on ``127.0.0.1`` on a port of its own and opens one upstream connection per
accepted client. Each direction of each connection is pumped by a thread of its own.

While black-holed it models a network partition: nothing is read from any socket, so bytes
wait in the kernel's buffers and a closed socket is not seen by the other side, exactly as a
lost path delays data and ``FIN`` alike. New clients are still accepted (a partition does not
refuse connections, it leaves them unanswered), but get no server greeting until
:meth:`restore`. After :meth:`restore` the waiting bytes and closes are delivered, as TCP
retransmission would deliver them once the path heals.

After :meth:`keep_upstream` a client that closes its connection leaves the upstream one open,
as a server that does not notice a waiting session's client is gone (a TLS session, a
``GET_LOCK`` behind a proxy that keeps its backend connections): the server's session lasts
until the server ends it, or an answer finds the client gone, or :meth:`sever`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import subprocess
import sys
import threading

__all__ = ["ProxyProcess", "TcpProxy"]

#: Seconds a pump or the acceptor waits between looks at the proxy's flags.
_TICK = 0.02
_CHUNK = 65536


class _Pair:
    """One proxied connection: the client's socket and the upstream socket."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []

    def close(self) -> None:
        """Close both sockets (idempotent); the other ends see the connection end."""
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Forward TCP connections from a local port to ``(host, port)``, with injectable faults.

    :param host: the upstream host.
    :param port: the upstream port.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.host, self.port = self._listener.getsockname()
        self._mutex = threading.Lock()
        self._pairs: list[_Pair] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._keeping = threading.Event()
        self._stopping = threading.Event()
        #: How many client connections were accepted since the proxy started.
        self.accepted = 0
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"tcpproxy-{self.port}-accept", daemon=True
        )
        self._acceptor.start()

    def __repr__(self) -> str:
        state = "blackholed" if not self._flowing.is_set() else "forwarding"
        return f"<TcpProxy 127.0.0.1:{self.port} -> {self.upstream[0]}:{self.upstream[1]} {state}>"

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults -------------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """How many proxied connections are open."""
        with self._mutex:
            return sum(1 for pair in self._pairs if not pair.closed.is_set())

    def sever(self) -> None:
        """Close every open connection on both sides; new connections are still accepted."""
        with self._mutex:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()
        self._join(pairs)

    def blackhole(self) -> None:
        """Stop forwarding bytes in both directions; every socket stays open."""
        self._flowing.clear()

    def keep_upstream(self) -> None:
        """From now on, a client's close leaves its upstream connection open."""
        self._keeping.set()

    def restore(self) -> None:
        """Forward bytes again (what waited in the buffers is delivered)."""
        self._flowing.set()

    def close(self) -> None:
        """Stop accepting, close every connection and join every thread (idempotent)."""
        self._stopping.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        if self._acceptor is not threading.current_thread():
            self._acceptor.join()
        self.sever()

    # -- threads ------------------------------------------------------------------------------

    def _join(self, pairs: list[_Pair]) -> None:
        current = threading.current_thread()
        for pair in pairs:
            for thread in pair.threads:
                if thread is not current:
                    thread.join()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], _TICK)
            except (OSError, ValueError):
                return  # the listener was closed
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the upstream refuses: so does the proxy
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream)
            for source, target, way in ((client, upstream, "up"), (upstream, client, "down")):
                pair.threads.append(
                    threading.Thread(
                        target=self._pump,
                        args=(pair, source, target),
                        name=f"tcpproxy-{self.port}-{way}",
                        daemon=True,
                    )
                )
            with self._mutex:
                if self._stopping.is_set():
                    pair.close()
                    return
                self._pairs.append(pair)
                self.accepted += 1
            for thread in pair.threads:
                thread.start()

    def _pump(self, pair: _Pair, source: socket.socket, target: socket.socket) -> None:
        try:
            while not pair.closed.is_set():
                if not self._flowing.wait(_TICK):
                    continue  # black-holed: leave the bytes (and any FIN) in the kernel
                ready, _, _ = select.select([source], [], [], _TICK)
                if not ready or not self._flowing.is_set():
                    continue
                data = source.recv(_CHUNK)
                if not data:
                    if source is pair.client and self._keeping.is_set():
                        return  # the upstream stays until the server or an answer ends it
                    break  # this side closed: close the other side too
                target.sendall(data)
        except (OSError, ValueError):
            pass  # a socket was closed under us (sever, close, or the peer's reset)
        pair.close()


#: The commands a :class:`ProxyProcess` sends its proxy, one line each; each is answered with
#: one line (``accepted`` with the count, the others with ``ok``).
_COMMANDS = ("accepted", "sever", "blackhole", "keep_upstream", "restore")


def _serve(host: str, port: int) -> None:
    """The proxy process: print the listening port, then obey commands until stdin closes."""
    with TcpProxy(host, port) as proxy:
        print(proxy.port, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "accepted":
                print(proxy.accepted, flush=True)
                continue
            if command not in _COMMANDS:
                print(f"unknown command {command!r}", flush=True)
                continue
            getattr(proxy, command)()
            print("ok", flush=True)


class ProxyProcess:
    """A :class:`TcpProxy` in a child process, driven through its standard input and output.

    :param host: the upstream host.
    :param port: the upstream port.
    """

    #: Seconds the child gets to start, answer a command, or end.
    TIMEOUT = 30.0

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.host = "127.0.0.1"
        self._child = subprocess.Popen(
            [sys.executable, __file__, host, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._answer())

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self) -> str:
        assert self._child.stdout is not None
        ready, _, _ = select.select([self._child.stdout], [], [], self.TIMEOUT)
        if not ready:
            raise TimeoutError(f"the proxy process gave no answer in {self.TIMEOUT} s")
        line = self._child.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the proxy process ended (status {self._child.poll()})")
        return line

    def _command(self, command: str) -> str:
        assert self._child.stdin is not None
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._answer()

    @property
    def accepted(self) -> int:
        """How many client connections were accepted since the proxy started."""
        return int(self._command("accepted"))

    def sever(self) -> None:
        """As :meth:`TcpProxy.sever`."""
        self._command("sever")

    def blackhole(self) -> None:
        """As :meth:`TcpProxy.blackhole`."""
        self._command("blackhole")

    def keep_upstream(self) -> None:
        """As :meth:`TcpProxy.keep_upstream`."""
        self._command("keep_upstream")

    def restore(self) -> None:
        """As :meth:`TcpProxy.restore`."""
        self._command("restore")

    def close(self) -> None:
        """End the proxy process, which closes every connection (idempotent)."""
        if self._child.poll() is None:
            assert self._child.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self._child.stdin.close()
            try:
                self._child.wait(self.TIMEOUT)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
