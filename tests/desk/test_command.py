"""``cadena desk`` as a person runs it: a process on 127.0.0.1 that prints a one-time link."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from client.local_server import free_port


def test_cadena_desk_prints_a_single_use_link_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CADENA_HOME": str(tmp_path / "home"), "COLUMNS": "400"}
    command = [str(Path(sys.executable).parent / "cadena"), "desk", "--no-browser",
               "--port", str(port), "--profile", "clerk", "--lock-after", "5"]
    with subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        _use(process, port)
    assert process.returncode == 0


def _use(process: subprocess.Popen[str], port: int) -> None:
    try:
        assert process.stderr is not None
        assert process.stdin is not None
        lines = [process.stderr.readline() for _ in range(3)]
        links = re.findall(rf"http://127\.0\.0\.1:{port}/launch/[A-Za-z0-9_-]+", "".join(lines))
        assert len(links) == 1, lines
        process.stdin.write("\n")  # Enter: a new link
        process.stdin.flush()
        again = re.findall(r"http://\S+/launch/[A-Za-z0-9_-]+", process.stderr.readline())
        assert again
        assert again[0] != links[0]
        with httpx.Client() as browser:
            first = browser.get(links[0])
            assert first.status_code == 303
            assert "HttpOnly" in first.headers["set-cookie"]
            assert browser.get(links[0]).status_code == 403  # used once
            assert browser.get(f"http://127.0.0.1:{port}/court/").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
