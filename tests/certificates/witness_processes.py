"""Real witnesses for certificate tests: ``cadena witness init`` and ``serve`` processes.

Each witness is its own operating-system process on a loopback port, as a
participating state runs it; the service reaches it over HTTP only.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CADENA = [sys.executable, "-m", "client.cli"]
START_SECONDS = 30.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WitnessNode:
    """One witness's directory, verifier key, URL and (while serving) process."""

    name: str
    directory: Path
    verifier_key: str
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        """The submission prefix the centre registers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Run ``cadena witness serve`` and wait until it accepts connections."""
        with (self.directory / "serve.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [*CADENA, "witness", "serve", "-c", str(self.directory / "witness.toml"),
                 "--port", str(self.port)], stdout=log, stderr=log)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"witness {self.name} exited: "
                                   f"{(self.directory / 'serve.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"witness {self.name} did not start")

    def stop(self) -> None:
        """Terminate the serving process (the state file stays)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def init_witness(directory: Path, name: str, log_key: str) -> WitnessNode:
    """``cadena witness init``: a key, a witness.toml following ``log_key``."""
    done = subprocess.run([*CADENA, "witness", "init", "--dir", str(directory), "--name", name,
                           "--log-key", log_key], check=True, capture_output=True, text=True)
    return WitnessNode(name, directory, done.stdout.strip().splitlines()[-1], free_port())


@contextmanager
def witnesses(base: Path, log_key: str, count: int, *,
              serving: bool = True) -> Iterator[list[WitnessNode]]:
    """``count`` initialised witnesses of the log, serving unless told otherwise; stopped after."""
    nodes = [init_witness(base / f"w{n}", f"witness{n}.test/w", log_key)
             for n in range(1, count + 1)]
    try:
        if serving:
            for node in nodes:
                node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
