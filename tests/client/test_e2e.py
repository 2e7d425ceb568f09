"""The whole exchange through the real CLI against a real server process, SQLite and PostgreSQL.

The server is ``cadena-server serve`` on a free loopback port; the commands run
in-process (``CliRunner``) with their own HTTP clients, so every byte crosses
a real socket. The story is ``cadena demo --server``: enrolment, clearances, a
specialized channel, a request with an attachment, a reply, receipts, a
refused access, an H2 onward share with approval, and the audit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from client.cli import app
from client.cli.common import CliDeps
from client.local_server import LocalServer, bootstrap, local_server
from client.profile import Profile, ProfileConfig
from client.trust import TrustRoots, save_trust
from crypto import LiaisonKeys, save_keys


def _invoke(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), obj=CliDeps(home=home),
                                env={"CADENA_HOME": str(home), "CADENA_PROFILE": "",
                                     "CADENA_PASSPHRASE": ""})
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LocalServer, Path]]:
    """A bootstrapped server process, and a profiles home holding its coordinator."""
    database_url = None
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        database_url = str(request.getfixturevalue("postgres_url"))
    keys = LiaisonKeys.generate()
    public = tmp_path / "coord.json"
    data = keys.public.to_json()
    public.write_text(json.dumps({"signing_public": data["sign"],
                                  "encryption_public": data["box"]}))
    verifier = bootstrap(tmp_path / "server", public, database_url=database_url)
    home = tmp_path / "home"
    with local_server(tmp_path / "server", database_url=database_url) as server:
        coord = Profile("coord", home)
        coord.save_key_file(save_keys(keys, None, allow_plaintext=True))
        coord.save_config(ProfileConfig(server.url, "coord", verifier))
        save_trust(coord, TrustRoots.parse(verifier, [], 0))  # this server has no witness
        yield server, home


def _entries(export: Path) -> list[dict[str, Any]]:
    lines = export.read_text().splitlines()
    return [json.loads(base64.b64decode(json.loads(line)["entry"])) for line in lines[1:]]


def test_whole_exchange_through_the_cli(served: tuple[LocalServer, Path], tmp_path: Path) -> None:
    server, home = served
    work = tmp_path / "work"
    result = _invoke(home, "demo", "--server", server.url, "--coordinator", "coord",
                     "--workdir", str(work))
    assert result.exit_code == 0, (result.output, server.log()[-3000:])
    assert "Demo complete" in result.stdout
    assert "signed checkpoint" in result.stdout
    files = work / "files"
    for fetched, original in [("bruno/request/message.txt", "ana/request.txt"),
                              ("bruno/request/attachments/persons.csv", "ana/persons.csv"),
                              ("carla/request/attachments/persons.csv", "ana/persons.csv"),
                              ("ana/reply/attachments/flights.csv", "bruno/flights.csv")]:
        assert (files / fetched).read_bytes() == (files / original).read_bytes()
    assert not (files / "diego").exists()
    record = json.loads((files / "bruno/request/packet.json").read_text())
    assert record["sender_id"].startswith("ana-")

    entries = _entries(files / "ledger.jsonl")
    granted = [e["action"] for e in entries if e["outcome"] == "granted"]
    for action in ("packet.submit", "packet.retrieve", "packet.download", "packet.receipt",
                   "packet.share_request", "packet.share_approve", "packet.share",
                   "packet.receipts", "packet.thread", "blob.upload"):
        assert action in granted, action
    assert granted.count("packet.submit") == 2
    assert granted.count("packet.receipt") == 3
    denied = [e for e in entries if e["outcome"] != "granted"]
    assert any(e["actor"] != "system" and e["actor"]["liaison"].startswith("diego-")
               and e["action"] == "packet.retrieve" for e in denied), denied
    offline = _invoke(home, "audit", "verify", "--file", str(files / "ledger.jsonl"),
                      "--profile", "coord")
    assert offline.exit_code == 0, offline.output
