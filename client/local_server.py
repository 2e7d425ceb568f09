"""A Cadena server on this machine, as a child process: for ``cadena demo``, tests, benchmarks.

The client never imports server code: the server runs as the ``cadena-server``
command (installed beside ``cadena``), on a free loopback port, with its
data directory and database given through ``CADENA_*`` variables. Its output
goes to ``<data dir>/server.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from client.errors import NetworkError, UsageError

START_TIMEOUT = 60.0
LOCAL_ORIGIN = "localhost.cadena.example/ledger"
"""The ledger origin of a throw-away local server (bootstrap needs one chosen explicitly;
``extra`` may set another)."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command() -> list[str]:
    """How to run ``cadena-server``: the script beside this Python, else on the PATH."""
    beside = Path(sys.executable).parent / "cadena-server"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cadena-server")
    if found is None:
        raise UsageError("cadena-server is not installed (pip install -e . installs it)")
    return [found]


def server_env(data_dir: Path, database_url: str | None = None,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process using ``data_dir`` (and ``database_url``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENA_")}
    env.update({"CADENA_DATA_DIR": str(data_dir), "CADENA_LOG_LEVEL": "warning",
                "CADENA_LEDGER_ORIGIN": LOCAL_ORIGIN})
    if database_url:
        env["CADENA_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def bootstrap(data_dir: Path, public_keys: Path, *, database_url: str | None = None,
              state: str = "CO", state_name: str = "Colombia",
              joining_note: str = "Chapultepec Consensus 2012", liaison: str = "coord",
              name: str = "Coordinator", extra: Mapping[str, str] | None = None) -> str:
    """Run ``cadena-server bootstrap``; return the ledger verifier key it prints."""
    args = [*server_command(), "bootstrap", "--state", state, "--state-name", state_name,
            "--joining-note", joining_note, "--liaison", liaison, "--name", name,
            "--public-keys", str(public_keys)]
    done = subprocess.run(args, env=server_env(data_dir, database_url, extra),  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise UsageError(f"cadena-server bootstrap failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class LocalServer:
    """A running ``cadena-server serve`` child process."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    @property
    def pid(self) -> int:
        """The server's process id (uvicorn runs in it: one worker)."""
        return self.process.pid

    def peak_rss(self) -> int:
        """The process's peak resident memory in bytes (``VmHWM``), on Linux."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise NetworkError("no VmHWM for the server process")

    def log(self) -> str:
        """What the server printed so far."""
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_ready(server: LocalServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise NetworkError(f"the server exited at start:\n{server.log()[-2000:]}")
        try:
            if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise NetworkError(f"the server did not start in {START_TIMEOUT:g} s")


@contextmanager
def local_server(data_dir: Path, *, database_url: str | None = None,
                 extra: Mapping[str, str] | None = None) -> Iterator[LocalServer]:
    """Serve ``data_dir`` on a free loopback port while the block runs, then stop."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # serve refuses a wider one
    port = free_port()
    # Private like everything else in the data directory (docs/operations.md).
    log_fd = os.open(data_dir / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(log_fd, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own installed command
            [*server_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env(data_dir, database_url, extra), stdout=log, stderr=log)
    server = LocalServer(f"http://127.0.0.1:{port}", process, data_dir)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()
