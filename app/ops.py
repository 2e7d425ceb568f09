"""The operations listener: health and the public checkpoint on a port and a loop of their own.

Every request to the API port is served by one event loop, first come first
served. During a burst of a thousand connections that loop has most of a
second of work queued (admitting, refusing, answering), and a health probe
that arrives behind it waits its turn, however cheap its own answer. A
process therefore also listens, when ``CADENA_OPS_PORT`` is set, on a second
port served by a thread with its own small asyncio loop, which answers only:

- ``GET /healthz``: the process is alive;
- ``GET /v1/ledger/checkpoint``: the latest signed checkpoint note this
  process has read (refreshed every checkpoint interval; public, and a
  signed note stays true: it may be an interval old);
- ``GET /v1/ledger/key``: the ledger's verifier key.

Nothing else: no authentication, no ledger entry, no request body. Bound
to loopback by default (``CADENA_OPS_HOST``) for a load balancer's or an
orchestrator's probes; with several workers each binds the port with
``SO_REUSEPORT``. Its thread still shares the interpreter lock, which the
API's threads give up every ``CADENA_GIL_SWITCH_INTERVAL_MS``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger()

READ_TIMEOUT_S = 5.0
MAX_HEAD = 8192

NoteSource = Callable[[], str | None]


def _response(status: int, reason: str, body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\ncache-control: no-store\r\n"
            "connection: close\r\n\r\n")
    return head.encode("ascii") + body


def _problem(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"type": f"https://cadena.example/problems/http-{status}",
                       "title": reason, "status": status, "detail": detail}).encode()
    return _response(status, reason, body, "application/problem+json")


class OpsListener:
    """The operations port of one process (module docstring)."""

    def __init__(self, host: str, port: int, *, checkpoint: NoteSource, key: NoteSource,
                 refresh: Callable[[], None], interval: float) -> None:
        self._host, self._port = host, port
        self._checkpoint, self._key, self._refresh = checkpoint, key, refresh
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-listener", daemon=True)
        self._refresher = threading.Thread(target=self._refresh_loop, name="ops-checkpoint",
                                           daemon=True)
        self._stop = threading.Event()

    def start(self) -> None:
        """Bind and start serving (returns once the port is listening)."""
        self._thread.start()
        self._refresher.start()
        if not self._ready.wait(10):
            raise RuntimeError("the operations listener did not start")

    def stop(self) -> None:
        """Stop serving and wait for the threads."""
        self._stop.set()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=5)
        self._refresher.join(timeout=5)

    def _socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):  # one port for every worker process
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self._host, self._port))
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, sock=self._socket())
        self._ready.set()
        async with server:
            await self._stopping.wait()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._refresh()
            except Exception as exc:  # the database may be down: keep the last note
                log.warning("ops: checkpoint refresh failed", error=type(exc).__name__)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            writer.write(self._answer(head[:MAX_HEAD]))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method != b"GET":
            return _problem(405, "Method Not Allowed", "the operations port answers GET only")
        if path == b"/healthz":
            return _response(200, "OK", b'{"status":"ok"}', "application/json")
        if path in (b"/v1/ledger/checkpoint", b"/v1/ledger/key"):
            text = self._checkpoint() if path.endswith(b"checkpoint") else self._key()
            if text is None:
                return _problem(503, "Service Unavailable", "not available yet")
            return _response(200, "OK", text.encode(), "text/plain; charset=utf-8")
        return _problem(404, "Not Found", "the operations port serves /healthz and the "
                                          "public checkpoint and key")

