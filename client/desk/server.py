"""Serving the desk: on 127.0.0.1 only, in this process (uvicorn), in a thread or in front.

There is deliberately no option for another address: the desk's port is
for this machine's browser only (docs/desk.md, "Security").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from client.desk.app import Desk, DeskOptions, create_app
from client.errors import NetworkError

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
WATCH_INTERVAL = 5.0
"""Seconds between two checks of the key agent's idle time."""


def _server(app: Any, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", access_log=False,
                            lifespan="off", server_header=False, date_header=False)
    return uvicorn.Server(config)


@dataclass
class RunningDesk:
    """A desk served in a background thread (tests, benchmarks, the command line)."""

    desk: Desk
    server: uvicorn.Server
    thread: threading.Thread
    stopping: threading.Event

    @property
    def url(self) -> str:
        """The desk's origin, ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.desk.options.port}"

    def bound_addresses(self) -> list[str]:
        """The addresses the listening sockets are bound to (always 127.0.0.1)."""
        return [sock.getsockname()[0] for server in self.server.servers
                for sock in (server.sockets or [])]

    def stop(self) -> None:
        """Stop serving, wait for the thread, and lock (the keys leave memory)."""
        self.stopping.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.desk.agent.lock()
        self.desk.take_new_keys()


def _watch(desk: Desk, stopping: threading.Event) -> None:
    # The idle lock must not wait for the next request: keys leave memory on time.
    while not stopping.wait(WATCH_INTERVAL):
        desk.expire()


@contextmanager
def running_desk(options: DeskOptions) -> Iterator[RunningDesk]:
    """Serve a desk for ``options`` in a thread while the block runs."""
    app, desk = create_app(options)
    server = _server(app, options.port)
    thread = threading.Thread(target=server.run, name="cadena-desk", daemon=True)
    thread.start()
    stopping = threading.Event()
    running = RunningDesk(desk, server, thread, stopping)
    threading.Thread(target=_watch, args=(desk, stopping), name="cadena-desk-idle",
                     daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            running.stop()
            raise NetworkError(f"the desk could not listen on {HOST}:{options.port}")
        time.sleep(0.02)
    try:
        yield running
    finally:
        running.stop()
