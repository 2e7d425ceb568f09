"""A TCP proxy on loopback that a test can cut and restore (no tests here).

Stands between a server and PostgreSQL so that a test can make the database
unreachable without touching the machine's PostgreSQL: :meth:`TcpProxy.cut`
closes the listening socket and every open connection (clients then see
resets and refused connections), :meth:`TcpProxy.restore` listens again on
the same port.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

from tests.reliability.harness import free_port


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target``; cut and restore on demand."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen and forward."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    restore = start

    def cut(self) -> None:
        """Stop listening and reset every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ, data=sock)
            try:
                while True:
                    for key, _ in selector.select(timeout=1):
                        source: socket.socket = key.data
                        data = source.recv(65536)
                        if not data:
                            return
                        peers[source].sendall(data)
                    with self._lock:
                        if a not in self._sockets:
                            return
            except (OSError, ValueError):
                return
            finally:
                with self._lock:
                    self._sockets.discard(a)
                    self._sockets.discard(b)
                for sock in peers:
                    with contextlib.suppress(OSError):
                        sock.close()
