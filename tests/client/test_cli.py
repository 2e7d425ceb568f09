"""The ``cadena`` command line against the real server, through an injected HTTP client."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import typer
from typer.testing import CliRunner

from client.cli import app
from client.cli.common import CliDeps
from client.profile import Profile
from tests.app.conftest import World
from tests.client.conftest import Cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_generate_writes_private_files_and_prints_fingerprint(cli: Cli) -> None:
    result = cli.run("keys", "generate", "--profile", "ana", "--no-passphrase")
    profile = Profile("ana", cli.home)
    assert _mode(profile.path) == 0o700
    assert _mode(profile.key_path) == 0o600
    public = profile.public_keys()
    assert public.fingerprint in result.stdout
    assert public.key_id in result.stdout
    assert "unencrypted" in result.stderr
    shown = cli.json("keys", "show", "--profile", "ana")
    assert shown["fingerprint"] == public.fingerprint
    assert shown["encrypted"] is False


def test_passphrase_from_environment_encrypts_the_key_file(cli: Cli) -> None:
    env = {"CADENA_PASSPHRASE": "correct horse", "CADENA_PROFILE": "ben"}
    data = cli.json("keys", "generate", "--kdf", "interactive", env=env)
    profile = Profile("ben", cli.home)
    assert data["encrypted"] is True
    assert b"correct horse" not in profile.key_path.read_bytes()
    keys = profile.load_keys(lambda: "correct horse")
    assert keys.public.key_id == data["key_id"]
    again = cli.run("keys", "generate", "--no-passphrase", env=env, code=2)
    assert "never overwritten" in again.stderr


def test_prompted_passphrase_needs_confirmation(cli: Cli) -> None:
    result = CliRunner().invoke(app, ["keys", "generate", "--kdf", "interactive", "--json"],
                                input="s3cret\ns3cret\n", obj=CliDeps(home=cli.home),
                                env={"CADENA_PASSPHRASE": "", "CADENA_PROFILE": ""})
    assert result.exit_code == 0, result.output
    assert Profile("default", cli.home).is_encrypted()


def test_keys_generate_with_no_passphrase_source_is_a_usage_error(cli: Cli) -> None:
    """No terminal, no ``CADENA_PASSPHRASE``, no ``--no-passphrase``: exit 2, not 1."""
    result = cli.run("keys", "generate", "--kdf", "interactive", code=2, input_text="")
    assert "no passphrase" in result.stderr
    assert "CADENA_PASSPHRASE" in result.stderr
    assert not Profile("default", cli.home).has_keys()


def test_readable_key_file_is_refused(cli: Cli) -> None:
    cli.run("keys", "generate", "--no-passphrase")
    Profile("default", cli.home).key_path.chmod(0o644)
    result = cli.run("keys", "show", code=2)
    assert "chmod 600" in result.stderr


def test_coordinator_enrols_state_liaison_clearance_and_channel(cli: Cli, world: World) -> None:
    cli.profile_for("coord", world.coordinator)
    login = cli.run("login", "--profile", "coord")
    assert "token expires" in login.stdout
    assert "clearance expires" in login.stdout
    co = ("--profile", "coord")
    cli.run("states", "add", "MX", "--name", "Mexico", "--note", "note MX/2026", *co)
    assert {s["code"] for s in cli.json("states", "list", *co)} == {"CO", "MX"}
    ana = cli.json("keys", "generate", "--profile", "ana", "--no-passphrase")
    cli.run("liaisons", "enroll", "ana", "--state", "MX", "--name", "Ana", "--role",
            "prosecutor", "--signing-public", ana["signing_public"], "--encryption-public",
            ana["encryption_public"], "--fingerprint", ana["fingerprint"], *co)
    granted = cli.json("clearances", "grant", "ana", "--level", "secret", "--days", "30", *co)
    assert granted["level"] == "SECRET"
    assert granted["in_force"] is True
    world.liaison("bob", "CO")
    cli.run("channels", "create", "co-mx", "--name", "CO-MX", "--kind", "bilateral",
            "--min-clearance", "CONFIDENTIAL", "--member", "bob", *co)
    cli.run("channels", "add-member", "co-mx", "ana", *co)
    channels = cli.json("channels", "list", *co)
    assert channels[0]["members"] == ["ana", "bob"]
    liaisons = {x["id"]: x for x in cli.json("liaisons", "list", "--state", "MX", *co)}
    assert liaisons["ana"]["current_key"]["fingerprint"] == ana["fingerprint"]
    cli.run("profile", "set", "--profile", "ana", "--server", "http://testserver",
            "--liaison", "ana")
    assert cli.json("login", "--profile", "ana")["clearance_expires_at"] is not None
    mine = cli.json("clearances", "list", "--profile", "ana")
    assert [c["id"] for c in mine] == [granted["id"]]
    assert cli.json("channels", "remove-member", "co-mx", "bob", *co)["members"] == ["ana"]
    assert cli.json("channels", "list", *co)[0]["members"] == ["ana"]


def test_tables_are_printed_without_json(cli: Cli, world: World) -> None:
    cli.profile_for("coord", world.coordinator)
    table = cli.run("states", "list", "--profile", "coord").stdout
    assert "Colombia" in table
    assert "active" in table


def test_enrolment_stops_when_fingerprint_differs(cli: Cli, world: World) -> None:
    cli.profile_for("coord", world.coordinator)
    ana = cli.json("keys", "generate", "--profile", "ana", "--no-passphrase")
    result = cli.run("liaisons", "enroll", "ana", "--state", "CO", "--name", "Ana",
                     "--signing-public", ana["signing_public"], "--encryption-public",
                     ana["encryption_public"], "--fingerprint", "00000 00000 00000 00000 "
                     "00000 00000", "--profile", "coord", code=2)
    assert "do not enrol" in result.output
    assert "ana" not in {x["id"] for x in cli.json("liaisons", "list", "--profile", "coord")}


def test_refusal_by_server_exits_3_and_names_the_ledger_entry(cli: Cli, world: World) -> None:
    cli.profile_for("alice", world.liaison("alice", "CO"))
    result = cli.run("states", "suspend", "CO", "--reason", "test", "--profile", "alice",
                     code=3)
    assert "refused" in result.stderr
    assert f"ledger at index {world.last_entry().index}" in result.stderr


def test_saved_token_spares_a_new_login(cli: Cli, world: World) -> None:
    cli.profile_for("coord", world.coordinator)
    cli.run("login", "--profile", "coord")
    assert _mode(Profile("coord", cli.home).session_path) == 0o600
    logins = sum(e.action == "auth.login" for e in world.entries())
    cli.run("states", "list", "--profile", "coord")
    cli.run("channels", "list", "--profile", "coord")
    assert sum(e.action == "auth.login" for e in world.entries()) == logins


def test_profiles_side_by_side_and_usage_errors(cli: Cli, world: World) -> None:
    cli.profile_for("coord", world.coordinator)
    cli.run("keys", "generate", "--no-passphrase", env={"CADENA_PROFILE": "other"})
    names = {p["name"]: p for p in cli.json("profile", "list")}
    assert set(names) == {"coord", "other"}
    assert names["other"]["server"] is None
    assert "no server" in cli.run("states", "list", "--profile", "other", code=2).stderr
    cli.run("profile", "set", "--server", "ftp://x", "--profile", "other", code=2)
    cli.run("states", "list", "--profile", "../escape", code=2)


def test_network_failure_exits_4(cli: Cli, world: World) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    cli.profile_for("coord", world.coordinator)
    broken = httpx.Client(transport=httpx.MockTransport(refuse))
    result = CliRunner().invoke(app, ["states", "list", "--profile", "coord"],
                                obj=CliDeps(http=broken, home=cli.home))
    assert result.exit_code == 4
    assert "cannot reach" in result.stderr


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_has_help(tmp_path: Path) -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    assert ("audit", "verify") in commands
    assert ("liaisons", "revoke-key") in commands
    for path in commands:
        result = CliRunner().invoke(app, [*path, "--help"], obj=CliDeps(home=tmp_path))
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.stdout


def test_json_listing_options_exist_on_every_list_command() -> None:
    root = typer.main.get_command(app)
    lists = [p for p in _commands(root) if p and p[-1] in ("list", "show")]
    assert len(lists) >= 7
    for path in lists:
        help_text = CliRunner().invoke(app, [*path, "--help"]).stdout
        assert "--json" in help_text, path
    assert json.loads("[]") == []
