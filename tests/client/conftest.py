"""Fixtures for client tests: the real server in-process, and the client pointed at it.

The server is the ``world`` of ``tests/app/conftest.py`` (a bootstrapped
service on a fresh SQLite or PostgreSQL database, reached through a
Starlette ``TestClient``). The SDK and the CLI get that ``TestClient`` as
their ``httpx.Client``, so every request runs through the real routes,
services, database and ledger; nothing is mocked, the crypto least of all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner, Result

from app.ledger.checkpointer import sign_once
from app.ledger.key import load_note_signer
from app.ledger.unit_of_work import UnitOfWork
from client.cli import app
from client.cli.common import CliDeps
from client.sdk import Client
from client.session import Credentials
from ledger import StoredCheckpoint
from tests.app.conftest import Person, World, world  # noqa: F401  (the fixture)
from tests.app.test_packets_support import Exchange, exchange

BASE_URL = "http://testserver"


def sdk_for(w: World, person: Person) -> Client:
    """An SDK client logged in as ``person`` through the in-process server."""
    return Client(BASE_URL, http=w.client, credentials=Credentials(person.id, person.keys))


def sessions(w: World) -> sessionmaker[UnitOfWork]:
    """The running server's session factory."""
    server = w.client.app
    assert isinstance(server, FastAPI)
    factory: sessionmaker[UnitOfWork] = server.state.sessions
    return factory


def sign_checkpoint(w: World) -> StoredCheckpoint:
    """Sign a checkpoint now (the fixture's background interval is an hour)."""
    signer = load_note_signer(w.settings.resolved_ledger_key_path(), w.settings.ledger_origin)
    checkpoint = sign_once(sessions(w), signer, w.settings.ledger_origin)
    assert checkpoint is not None, "the ledger did not grow since the last checkpoint"
    return checkpoint


def verifier_key(w: World) -> str:
    """The ledger's verifier key, as the server publishes it."""
    text: str = w.client.get("/v1/ledger/key").text
    return text.strip()


@dataclass
class Cli:
    """Runs ``cadena`` commands against the in-process server, profiles under ``home``."""

    world: World
    home: Path

    def run(self, *args: str, env: Mapping[str, str] | None = None,
            code: int | None = 0, input_text: str | None = None) -> Result:
        """Invoke ``cadena args...`` (``input_text`` on standard input); check the exit code
        unless ``code`` is None."""
        result = CliRunner().invoke(app, list(args), obj=CliDeps(http=self.world.client,
                                                                 home=self.home),
                                    input=input_text,
                                    env={"CADENA_HOME": str(self.home), "CADENA_PROFILE": "",
                                         "CADENA_PASSPHRASE": "", **(env or {})})
        if code is not None:
            assert result.exit_code == code, (result.exit_code, result.output,
                                              result.exception)
        return result

    def json(self, *args: str, env: Mapping[str, str] | None = None) -> Any:
        """Invoke with ``--json`` and parse standard output."""
        return json.loads(self.run(*args, "--json", env=env).stdout)

    def profile_for(self, name: str, person: Person, *, trust: bool = True) -> None:
        """A profile holding ``person``'s keys (written as a plaintext key file).

        ``trust``: with trust roots (:meth:`trust`); without, no contact's key is used.
        """
        from client.profile import Profile
        from crypto import save_keys

        profile = Profile(name, self.home)
        profile.save_key_file(save_keys(person.keys, None, allow_plaintext=True))
        self.run("profile", "set", "--profile", name, "--server", BASE_URL,
                 "--liaison", person.id)
        if trust:
            self.trust(name)

    def trust(self, name: str) -> None:
        """Trust roots set out of band: the world's ledger key, no witness (quorum 0).

        Keys are then proven against checkpoints the ledger alone signed: a
        test signs one (:func:`sign_checkpoint`) after enrolling or rotating.
        """
        self.run("trust", "set", "--profile", name, "--ledger-key", verifier_key(self.world),
                 "--quorum", "0", "--yes")


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    """Keep the in-process server's request logs out of the CLI's captured output."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
def cli(world: World, tmp_path: Path) -> Cli:  # noqa: F811  (world is the imported fixture)
    """The command line, wired to the in-process server, with an empty profiles home."""
    home = tmp_path / "cadena-home"
    return Cli(world, home)


@pytest.fixture
def ex(world: World, cli: Cli) -> Exchange:  # noqa: F811  (world is the imported fixture)
    """alice, bob and carol in channel ``ch``, each with a CLI profile of the same name."""
    found = exchange(world)
    for person in (found.alice, found.bob, found.carol):
        cli.profile_for(person.id, person)
    sign_checkpoint(world)  # the keys are proven in a signed checkpoint
    return found
