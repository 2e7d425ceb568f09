"""The server takes no unsafe public key: enrolment, rotation and bootstrap refuse them.

Unsafe means all zero, of small order, or not canonical (``crypto.check_public_keys``,
vectors in ``tests/vectors/crypto/small-order-keys.json``). Each refusal is a
422 ``invalid-key`` problem (exit status 2 for the bootstrap command) and
changes nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.bootstrap import Coordinator, bootstrap
from app.cli import cli
from app.errors import CadenaError
from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory, transaction
from app.models.identity import Liaison
from app.settings import get_settings
from crypto import LiaisonKeys, LiaisonPublicKeys
from ledger import ALG_COSIGNATURE_V1, NoteVerifier
from tests.app.conftest import World
from tests.app.test_packets_support import assert_problem, ledger_size

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "crypto"
                      / "small-order-keys.json").read_text(encoding="utf-8"))
SMALL_X25519 = [bytes.fromhex(v["key"]) for v in VECTORS["x25519"]]
SMALL_ED25519 = [bytes.fromhex(v["key"]) for v in VECTORS["ed25519"]]
GOOD = LiaisonKeys.generate().public


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _enrol(world: World, signing: bytes, encryption: bytes) -> httpx.Response:
    response: httpx.Response = world.client.post(
        "/v1/liaisons", headers=world.coordinator.auth, json={
            "id": "mallory", "state_code": "CO", "name": "Mallory", "role": "prosecutor",
            "signing_public": _b64(signing), "encryption_public": _b64(encryption)})
    return response


def test_all_zero_x25519_key_is_refused_at_enrolment(world: World) -> None:
    before = ledger_size(world)
    body = assert_problem(_enrol(world, GOOD.signing, bytes(32)), 422, "invalid-key")
    assert "small order" in body["detail"]
    assert ledger_size(world) == before
    missing = world.client.get("/v1/liaisons/mallory", headers=world.coordinator.auth)
    assert missing.status_code == 404


@pytest.mark.parametrize("key", SMALL_X25519[1:], ids=lambda k: k.hex()[:8])
def test_small_order_x25519_keys_are_refused_at_enrolment(world: World, key: bytes) -> None:
    assert_problem(_enrol(world, GOOD.signing, key), 422, "invalid-key")


@pytest.mark.parametrize("key", SMALL_ED25519, ids=lambda k: k.hex()[:8])
def test_small_order_ed25519_keys_are_refused_at_enrolment(world: World, key: bytes) -> None:
    assert_problem(_enrol(world, key, GOOD.encryption), 422, "invalid-key")


def test_rotation_to_a_small_order_key_is_refused_and_the_old_key_stays(world: World) -> None:
    alice = world.liaison("alice", "CO")
    before = ledger_size(world)
    response = world.client.post("/v1/liaisons/me/keys", headers=alice.auth, json={
        "signing_public": _b64(GOOD.signing), "encryption_public": _b64(bytes(32))})
    assert_problem(response, 422, "invalid-key")
    assert ledger_size(world) == before
    keys = world.client.get("/v1/liaisons/alice/keys", headers=alice.auth)
    assert keys.status_code == 200, keys.text  # the old key still authenticates
    assert [k["key_id"] for k in keys.json()] == [alice.keys.public.key_id]


def _first(keys: LiaisonPublicKeys) -> Coordinator:
    return Coordinator(liaison_id="coord", name="First", state_code="CO", state_name="Colombia",
                       joining_note="Chapultepec/2012", keys=keys)


def test_bootstrap_refuses_a_small_order_key(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    weak = LiaisonPublicKeys(signing=SMALL_ED25519[2], encryption=GOOD.encryption)
    try:
        with pytest.raises(CadenaError, match="Ed25519"), \
                transaction(make_session_factory(engine)) as session:
            bootstrap(session, tmp_path / "ledger.key", "test/ledger", _first(weak))
        with engine.connect() as conn:
            assert conn.execute(select(Liaison.id)).first() is None
    finally:
        engine.dispose()
    assert not (tmp_path / "ledger.key").exists()


@pytest.fixture
def server_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """``cadena-server`` commands on a fresh SQLite data directory."""
    data = tmp_path / "data"
    monkeypatch.setenv("CADENA_DATA_DIR", str(data))
    monkeypatch.delenv("CADENA_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def test_bootstrap_command_refuses_an_all_zero_x25519_key(server_env: Path) -> None:
    done = CliRunner().invoke(cli, [
        "bootstrap", "--origin", "test.cadena/ledger", "--state", "CO", "--state-name",
        "Colombia", "--joining-note", "n/1",
        "--liaison", "coord", "--name", "First", "--signing-public", _b64(GOOD.signing),
        "--encryption-public", _b64(bytes(32))])
    assert done.exit_code == 2, done.output
    assert "small order" in done.output
    assert not get_settings().resolved_ledger_key_path().exists()


@pytest.mark.parametrize("key", SMALL_ED25519, ids=lambda k: k.hex()[:8])
def test_small_order_witness_keys_are_refused(world: World, key: bytes) -> None:
    verifier = str(NoteVerifier("witness.example/w", ALG_COSIGNATURE_V1, key))
    before = ledger_size(world)
    response = world.client.post("/v1/witnesses", headers=world.coordinator.auth, json={
        "name": "w", "url": "https://witness.example", "verifier_key": verifier})
    assert_problem(response, 422, "bad-witness-key")
    assert ledger_size(world) == before
