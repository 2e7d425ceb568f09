"""A key whose entry exists only in a fork of the ledger is refused.

The dishonest operator signs, with the real ledger key, a second tree that
shares the honest one's first entries and then carries a rogue enrolment;
it serves that tree's checkpoint and proofs for the rogue key. A client that
saw the honest tree refuses it as a fork (RFC 9162 §2.1.4: no consistency
proof exists); a client at first contact refuses it because the witness,
which saw the honest tree, never cosigned the fork. Only with quorum 0 is it
accepted, and then the client has said it trusts the operator alone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from app.ledger.key import load_note_signer
from app.liaisons.service import enrolment_details
from app.models.identity import Role
from client.keychain import KeyNotProven
from client.models import DirectoryPage
from client.transparency import MemoryCheckpoints, SeenCheckpoint
from crypto import LiaisonKeys
from ledger import (
    Checkpoint,
    EntryDraft,
    encode_entry,
    extension_line,
    key_leaves,
    sign_checkpoint,
)
from tests.app.conftest import Person, World
from tests.client.kt_support import register_witness, viewer, witnessed_checkpoint
from tests.ledger import reference


@dataclass(frozen=True)
class Fork:
    """The forked answer for the rogue liaison, and the honest checkpoint a client saw."""

    answer: DirectoryPage
    honest: SeenCheckpoint
    rogue: LiaisonKeys
    bob: Person


def _fork_answer(w: World, cut: int, rogue: LiaisonKeys) -> dict[str, object]:
    honest = [e.raw for e in w.entries()][:cut]
    draft = EntryDraft(time=datetime.now(UTC), actor=None, action="liaison.enrol",
                       subject={"type": "liaison", "id": "dave"}, outcome="granted",
                       details=enrolment_details("MX", Role.PROSECUTOR, rogue.public))
    raw = encode_entry(draft, cut, reference.leaf(honest[-1]), strict=True)
    leaves = [reference.leaf(e) for e in [*honest, raw]]
    # The fork carries a key log of its own entries, as a dishonest
    # checkpointer would compute it: the rogue enrolment is its last leaf.
    keyed = [leaf.hash() for leaf in key_leaves(0, [*honest, raw])]
    signer = load_note_signer(w.settings.resolved_ledger_key_path(), w.settings.ledger_origin)
    note = sign_checkpoint(Checkpoint(w.settings.ledger_origin, len(leaves),
                                      reference.mth(leaves),
                                      (extension_line(len(keyed), reference.mth(keyed)),)),
                           signer)
    return {"liaison_id": "dave", "checkpoint": note, "tree_size": len(leaves), "since": None,
            "consistency": None, "entries": [{
                "index": cut, "entry": base64.b64encode(raw).decode(), "key": None,
                "proof": [h.hex() for h in reference.path(cut, leaves)],
                "key_log_index": len(keyed) - 1,
                "key_log_proof": [h.hex() for h in reference.path(len(keyed) - 1, keyed)]}]}


@pytest.fixture
def fork(world: World) -> Fork:
    world.state("MX")
    bob = world.liaison("bob", "MX")
    register_witness(world)
    witnessed_checkpoint(world)
    first = viewer(world, bob)
    first.kt.check("bob", bob.keys.public)
    seen = first.store.load()
    assert seen is not None
    rogue = LiaisonKeys.generate()
    answer = DirectoryPage.model_validate(_fork_answer(world, seen.size - 1, rogue))
    return Fork(answer, seen, rogue, bob)


def test_a_client_that_saw_the_honest_tree_refuses_the_fork(world: World, fork: Fork) -> None:
    bob = viewer(world, fork.bob, quorum=0, store=MemoryCheckpoints(fork.honest),
                 tamper=lambda _: fork.answer)
    with pytest.raises(KeyNotProven) as exc:
        bob.kt.check("dave", fork.rogue.public)
    assert exc.value.reason == "fork"


def test_a_client_at_first_contact_refuses_a_fork_no_witness_cosigned(
        world: World, fork: Fork) -> None:
    bob = viewer(world, fork.bob, tamper=lambda _: fork.answer)
    with pytest.raises(KeyNotProven) as exc:
        bob.kt.check("dave", fork.rogue.public)
    assert exc.value.reason == "quorum"


def test_with_quorum_zero_a_fresh_client_is_fooled_and_was_warned(
        world: World, fork: Fork) -> None:
    bob = viewer(world, fork.bob, quorum=0, tamper=lambda _: fork.answer)
    bob.kt.check("dave", fork.rogue.public)
    assert any("operator" in w for w in bob.warnings)
