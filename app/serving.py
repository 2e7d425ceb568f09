"""Several worker processes, each with a listening socket of its own on one port.

``uvicorn --workers N`` gives every worker the same listening socket. They
all wait on it, and the one that wakes first accepts every connection queued
by then (asyncio accepts up to the backlog per wake-up). A client that opens
its pool of keep-alive connections at once (the CLI, a load balancer, the
benchmark's sixteen) therefore tends to land on one worker, which does all
the work on one core while the others idle: the counts seen here were 16-0
and 10-6.

Here each worker binds a socket of its own to the port with ``SO_REUSEPORT``
and the kernel spreads new connections over them (by a hash of the
addresses). The supervisor (this module, run by ``cadena-server serve
--workers N``) holds the port bound but not listening, so a port already in
use fails at once, and keeps ``N`` workers alive:

- a worker that dies is started again; one that dies before it ever served
  counts as a start-up failure, and five of those in a row (a setting or a
  database every worker refuses) stop the server with exit status 1;
- ``SIGTERM`` or ``SIGINT`` stops every worker gracefully (uvicorn finishes
  the requests in flight), then the supervisor exits.

Linux only (where ``SO_REUSEPORT`` balances); elsewhere ``serve`` keeps
uvicorn's own supervisor.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.metrics import Supervision

APP = "app.worker:worker_app"
BACKLOG = 2048
"""Queued connections per worker socket (uvicorn's default)."""
CRASH_LOOP = 5
"""Start-up failures in a row after which the supervisor gives up."""
STOP_GRACE_S = 30.0


def balanced() -> bool:
    """Whether this platform spreads connections over ``SO_REUSEPORT`` sockets."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``; listening if asked."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def port_refusal(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now (in use, no such address), or ``None``.

    A plain bind, without ``SO_REUSEPORT``: it fails beside any socket already
    bound there, another Cadena supervisor's included, which a ``SO_REUSEPORT``
    bind would quietly share the port with.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"{host}:{port} is already in use (another server?); choose another --port"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def serve_worker(host: str, port: int, serving: EventType,
                 tls: tuple[str, str] | None = None) -> None:
    """One worker process: its own socket on the port, and uvicorn serving the app on it.

    ``serving`` is set once uvicorn has started (the app's start-up done);
    ``tls`` is the certificate and key files when it serves HTTPS.
    """
    import uvicorn

    sock = reuse_port_socket(host, port, listen=True)
    cert, key = tls if tls is not None else (None, None)
    config = uvicorn.Config(APP, factory=True, host=host, port=port, log_level="warning",
                            access_log=False, backlog=BACKLOG, ssl_certfile=cert,
                            ssl_keyfile=key)
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            serving.set()

    threading.Thread(target=announce, name="cadena-serving", daemon=True).start()
    server.run(sockets=[sock])


class Supervisor:
    """Keeps ``workers`` worker processes serving ``host:port`` until told to stop."""

    def __init__(self, host: str, port: int, workers: int,
                 tls: tuple[str, str] | None = None,
                 on_exit: Callable[[int], None] | None = None) -> None:
        """Nothing starts until :meth:`run`; ``on_exit`` is told the pid of each dead worker."""
        self.host, self.port, self.workers, self.tls = host, port, workers, tls
        self.on_exit = on_exit
        self._context = multiprocessing.get_context("spawn")  # fresh interpreters, as uvicorn's
        self._stop = threading.Event()

    def _start(self) -> tuple[BaseProcess, EventType]:
        serving = self._context.Event()
        process = self._context.Process(target=serve_worker,
                                        args=(self.host, self.port, serving, self.tls),
                                        name="cadena-worker")
        process.start()
        return process, serving

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        """Ask :meth:`run` to stop the workers and return (a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Serve until stopped; the exit status (0, or 1 after a crash loop)."""
        holder = reuse_port_socket(self.host, self.port, listen=False)  # port in use: fail now
        status = 0
        running = [self._start() for _ in range(self.workers)]
        failed_starts = 0
        try:
            while not self._stop.wait(0.2):
                for slot, (process, serving) in enumerate(running):
                    if process.is_alive():
                        continue
                    failed_starts = 0 if serving.is_set() else failed_starts + 1
                    if self.on_exit is not None and process.pid is not None:
                        self.on_exit(process.pid)
                    print(f"cadena-server: worker {process.pid} exited with "
                          f"{process.exitcode}; starting another", file=sys.stderr, flush=True)
                    if failed_starts >= CRASH_LOOP:
                        print("cadena-server: workers keep dying at start-up; stopping",
                              file=sys.stderr, flush=True)
                        status = 1
                        self._stop.set()
                        break
                    running[slot] = self._start()
        finally:
            self._shut_down([process for process, _ in running])
            holder.close()
        return status

    @staticmethod
    def _shut_down(processes: Sequence[BaseProcess]) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn drains its connections
        deadline = time.monotonic() + STOP_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def _metrics() -> Supervision | None:
    """Multiprocess metrics when a metrics port is set (prometheus-client is loaded only then)."""
    from pydantic import ValidationError

    from app.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError:
        return None  # the workers say what is wrong as they die (a crash loop, exit 1)
    if settings.metrics_port is None:
        return None
    from app.metrics import Supervision

    return Supervision(settings.data_dir, settings.resolved_database_url(),
                       settings.metrics_host, settings.metrics_port)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m app.serving --host H --port P --workers N`` (what ``serve`` runs)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert and args.tls_key else None
    metrics = _metrics()  # before the workers: they inherit its directory
    supervisor = Supervisor(args.host, args.port, args.workers, tls,
                            on_exit=metrics.worker_exited if metrics is not None else None)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    try:
        status = supervisor.run()
    finally:
        if metrics is not None:
            metrics.stop()
    sys.exit(status)


if __name__ == "__main__":
    main()
