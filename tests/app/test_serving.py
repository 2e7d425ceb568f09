"""``cadena-server serve --workers N``: a socket per worker, spread connections, kept workers.

Real server processes on PostgreSQL (several workers need it). Which worker
holds a connection is read from Linux's ``/proc`` (the socket inodes of
``/proc/net/tcp`` against each worker's file descriptors).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from app.serving import balanced
from bench._server import RunningServer, serve, server_env

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not balanced(), reason="SO_REUSEPORT balancing is Linux-only"),
]

CONNECTIONS = 16


def _established_inodes(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is ``port``."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    return found


def _holders(server: RunningServer, port: int) -> Counter[int]:
    """How many of the server's established connections each worker process holds."""
    inodes = _established_inodes(port)
    held: Counter[int] = Counter()
    for pid in server.worker_pids():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                held[pid] += 1
    return held


def test_a_clients_pool_of_connections_is_spread_over_the_workers(
        postgres_url: str, tmp_path: Path) -> None:
    """uvicorn's shared socket put 16-0 and 15-1 here; a socket per worker spreads them."""
    env = server_env(tmp_path / "data", postgres_url)
    with serve(env, workers=2) as server:
        port = int(server.url.rsplit(":", 1)[1])
        workers = server.worker_pids()
        assert len(workers) == 2

        async def pool() -> Counter[int]:
            limits = httpx.Limits(max_connections=CONNECTIONS,
                                  max_keepalive_connections=CONNECTIONS)
            async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
                for _ in range(3):
                    answers = await asyncio.gather(
                        *[client.get("/healthz") for _ in range(CONNECTIONS)])
                    assert {answer.status_code for answer in answers} == {200}
                held: Counter[int] = Counter()
                for _ in range(50):  # until every accepted socket shows in /proc
                    held = _holders(server, port)
                    if sum(held.values()) >= CONNECTIONS:
                        break
                    await asyncio.sleep(0.1)
                return held

        held = asyncio.run(pool())
    assert sum(held.values()) == CONNECTIONS
    assert set(held) == set(workers), f"connections per worker: {dict(held)}"


def test_a_worker_that_dies_is_replaced_and_a_stop_is_clean(
        postgres_url: str, tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", postgres_url)
    with serve(env, workers=2) as server:
        victim, survivor = server.worker_pids()
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = server.worker_pids()
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(0.2)
        assert survivor in pids
        assert len(pids) == 2
        assert victim not in pids
        with httpx.Client(base_url=server.url, timeout=10) as http:
            ready = False
            while not ready and time.monotonic() < deadline:
                ready = http.get("/readyz").status_code == 200
            assert ready
        assert f"worker {victim} exited" in server.log_tail()
        assert server.stop() == 0  # SIGTERM to the group: workers drain, supervisor exits 0


def test_a_port_in_use_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app.serving", "--port", str(port), "--workers", "2"],
            env=server_env(tmp_path / "data"), capture_output=True, text=True, timeout=60,
            check=False)
    assert done.returncode != 0
    assert "Address already in use" in done.stderr


def test_workers_dying_at_start_up_stop_the_server(tmp_path: Path) -> None:
    """A setting every worker refuses: five failed starts, then exit status 1, not a loop."""
    env = server_env(tmp_path / "data", extra={"CADENA_TOKEN_TTL_SECONDS": "soon"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "app.serving", "--port", str(port), "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 1
    assert "workers keep dying at start-up" in done.stderr
