"""``cadena demo`` runs on its own (temporary server, temporary profiles) and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_story_and_leaves_nothing_behind(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CADENA_")},
           "TMPDIR": str(scratch), "CADENA_HOME": str(tmp_path / "untouched"),
           "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "from client.cli import main; main()", "demo"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("1. Enrolment", "3. A specialized channel", "4. A request with an attachment",
                 "5. A reply and a receipt", "6. A refused access", "7. Onward sharing",
                 "8. Audit"):
        assert step in done.stdout, step
    # Step 6's refusal is in the transcript, right after the command that met it.
    lines = done.stdout.splitlines()
    refused = next(i for i, line in enumerate(lines) if line.startswith("$ cadena fetch")
                   and "--profile diego" in line)
    after = lines[refused + 1:refused + 3]  # (the quorum-0 warning of that command first)
    assert any(line.startswith("refused: No clearance in force") for line in after), after
    assert "refused:" not in done.stderr
    assert "ledger verified" in done.stdout
    assert "signed checkpoint" in done.stdout
    assert "Demo complete" in done.stdout
    # Piped, every command stays on one line, whatever its length: it can be pasted.
    send = next(line for line in done.stdout.splitlines() if line.startswith("$ cadena send"))
    assert len(send) > 120
    assert "--urgency urgent --due " in send
    commands = [line for line in done.stdout.splitlines() if line.startswith("$ cadena ")]
    assert all(line.count("'") % 2 == 0 for line in commands), "a command cut in a quote"
    assert list(scratch.iterdir()) == [], "the demo left files behind"
    assert not (tmp_path / "untouched").exists(), "the demo touched the user's profiles"
