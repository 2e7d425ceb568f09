"""A dishonest server changes its directory answer in any way: the client refuses, naming why.

The answer starts as the honest one (a real server, a real witness); each
example tampers with it once, as a server could: a flipped bit in an entry,
a proof or a consistency proof; a proof too short; an index moved; the
witness's cosignature stripped; the signed checkpoint changed; an entry
that is in no tree; another liaison's entries; no entry at all; the key-log
leaf's proof or index changed or withheld; the key log's consistency proof
changed or withheld; and, with the ledger key in hand (an operator who signs
what it likes, cosigned by a witness that does not recompute the key log),
a checkpoint without the key-log line or with a rewritten key log. Whatever
it does, the key is refused with a :class:`KeyNotProven` whose reason says
what failed, and the honest answer is accepted.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ledger.key import load_note_signer
from client.keychain import KeyNotProven
from client.models import DirectoryItem, DirectoryPage
from client.transparency import DirectoryAPI, KeyTransparency, MemoryCheckpoints, SeenCheckpoint
from client.trust import TrustRoots
from crypto import LiaisonKeys
from ledger import (
    Checkpoint,
    NoteSigner,
    add_signature_lines,
    extension_line,
    key_log_head,
    open_checkpoint,
    sign_checkpoint,
)
from tests.app.conftest import World
from tests.client.conftest import sdk_for
from tests.client.kt_support import WITNESS, register_witness, roots, witnessed_checkpoint


class StaticDirectory(DirectoryAPI):
    """Serves one fixed answer (the test's tampered copy); no request is made."""

    def __init__(self, page: DirectoryPage) -> None:
        """Serve ``page``."""
        self._page = page

    def read(self, liaison_id: str, *, start: int = 0, since: int | None = None,
             witnessed: int = 0, key_since: int | None = None) -> DirectoryPage:
        """The fixed answer."""
        return self._page


@dataclass(frozen=True)
class Honest:
    """Honest answers for alice's keys, the checkpoint seen before them, and the roots."""

    alice: DirectoryPage
    bob: DirectoryPage
    seen: SeenCheckpoint
    roots: TrustRoots
    key: LiaisonKeys
    signer: NoteSigner


@pytest.fixture
def honest(world: World) -> Honest:
    world.state("MX")
    alice, bob = world.liaison("alice", "MX"), world.liaison("bob", "MX")
    register_witness(world)
    witnessed_checkpoint(world)
    api = DirectoryAPI(sdk_for(world, bob).session)
    first = api.read("alice")
    trust = roots(world)
    kt = KeyTransparency(StaticDirectory(first), trust, store := MemoryCheckpoints())
    kt.check("alice", alice.keys.public)
    assert store.seen is not None
    world.liaison("carol", "MX")
    witnessed_checkpoint(world)
    assert store.seen.key_log is not None
    signer = load_note_signer(world.settings.resolved_ledger_key_path(),
                              world.settings.ledger_origin)
    return Honest(api.read("alice", since=store.seen.size, key_since=store.seen.key_log.size),
                  api.read("bob"), store.seen, trust, alice.keys, signer)


def _flip(data: bytes, at: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _item(page: DirectoryPage, **change: object) -> DirectoryPage:
    return page.model_copy(update={"entries": [page.entries[0].model_copy(update=change),
                                               *page.entries[1:]]})


def _proof(page: DirectoryPage, at: int) -> list[str]:
    proof = [bytes.fromhex(h) for h in page.entries[0].proof]
    i = at % len(proof)
    proof[i] = _flip(proof[i], at // 7)
    return [h.hex() for h in proof]


def _strip_cosignatures(note: str) -> str:
    body, _, signatures = note.rpartition("\n\n")
    return body + "\n\n" + signatures.split("\n", 1)[0] + "\n"


def _resign(note: str, at: int) -> str:
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1 + at % 5)  # another size under the same signature
    return "\n".join(lines)


def _key_proof(page: DirectoryPage, at: int) -> list[str]:
    proof = [bytes.fromhex(h) for h in page.entries[0].key_log_proof or []]
    i = at % len(proof)
    proof[i] = _flip(proof[i], at // 7)
    return [h.hex() for h in proof]


def _operator_signs(h: Honest, extensions: tuple[str, ...]) -> DirectoryPage:
    # The operator signs the honest tree with other extension lines, and the
    # witness cosigns it (it checks the tree's consistency, not the key log).
    honest = open_checkpoint(h.alice.checkpoint, h.roots.ledger)
    forged = Checkpoint(honest.origin, honest.size, honest.root, extensions)
    note = add_signature_lines(sign_checkpoint(forged, h.signer),
                               [WITNESS.cosign(forged, 1_800_000_000)])
    return h.alice.model_copy(update={"checkpoint": note})


def _rewritten_key_log(h: Honest, n: int) -> DirectoryPage:
    honest = key_log_head(open_checkpoint(h.alice.checkpoint, h.roots.ledger))
    assert honest is not None
    root = _flip(honest.root, n)
    return _operator_signs(h, (extension_line(honest.size + n % 2, root),))


Tamper = Callable[[Honest, int], DirectoryPage]
ATTACKS: dict[str, tuple[Tamper, set[str]]] = {
    "entry bit flipped": (lambda h, n: _item(h.alice, entry=_flip(h.alice.entries[0].entry, n)),
                          {"bad-inclusion"}),
    "proof bit flipped": (lambda h, n: _item(h.alice, proof=_proof(h.alice, n)),
                          {"bad-inclusion"}),
    "proof too short": (lambda h, n: _item(h.alice, proof=h.alice.entries[0].proof[1:]),
                        {"bad-inclusion"}),
    "index moved": (lambda h, n: _item(h.alice, index=h.alice.entries[0].index + 1 + n % 9),
                    {"bad-inclusion"}),
    "cosignature stripped": (lambda h, n: h.alice.model_copy(
        update={"checkpoint": _strip_cosignatures(h.alice.checkpoint)}), {"quorum"}),
    "checkpoint changed": (lambda h, n: h.alice.model_copy(
        update={"checkpoint": _resign(h.alice.checkpoint, n)}), {"no-checkpoint-signature"}),
    "entry in no tree": (lambda h, n: h.alice.model_copy(update={"entries": [
        DirectoryItem.model_validate({
            "index": h.alice.tree_size - 1 - n % 3, "proof": h.alice.entries[0].proof,
            "entry": base64.b64encode(h.bob.entries[0].entry).decode(), "key": None})]}),
        {"bad-inclusion"}),
    "another liaison's entries": (lambda h, n: h.bob.model_copy(
        update={"liaison_id": "alice", "consistency": h.alice.consistency,
                "since": h.alice.since, "key_consistency": h.alice.key_consistency}),
        {"not-a-key-entry", "fork", "rollback", "not-in-key-log"}),
    "key-log proof bit flipped": (lambda h, n: _item(h.alice, key_log_proof=_key_proof(
        h.alice, n)), {"not-in-key-log"}),
    "key-log index moved": (lambda h, n: _item(h.alice, key_log_index=(
        h.alice.entries[0].key_log_index or 0) + 1 + n % 5), {"not-in-key-log"}),
    "key-log leaf withheld": (lambda h, n: _item(h.alice, key_log_index=None,
                                                 key_log_proof=None), {"not-in-key-log"}),
    "key-log consistency withheld": (lambda h, n: h.alice.model_copy(
        update={"key_consistency": None}), {"key-log-fork"}),
    "key-log consistency bit flipped": (lambda h, n: h.alice.model_copy(update={
        "key_consistency": [_flip(bytes.fromhex(x), n).hex()
                            for x in h.alice.key_consistency or []]}), {"key-log-fork"}),
    "checkpoint without the key log": (lambda h, n: _operator_signs(h, ()), {"no-key-log"}),
    "key-log line malformed": (lambda h, n: _operator_signs(
        h, (f"cadena-key-log {n} notbase64",)), {"no-key-log"}),
    "key log rewritten": (_rewritten_key_log, {"key-log-fork", "not-in-key-log"}),
    "no entry at all": (lambda h, n: h.alice.model_copy(update={"entries": []}),
                        {"not-in-ledger"}),
    "consistency bit flipped": (lambda h, n: h.alice.model_copy(update={"consistency": [
        _flip(bytes.fromhex(x), n).hex() if i == n % len(h.alice.consistency or [0]) else x
        for i, x in enumerate(h.alice.consistency or [])]}), {"fork"}),
    "consistency withheld": (lambda h, n: h.alice.model_copy(update={"consistency": None}),
                             {"fork"}),
}


def _check(h: Honest, page: DirectoryPage, keys: LiaisonKeys | None = None) -> None:
    kt = KeyTransparency(StaticDirectory(page), h.roots, MemoryCheckpoints(h.seen))
    kt.check("alice", (keys or h.key).public, current=True)


def test_the_honest_answer_is_accepted(honest: Honest) -> None:
    _check(honest, honest.alice)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # read-only fixture
@given(attack=st.sampled_from(sorted(ATTACKS)), n=st.integers(0, 10_000))
def test_every_tampered_answer_is_refused_and_named(honest: Honest, attack: str, n: int) -> None:
    tamper, reasons = ATTACKS[attack]
    with pytest.raises(KeyNotProven) as exc:
        _check(honest, tamper(honest, n))
    assert exc.value.reason in reasons, (attack, str(exc.value))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.binary(min_size=32, max_size=32))
def test_a_key_the_answer_does_not_carry_is_refused(honest: Honest, seed: bytes) -> None:
    with pytest.raises(KeyNotProven) as exc:
        _check(honest, honest.alice, LiaisonKeys.from_secret_bytes(seed * 2))
    assert exc.value.reason == "not-in-ledger"


def test_a_rewritten_key_log_is_refused_naming_both_checkpoints(honest: Honest) -> None:
    page = _rewritten_key_log(honest, 0)
    with pytest.raises(KeyNotProven) as exc:
        _check(honest, page)
    size = open_checkpoint(page.checkpoint, honest.roots.ledger).size
    assert exc.value.reason == "key-log-fork"
    assert f"checkpoint {size}" in str(exc.value)
    assert f"checkpoint {honest.seen.size}" in str(exc.value)


def test_the_answer_carries_the_enrolment_with_its_public_keys(honest: Honest) -> None:
    [item] = honest.alice.entries
    assert b'"action":"liaison.enrol"' in item.entry
    assert base64.b64encode(honest.key.public.signing) in item.entry
