"""``cadena-server serve`` on a port already taken: one clear error, no "serving on"."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench._server import run_command, server_env

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_port_fails_clearly_without_announcing_it_serves(
        tmp_path: Path, workers: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Two workers need PostgreSQL; the port is checked before the database is.
        extra = {"CADENA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
        extra = extra if workers > 1 else {}
        done = run_command(server_env(tmp_path / "data", extra=extra),
                           ["serve", "--port", str(port), "--workers", str(workers)],
                           timeout=60)
    assert done.returncode == 1
    assert "serving on" not in done.stderr + done.stdout
    assert f"127.0.0.1:{port} is already in use" in done.stderr
