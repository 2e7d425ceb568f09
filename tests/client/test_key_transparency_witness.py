"""Key transparency with a real witness node (``witness``) over loopback HTTP (C2SP tlog-witness).

The server's own collector (``app.witnesses.witnessing``) submits each checkpoint to
the witness, which checks consistency with what it saw and cosigns; the
client trusts the ledger key and that witness, quorum 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from app.ledger.engine import make_engine
from app.ledger.unit_of_work import UnitOfWork, make_session_factory
from app.witnesses.witnessing import Witnessing
from client.keychain import KeyNotProven
from client.transfer import recipient_keys
from client.transparency import DirectoryAPI, KeyTransparency, MemoryCheckpoints
from client.trust import TrustRoots
from crypto import LiaisonKeys
from ledger import NoteVerifier
from tests.app.conftest import World, sign_checkpoint_now
from tests.client.conftest import sdk_for, verifier_key
from tests.client.kt_support import rogue_rotation
from tests.witness.helpers import serving, witness_signer
from witness.server import create_app
from witness.store import WitnessStore
from witness.witness import Witness


@pytest.fixture
def collector(world: World, tmp_path: Path) -> Iterator[Witnessing]:
    """A real witness following the world's ledger, registered, and the server's collector."""
    key = NoteVerifier.from_string(verifier_key(world))
    witness = Witness(witness_signer(), {key.name: (key,)}, WitnessStore(tmp_path / "w.db"))
    engine = make_engine(world.settings.resolved_database_url())
    sessions: sessionmaker[UnitOfWork] = make_session_factory(engine)
    with serving(create_app(witness)) as url:
        response = world.client.post("/v1/witnesses", headers=world.coordinator.auth, json={
            "name": "mx", "url": url, "verifier_key": witness_signer().verifier_key()})
        assert response.status_code == 201, response.text
        found = Witnessing(sessions, 3600)
        try:
            yield found
        finally:
            found.stop()
            engine.dispose()


def _witnessed(world: World, collector: Witnessing) -> None:
    sign_checkpoint_now(world)
    collector.run_round(timeout=20)


def test_keys_proven_in_checkpoints_a_real_witness_cosigned(
        world: World, collector: Witnessing) -> None:
    world.state("MX")
    alice, bob = world.liaison("alice", "MX"), world.liaison("bob", "MX")
    _witnessed(world, collector)
    client = sdk_for(world, bob)
    roots = TrustRoots.parse(verifier_key(world), [witness_signer().verifier_key()], 1)
    store = MemoryCheckpoints()
    client.liaisons.pins = KeyTransparency(DirectoryAPI(client.session), roots, store)
    assert recipient_keys(client, ["alice"]) == {"alice": alice.keys.public}
    new = LiaisonKeys.generate()
    sdk_for(world, alice).liaisons.rotate(new)
    _witnessed(world, collector)  # the witness checks consistency from the size it saw
    client.liaisons.pins = KeyTransparency(DirectoryAPI(client.session), roots, store)
    assert recipient_keys(client, ["alice"]) == {"alice": new.public}
    rogue_rotation(world, world.people["alice"], LiaisonKeys.generate(), retire=False)
    _witnessed(world, collector)
    client.liaisons.pins = KeyTransparency(DirectoryAPI(client.session), roots, store)
    with pytest.raises(KeyNotProven) as exc:
        recipient_keys(client, ["alice"])
    assert exc.value.reason in {"rotation-mismatch", "rotation-not-signed"}
