"""The README's tour runs as written: its shell blocks, pasted in order into one bash.

The blocks are read from README.md ("A tour of the command line") and run by a
real bash against the real ``cadena`` and ``cadena-server`` of this
environment: the tour bootstraps and starts its own server. Three changes only,
all mechanical: the tour's port 8000 becomes a free one, the data directory is
a temporary one (``CADENA_DATA_DIR``), and each command that follows forever
(``BOUNDED``) is stopped after a few seconds, as a reader would press Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench._server import free_port

ROOT = Path(__file__).resolve().parents[1]
BOUNDED = ("cadena inbox --follow", "cadena desk --no-browser")
"""Commands that run until stopped: the test stops each after ``BOUNDED_SECONDS``."""
BOUNDED_SECONDS = 5
TOUR_PORT = "8000"

pytestmark = pytest.mark.timeout(600)


def tour_blocks(readme: str) -> list[str]:
    """The ``sh`` blocks of the README's tour section, in order."""
    section = readme.split("## A tour of the command line", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def runnable(block: str, port: int) -> str:
    """The block with the test's port, and each following command bounded."""
    lines = []
    for line in block.replace(f"127.0.0.1:{TOUR_PORT}", f"127.0.0.1:{port}") \
                     .replace(f"--port {TOUR_PORT}", f"--port {port}").splitlines():
        command = line.strip()
        if command.startswith(BOUNDED):
            # A comment after the command would swallow the status check appended below.
            assert "#" not in command, f"put the comment above the bounded command: {command}"
            # Stopped as by Ctrl-C; any other exit status still fails the tour.
            line = (f"timeout -s INT {BOUNDED_SECONDS} {command} "
                    "|| [ $? -eq 124 ] || [ $? -eq 130 ]")
        lines.append(line)
    return "\n".join(lines)


def test_the_tour_has_blocks_and_no_placeholder_to_guess() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 3
    text = "\n".join(blocks)
    for placeholder in ("PACKET_ID", "VKEY", "B64", "WITNESS_VKEY", "NAME", "FILE", "..."):
        assert not re.search(rf"(?<![\w$]){re.escape(placeholder)}(?!\w)", text), placeholder


def test_the_bounded_commands_of_the_tour_are_stopped() -> None:
    script = runnable("cadena inbox --follow --profile bruno\ncadena inbox --profile bruno",
                      1234)
    assert script.splitlines()[0].startswith(f"timeout -s INT {BOUNDED_SECONDS} cadena inbox")
    assert script.splitlines()[1] == "cadena inbox --profile bruno"


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    blocks = tour_blocks((ROOT / "README.md").read_text())
    script = "set -euo pipefail\n" + "\n".join(runnable(b, port) for b in blocks)
    checkout = tmp_path / "checkout"  # the tour runs at a checkout: .venv/bin is this venv's
    checkout.mkdir()
    (checkout / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENA_")}
    env |= {"CADENA_DATA_DIR": str(tmp_path / "data"), "CADENA_LOG_LEVEL": "warning",
            "COLUMNS": "120"}
    log_path = tmp_path / "tour.log"  # a file, not a pipe: the tour's server holds its output
    with log_path.open("w") as log:
        process = subprocess.Popen(["bash", "-xc", script], cwd=checkout, env=env, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its server is in its group
        try:
            process.wait(timeout=540)  # a hang, not a speed target: some 60 commands
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the tour's server, if it failed
            except ProcessLookupError:
                pass
    output = log_path.read_text(errors="replace")
    assert process.returncode == 0, output[-6000:]
    tour = checkout / "tour"
    assert (tour / "evidence" / "attachments" / "persons.csv").read_bytes() == \
        (tour / "persons.csv").read_bytes()
    assert (tour / "carla" / "attachments" / "persons.csv").exists()
    assert (tour / "reply" / "attachments" / "flights.csv").read_bytes() == \
        (tour / "flights.csv").read_bytes()
    assert (tour / "ledger.jsonl").stat().st_size > 0
    assert "matches profile: root at size" in output  # the offline audit met the online one
    assert f"timeout -s INT {BOUNDED_SECONDS} cadena inbox --follow" in output  # it was stopped
