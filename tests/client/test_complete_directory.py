"""A rogue enrolment shown to senders but hidden from its victim is caught by the key log.

The dishonest operator appends a second, rogue ``liaison.enrol`` of alice
(keys it holds) to the ledger. It shows bob, a sender, an answer for alice
that holds only the rogue enrolment, and shows alice an answer without it:
the per-liaison answer is the server's to choose. Two ways it can go:

- the rogue entry is in the key log (the checkpointer derived it honestly):
  bob's client accepts the key, but alice's self-check, scanning every key-log
  leaf, finds a leaf under her name the directory did not show her, and warns
  (``hidden-key-entry``) before anyone can deny it: the checkpoint is witnessed;
- the operator leaves it out of the key log: then bob refuses the key
  (``not-in-key-log``), as every sender does.

Without the scan, alice's self-check sees nothing: the hole issue 17 closes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from app.ledger import ledger_for, transaction
from app.ledger.recording import draft, record
from app.liaisons.service import enrolment_details
from app.models.identity import Role
from app.models.ledger import KEY_LOG_TABLES
from client.keychain import KeyNotProven
from client.keylog import MemoryScans
from client.models import DirectoryItem, DirectoryPage
from client.transparency import self_check
from crypto import LiaisonKeys
from tests.app.conftest import Person, World
from tests.client.conftest import sessions
from tests.client.kt_support import register_witness, viewer, witnessed_checkpoint


@dataclass(frozen=True)
class Rogue:
    """The rogue enrolment: its ledger index, entry bytes and the keys the operator holds."""

    index: int
    entry: bytes
    keys: LiaisonKeys
    alice: Person
    bob: Person


def _enrol_rogue(w: World, victim: Person) -> tuple[int, bytes, LiaisonKeys]:
    rogue = LiaisonKeys.generate()
    with transaction(sessions(w)) as session:
        appended = record(session, draft(None, "liaison.enrol",
                                         {"type": "liaison", "id": victim.id},
                                         details=enrolment_details("MX", Role.PROSECUTOR,
                                                                   rogue.public)))
    return appended.index, appended.raw, rogue


def _world(w: World) -> tuple[Person, Person]:
    w.state("MX")
    alice, bob = w.liaison("alice", "MX"), w.liaison("bob", "MX")
    register_witness(w)
    witnessed_checkpoint(w)
    return alice, bob


def _without(index: int) -> Callable[[DirectoryPage], DirectoryPage]:
    def tamper(page: DirectoryPage) -> DirectoryPage:
        return page.model_copy(update={"entries": [e for e in page.entries if e.index != index]})
    return tamper


def _only(index: int) -> Callable[[DirectoryPage], DirectoryPage]:
    def tamper(page: DirectoryPage) -> DirectoryPage:
        return page.model_copy(update={"entries": [e for e in page.entries if e.index == index]})
    return tamper


@pytest.fixture
def rogue(world: World) -> Rogue:
    alice, bob = _world(world)
    index, entry, keys = _enrol_rogue(world, alice)
    witnessed_checkpoint(world)
    return Rogue(index, entry, keys, alice, bob)


def test_the_sender_shown_only_the_rogue_enrolment_is_fooled(world: World, rogue: Rogue) -> None:
    # What the key log alone cannot stop: the entry is in the witnessed
    # ledger and in its key log. What it guarantees: the victim sees it (below).
    bob = viewer(world, rogue.bob, tamper=_only(rogue.index))
    bob.kt.check("alice", rogue.keys.public, current=True)


def test_the_victim_from_whom_it_is_hidden_is_warned_by_the_key_log(world: World,
                                                                    rogue: Rogue) -> None:
    alice = viewer(world, rogue.alice, tamper=_without(rogue.index))
    held = [rogue.alice.keys.public]
    self_check(alice.kt, "alice", held)  # the old self-check: the answer looks complete
    with pytest.raises(KeyNotProven) as exc:
        self_check(alice.kt, "alice", held, scans=MemoryScans())
    assert exc.value.reason == "hidden-key-entry"
    assert exc.value.index == rogue.index
    assert f"ledger entry {rogue.index}" in str(exc.value)


def test_the_victim_is_warned_again_at_each_later_login(world: World, rogue: Rogue) -> None:
    scans = MemoryScans()
    first = viewer(world, rogue.alice, tamper=_without(rogue.index))
    with pytest.raises(KeyNotProven):
        self_check(first.kt, "alice", [rogue.alice.keys.public], scans=scans)
    world.liaison("carol", "MX")
    witnessed_checkpoint(world)
    later = viewer(world, rogue.alice, store=first.store,
                   tamper=_without(rogue.index))
    with pytest.raises(KeyNotProven) as exc:  # an incremental scan still holds the leaf
        self_check(later.kt, "alice", [rogue.alice.keys.public], scans=scans)
    assert exc.value.reason == "hidden-key-entry"
    assert scans.scan is not None
    assert rogue.index in scans.scan.own


def test_the_honest_answer_passes_the_complete_self_check(world: World) -> None:
    alice, _ = _world(world)
    world.liaison("carol", "MX")
    witnessed_checkpoint(world)
    scans = MemoryScans()
    history = self_check(viewer(world, alice).kt, "alice", [alice.keys.public], scans=scans)
    assert [k.keys.key_id for k in history.keys] == [alice.keys.public.key_id]
    assert scans.scan is not None
    assert list(scans.scan.own) == [history.keys[0].index]


def test_a_rogue_enrolment_left_out_of_the_key_log_is_refused_by_senders(world: World) -> None:
    alice, bob = _world(world)
    index, entry, keys = _enrol_rogue(world, alice)
    # The operator's checkpointer skips the entry: its key log claims to
    # have processed it already.
    with transaction(sessions(world)) as session:
        session.execute(update(KEY_LOG_TABLES.head).values(ledger_size=index + 1))
    witnessed_checkpoint(world)
    with transaction(sessions(world)) as session:
        storage = ledger_for(session).storage
        size = storage.latest_checkpoint().size  # type: ignore[union-attr]
        proof = ledger_for(session).inclusion_proof(index, size)

    def rogue_only(page: DirectoryPage) -> DirectoryPage:
        item = DirectoryItem.model_validate({
            "index": index, "entry": base64.b64encode(entry).decode(), "key": None,
            "proof": [h.hex() for h in proof], "key_log_index": 0,
            "key_log_proof": page.entries[0].key_log_proof if page.entries else []})
        return page.model_copy(update={"entries": [item]})

    sender = viewer(world, bob, tamper=rogue_only)
    with pytest.raises(KeyNotProven) as exc:
        sender.kt.check("alice", keys.public, current=True)
    assert exc.value.reason == "not-in-key-log"
    # alice's own (honest) answer and the key log agree: nothing to warn of,
    # and no sender uses the rogue key.
    self_check(viewer(world, alice).kt, "alice", [alice.keys.public], scans=MemoryScans())
