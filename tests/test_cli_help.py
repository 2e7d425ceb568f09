"""Every ``--help`` of the three command lines shows flags as flags, never ``--json <bool>``.

typer 0.29's rich help prints a type after every option, flags included, as
if ``--json`` took a value; each command line leaves flags bare.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from app.cli import cli as server_cli
from client.cli import app as client_cli
from witness.cli import witness_app

COMMAND_LINES = {"cadena": client_cli, "cadena-server": server_cli, "cadena-witness": witness_app}


def _commands(app: typer.Typer) -> Iterator[list[str]]:
    """The path of every command and group, the root's ``[]`` first."""

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(get_command(app), [])


@pytest.mark.parametrize("name", sorted(COMMAND_LINES))
def test_no_help_shows_a_type_after_a_flag(name: str) -> None:
    app = COMMAND_LINES[name]
    shown = []
    for path in _commands(app):
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output
        shown += [f"{' '.join([name, *path])}: {line.strip()}"
                  for line in result.output.splitlines() if "<bool>" in line]
    assert shown == []


@pytest.mark.parametrize(("entry", "command"), [
    ("client.cli", ["send", "--help"]),
    ("app.cli", ["serve", "--help"]),
    ("witness.cli", ["init", "--help"]),
])
def test_each_command_line_alone_leaves_flags_bare(entry: str, command: list[str]) -> None:
    """In a process of its own: no command line counts on another having been imported."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", f"from {entry} import main; main()", *command],
        env={**os.environ, "COLUMNS": "160"}, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 0, done.stderr
    assert "--help" in done.stdout
    assert "<bool>" not in done.stdout


def test_options_that_take_a_value_still_say_what_it_is() -> None:
    result = CliRunner().invoke(server_cli, ["serve", "--help"], env={"COLUMNS": "160"})
    assert "<int>" in result.output
    assert "<str>" in result.output
