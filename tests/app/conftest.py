"""Fixtures for service tests: a bootstrapped server on a real database, and liaisons.

``world`` gives a TestClient against a freshly migrated SQLite or PostgreSQL
database (the ``db_url`` fixture), bootstrapped with a coordinator, and helpers
to enrol states and liaisons, grant clearances and log in with real Ed25519
challenge signatures.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.bootstrap import Coordinator, bootstrap
from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory, transaction
from app.main import create_app
from app.models.ledger import LEDGER_TABLES
from app.settings import Settings
from crypto import AUTH_CHALLENGE_TYPE, LiaisonKeys, sign
from ledger import Entry, parse_entry
from tests.app.backup_support import (
    BackedUp,
    Shared,
    Witnessed,
    build_backed_up,
    build_witnessed,
)
from tests.conftest import fresh_database_url


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


@dataclass
class Person:
    """A liaison as the tests drive them: id, keys and a bearer token once logged in."""

    id: str
    keys: LiaisonKeys
    token: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this person."""
        assert self.token is not None, f"{self.id} is not logged in"
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """A running, bootstrapped service and what the tests made in it."""

    client: TestClient
    settings: Settings
    coordinator: Person
    people: dict[str, Person] = field(default_factory=dict)

    def entries(self) -> list[Entry]:
        """Every ledger entry, parsed, in order."""
        engine = make_engine(self.settings.resolved_database_url())
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(LEDGER_TABLES.entries.c.entry)
                                    .order_by(LEDGER_TABLES.entries.c.index)).scalars().all()
        finally:
            engine.dispose()
        return [parse_entry(bytes(raw)) for raw in rows]

    def last_entry(self) -> Entry:
        """The newest ledger entry (one row read)."""
        table = LEDGER_TABLES.entries
        engine = make_engine(self.settings.resolved_database_url())
        try:
            with engine.connect() as conn:
                raw = conn.execute(select(table.c.entry).order_by(table.c.index.desc())
                                   .limit(1)).scalar_one()
        finally:
            engine.dispose()
        return parse_entry(bytes(raw))

    def login(self, person: Person) -> dict[str, Any]:
        """Log ``person`` in with a real challenge signature; return the token response."""
        challenge = self.client.post("/v1/auth/challenge", json={"liaison_id": person.id})
        assert challenge.status_code == 201, challenge.text
        body = challenge.json()
        assert body["payload_type"] == AUTH_CHALLENGE_TYPE
        signature = sign(person.keys.signing_key, AUTH_CHALLENGE_TYPE,
                         base64.b64decode(body["payload"]))
        token = self.client.post("/v1/auth/token", json={
            "challenge_id": body["challenge_id"], "key_id": person.keys.public.key_id,
            "signature": b64(signature)})
        assert token.status_code == 201, token.text
        person.token = token.json()["token"]
        return dict(token.json())

    def state(self, code: str, name: str | None = None) -> None:
        """Enrol a state as the coordinator."""
        response = self.client.post("/v1/states", headers=self.coordinator.auth, json={
            "code": code, "name": name or f"State {code}", "joining_note": f"note {code}/2026"})
        assert response.status_code == 201, response.text

    def liaison(self, liaison_id: str, state: str, role: str = "prosecutor",
                level: str | None = "SECRET", days: int = 30, login: bool = True) -> Person:
        """Enrol a liaison with fresh keys, grant a clearance, log them in."""
        person = Person(liaison_id, LiaisonKeys.generate())
        public = person.keys.public
        response = self.client.post("/v1/liaisons", headers=self.coordinator.auth, json={
            "id": liaison_id, "state_code": state, "name": liaison_id.title(), "role": role,
            "signing_public": b64(public.signing), "encryption_public": b64(public.encryption)})
        assert response.status_code == 201, response.text
        if level is not None:
            self.grant(liaison_id, level, days=days)
        if login and level is not None:
            self.login(person)
        self.people[liaison_id] = person
        return person

    def grant(self, liaison_id: str, level: str, days: int = 30,
              start: datetime | None = None) -> dict[str, Any]:
        """Grant a clearance as the coordinator."""
        begin = start or datetime.now(UTC) - timedelta(minutes=1)
        response = self.client.post("/v1/clearances", headers=self.coordinator.auth, json={
            "liaison_id": liaison_id, "level": level, "valid_from": begin.isoformat(),
            "valid_until": (begin + timedelta(days=days)).isoformat()})
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A bootstrapped Cadena service on a fresh database (SQLite and PostgreSQL)."""
    yield from _world(db_url, tmp_path)


@pytest.fixture
def sqlite_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A bootstrapped Cadena service on a fresh SQLite database only (SQLite's own mechanisms)."""
    yield from _world(fresh_database_url("sqlite", request, tmp_path), tmp_path)


@pytest.fixture
def postgres_world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    """A bootstrapped Cadena service on a fresh PostgreSQL database."""
    yield from _world(postgres_url, tmp_path)


@pytest.fixture
def blob_db_world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    """A bootstrapped Cadena service on PostgreSQL with its blobs in the database."""
    yield from _world(postgres_url, tmp_path, blob_store="database")


@pytest.fixture(scope="session")
def backed_up(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Shared[BackedUp]:
    """Per backend, one checkpointed source and its good, altered and cut archives."""
    return Shared(lambda backend: build_backed_up(
        backend, request, tmp_path_factory.mktemp(f"backed-up-{backend}")))


@pytest.fixture(scope="session")
def witnessed(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared[Witnessed]]:
    """Per backend, a source a witness followed and its archives from before and after."""
    with ExitStack() as stack:
        yield Shared(lambda backend: build_witnessed(
            backend, request, tmp_path_factory.mktemp(f"witnessed-{backend}"), stack))


def _world(db_url: str, tmp_path: Path, **overrides: Any) -> Iterator[World]:
    # Every refusal logged one by one (the flood tests set their own budget).
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url,
                        checkpoint_interval=3600, ledger_origin="test.cadena/ledger",
                        refusals_logged_per_interval=1_000_000,
                        refusals_logged_per_liaison=1_000_000, **overrides)
    settings.data_dir.mkdir(mode=0o700)  # as cadena-server makes it (it refuses a wider one)
    coordinator = Person("coord", LiaisonKeys.generate())
    engine = make_engine(db_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            bootstrap(session, settings.resolved_ledger_key_path(), settings.ledger_origin,
                      Coordinator(liaison_id="coord", name="First Coordinator", state_code="CO",
                                  state_name="Colombia", joining_note="Chapultepec/2012",
                                  keys=coordinator.keys.public))
    finally:
        engine.dispose()
    with TestClient(create_app(settings)) as client:
        w = World(client, settings, coordinator)
        w.login(coordinator)
        yield w


def sign_checkpoint_now(world: World) -> None:
    """Sign a checkpoint of the whole ledger now (the interval thread is slowed in tests)."""
    from app.ledger.checkpointer import sign_once
    from app.ledger.key import load_note_signer

    engine = make_engine(world.settings.resolved_database_url())
    try:
        signer = load_note_signer(world.settings.resolved_ledger_key_path(),
                                  world.settings.ledger_origin)
        sign_once(make_session_factory(engine), signer, world.settings.ledger_origin)
    finally:
        engine.dispose()
