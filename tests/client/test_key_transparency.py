"""A key is used only if the witnessed ledger proves it (DESIGN.md invariant 7, issue 17).

Every test runs the real server in-process; the dishonest operator edits
its database or changes its answers, and the client must refuse (or warn)
and say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from app.ledger.key import load_note_signer
from client.contacts import KeyChanged
from client.errors import Forbidden
from client.keychain import KeyChainBroken, KeyNotProven
from client.models import DirectoryPage
from client.transfer import recipient_keys
from client.transparency import (
    DirectoryAPI,
    KeyTransparency,
    MemoryCheckpoints,
    SeenCheckpoint,
    self_check,
    wait_until_proven,
)
from client.trust import TrustRoots
from crypto import LiaisonKeys
from ledger import Checkpoint, CosignatureSigner, NoteSigner, sign_checkpoint
from tests.app.conftest import Person, World, sign_checkpoint_now
from tests.client.conftest import sdk_for
from tests.client.kt_support import (
    WITNESS,
    contact_book,
    cosign_latest,
    register_witness,
    rogue_key_row,
    rogue_rotation,
    viewer,
    witnessed_checkpoint,
)


@dataclass
class Pair:
    """alice and bob, enrolled; a witness; a witnessed checkpoint covering both."""

    world: World
    alice: Person
    bob: Person


@pytest.fixture
def pair(world: World) -> Pair:
    world.state("MX")
    alice, bob = world.liaison("alice", "MX"), world.liaison("bob", "MX")
    register_witness(world)
    witnessed_checkpoint(world)
    return Pair(world, alice, bob)


def _reason(exc: pytest.ExceptionInfo[KeyNotProven]) -> str:
    return exc.value.reason


def test_a_key_the_witnessed_ledger_proves_is_accepted_at_first_contact(pair: Pair) -> None:
    bob = viewer(pair.world, pair.bob)
    assert recipient_keys(bob.client, ["alice"]) == {"alice": pair.alice.keys.public}
    seen = bob.store.load()
    assert seen is not None
    assert seen.size > 0
    assert bob.warnings == []


def test_a_key_row_without_a_ledger_entry_is_refused_even_at_first_contact(pair: Pair) -> None:
    rogue = LiaisonKeys.generate()
    rogue_key_row(pair.world, "alice", rogue, retire=True)
    witnessed_checkpoint(pair.world)
    bob = viewer(pair.world, pair.bob)
    with pytest.raises(KeyNotProven, match="no enrolment or rotation entry") as exc:
        recipient_keys(bob.client, ["alice"])
    assert _reason(exc) == "not-in-ledger"


def test_a_checkpoint_below_the_witness_quorum_is_refused(pair: Pair) -> None:
    w = pair.world
    absent = CosignatureSigner("witness.example/absent", SigningKey(bytes([5]) * 32))
    bob = viewer(w, pair.bob)
    two = TrustRoots.parse(str(bob.kt_roots.ledger), [WITNESS.verifier_key(),
                                                    absent.verifier_key()], 2)
    kt = KeyTransparency(DirectoryAPI(bob.client.session), two, MemoryCheckpoints())
    with pytest.raises(KeyNotProven, match="need 2 of 2") as exc:
        kt.check("alice", pair.alice.keys.public)
    assert _reason(exc) == "quorum"


def test_a_key_enrolled_after_the_last_witnessed_checkpoint_waits_for_it(pair: Pair) -> None:
    w = pair.world
    carol = w.liaison("carol", "MX")
    sign_checkpoint_now(w)  # signed by the ledger, not yet cosigned
    with pytest.raises(KeyNotProven) as exc:
        viewer(w, pair.bob).kt.check("carol", carol.keys.public)
    assert _reason(exc) == "not-in-ledger"
    cosign_latest(w)
    viewer(w, pair.bob).kt.check("carol", carol.keys.public)


def test_a_checkpoint_not_signed_by_the_trusted_ledger_key_is_refused(pair: Pair) -> None:
    origin = pair.world.settings.ledger_origin
    impostor = NoteSigner(origin, SigningKey(bytes(32)))  # same origin, another key
    forged = sign_checkpoint(Checkpoint(origin, 3, bytes(32)), impostor)

    def serve_forged(page: DirectoryPage) -> DirectoryPage:
        return page.model_copy(update={"checkpoint": forged})

    bob = viewer(pair.world, pair.bob)
    tampered = viewer(pair.world, pair.bob, tamper=serve_forged)
    with pytest.raises(KeyNotProven) as exc:
        tampered.kt.check("alice", pair.alice.keys.public)
    assert _reason(exc) == "no-checkpoint-signature"
    bob.kt.check("alice", pair.alice.keys.public)


def test_quorum_zero_is_accepted_but_says_the_operator_alone_is_trusted(pair: Pair) -> None:
    bob = viewer(pair.world, pair.bob, quorum=0)
    bob.kt.check("alice", pair.alice.keys.public)
    assert len(bob.warnings) == 1
    assert "operator" in bob.warnings[0]


def _ledger_signer(w: World) -> NoteSigner:
    return load_note_signer(w.settings.resolved_ledger_key_path(), w.settings.ledger_origin)


def test_a_checkpoint_that_does_not_extend_the_one_seen_is_a_fork(pair: Pair) -> None:
    w = pair.world
    first = viewer(w, pair.bob)
    first.kt.check("alice", pair.alice.keys.public)
    seen = first.store.load()
    assert seen is not None
    # The same ledger key signed another tree of the same size: two views.
    other_root = bytes(32)
    forked = SeenCheckpoint(seen.size, other_root, sign_checkpoint(
        Checkpoint(w.settings.ledger_origin, seen.size, other_root), _ledger_signer(w)))
    later = viewer(w, pair.bob, store=MemoryCheckpoints(forked))
    with pytest.raises(KeyNotProven, match="two views") as exc:
        later.kt.check("alice", pair.alice.keys.public)
    assert _reason(exc) == "fork"
    w.liaison("carol", "MX")
    witnessed_checkpoint(w)
    later = viewer(w, pair.bob, store=MemoryCheckpoints(forked))
    with pytest.raises(KeyNotProven, match="not consistent") as exc:
        later.kt.check("alice", pair.alice.keys.public)
    assert _reason(exc) == "fork"


def test_a_checkpoint_older_than_the_one_seen_is_a_rollback(pair: Pair) -> None:
    w = pair.world
    seen = SeenCheckpoint(10**6, bytes(32), "")
    bob = viewer(w, pair.bob, store=MemoryCheckpoints(seen))
    with pytest.raises(KeyNotProven) as exc:
        bob.kt.check("alice", pair.alice.keys.public)
    assert _reason(exc) == "rollback"


def test_a_rotation_the_victim_never_signed_is_refused_by_senders(pair: Pair) -> None:
    rogue = LiaisonKeys.generate()
    rogue_rotation(pair.world, pair.alice, rogue)
    witnessed_checkpoint(pair.world)
    bob = viewer(pair.world, pair.bob)
    with pytest.raises(KeyChainBroken, match="not signed by the key in force") as exc:
        recipient_keys(bob.client, ["alice"])
    assert _reason(exc) == "rotation-not-signed"


def test_the_victim_of_a_rogue_rotation_is_warned_at_its_self_check(pair: Pair) -> None:
    alice = viewer(pair.world, pair.alice)
    self_check(alice.kt, "alice", [pair.alice.keys.public])
    rogue_rotation(pair.world, pair.alice, LiaisonKeys.generate(), retire=False)
    witnessed_checkpoint(pair.world)
    alice = viewer(pair.world, pair.alice, store=alice.store)
    with pytest.raises(KeyNotProven):
        self_check(alice.kt, "alice", [pair.alice.keys.public])


def test_a_key_the_liaison_does_not_hold_is_reported_by_the_self_check(pair: Pair) -> None:
    alice = viewer(pair.world, pair.alice)
    with pytest.raises(KeyNotProven, match="does not hold") as exc:
        self_check(alice.kt, "alice", [LiaisonKeys.generate().public])
    assert _reason(exc) == "rogue-key"


def test_a_rotation_hidden_from_the_victim_but_shown_to_senders_is_caught(pair: Pair) -> None:
    """The server shows senders a tree with a rogue rotation, and the victim a tree without.

    Senders refuse the rotation (the victim's key never signed it); once the
    victim is shown the senders' view, its own older checkpoint must extend
    to it, so hiding the entry again is a rollback or a fork.
    """
    w = pair.world
    victim = viewer(w, pair.alice)
    self_check(victim.kt, "alice", [pair.alice.keys.public])
    rogue_rotation(w, pair.alice, LiaisonKeys.generate(), retire=False)
    witnessed_checkpoint(w)
    sender = viewer(w, pair.bob)
    with pytest.raises(KeyChainBroken):
        sender.kt.check("alice", pair.alice.keys.public, current=True)

    def hide_rogue(page: DirectoryPage) -> DirectoryPage:
        return page.model_copy(update={"entries": [
            e for e in page.entries if b"key.rotate" not in e.entry]})

    hidden = viewer(w, pair.alice, store=victim.store, tamper=hide_rogue)
    self_check(hidden.kt, "alice", [pair.alice.keys.public])  # the listing omits it...
    shown = viewer(w, pair.alice, store=hidden.store)
    with pytest.raises(KeyNotProven):  # ...but the next honest answer shows it
        self_check(shown.kt, "alice", [pair.alice.keys.public])


def test_an_honest_rotation_is_accepted_and_moves_the_pin(pair: Pair, tmp_path: Path) -> None:
    w = pair.world
    pins = contact_book(tmp_path, "bob")
    bob = viewer(w, pair.bob, pins=pins)
    recipient_keys(bob.client, ["alice"])
    assert [p.how for p in pins.pins()["alice"]] == ["first use"]
    new = LiaisonKeys.generate()
    sdk_for(w, pair.alice).liaisons.rotate(new)
    witnessed_checkpoint(w)
    bob = viewer(w, pair.bob, pins=pins, store=bob.store)
    assert recipient_keys(bob.client, ["alice"]) == {"alice": new.public}
    assert [(p.key_id, p.how) for p in pins.pins()["alice"]] == [
        (pair.alice.keys.public.key_id, "first use"), (new.public.key_id, "rotation")]


def test_without_the_ledger_a_rotation_still_breaks_the_pin(pair: Pair, tmp_path: Path) -> None:
    w = pair.world
    pins = contact_book(tmp_path, "bob")
    pins.check("alice", pair.alice.keys.public)
    new = LiaisonKeys.generate()
    sdk_for(w, pair.alice).liaisons.rotate(new)
    with pytest.raises(KeyChanged):
        pins.check("alice", new.public)


def test_the_old_key_is_refused_for_encryption_after_a_rotation(pair: Pair) -> None:
    w = pair.world
    sdk_for(w, pair.alice).liaisons.rotate(LiaisonKeys.generate())
    witnessed_checkpoint(w)
    bob = viewer(w, pair.bob)
    bob.kt.check("alice", pair.alice.keys.public)  # verifying old signatures: fine
    with pytest.raises(KeyNotProven) as exc:
        bob.kt.check("alice", pair.alice.keys.public, current=True)
    assert _reason(exc) == "stale-key"


def test_a_long_key_history_is_read_page_by_page(pair: Pair,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    w = pair.world
    client = sdk_for(w, pair.alice)
    for _ in range(2):
        client.liaisons.rotate(LiaisonKeys.generate())
    witnessed_checkpoint(w)
    monkeypatch.setattr("client.transparency.DIRECTORY_PAGE", 1)

    def one_entry(page: DirectoryPage) -> DirectoryPage:
        return page.model_copy(update={"entries": page.entries[:1]})

    bob = viewer(w, pair.bob, tamper=one_entry)
    history = bob.kt.history("alice")
    assert [k.action for k in history.keys] == ["liaison.enrol", "key.rotate", "key.rotate"]


def test_waiting_for_a_proving_checkpoint_stops_at_once_on_a_refusal() -> None:
    # Only "no checkpoint yet" (404) is worth waiting for: a refused caller
    # (here 403) is told at once, not after the timeout.
    calls: list[str] = []

    class Refusing(DirectoryAPI):
        def __init__(self) -> None:
            pass

        def read(self, liaison_id: str, *, start: int = 0, since: int | None = None,
                 witnessed: int = 0, key_since: int | None = None) -> DirectoryPage:
            calls.append(liaison_id)
            raise Forbidden("about:blank", "Forbidden", 403, "not yours")

    with pytest.raises(Forbidden):
        wait_until_proven(Refusing(), "bob", timeout=30)
    assert calls == ["bob"]
