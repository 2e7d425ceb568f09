"""The custody chain's H2 rule: an approval licenses only the holder whose request it answers."""

from __future__ import annotations

import pytest

from app.ledger.recording import draft
from client.certificate.chain import _Chain, _step
from client.certificate.context import Failed
from crypto import LiaisonKeys, verify_envelope
from ledger import Actor, Entry, encode_entry, parse_entry
from tests.app.conftest import Person
from tests.app.test_packets_support import seal

_PREV = bytes([1]) * 32  # any non-genesis link: the chain rules read no prev


def _people() -> dict[str, Person]:
    return {name: Person(name, LiaisonKeys.generate()) for name in ("alice", "bob", "erin")}


def _chain() -> _Chain:
    people = _people()
    sealed = seal(people["alice"], [people["bob"], people["erin"]], "ch", handling="H2")
    header = verify_envelope(sealed.envelope, people["alice"].keys.public)
    return _Chain(header, {r.id: r.key_id for r in header.recipients})


def _entry(index: int, who: str, action: str, **details: str) -> Entry:
    made = draft(Actor(liaison=who, key=f"k-{who}"), action, {"type": "packet", "id": "p"},
                 details=details)
    return parse_entry(encode_entry(made, index, _PREV))


def _approve(chain: _Chain, requested_by: str) -> None:
    _step(chain, _entry(1, "alice", "packet.share_approve", request="r1", recipient="carol",
                        requested_by=requested_by))


def _share(chain: _Chain, sharer: str, index: int = 2) -> None:
    _step(chain, _entry(index, sharer, "packet.share", recipient="carol",
                        recipient_key_id="k-carol", handling="H2", approval="r1"))


def test_h2_share_by_the_holder_who_asked_holds() -> None:
    chain = _chain()
    _approve(chain, "bob")
    _share(chain, "bob")
    assert chain.holders["carol"] == "k-carol"


def test_h2_share_by_another_holder_with_that_approval_fails() -> None:
    chain = _chain()
    _approve(chain, "bob")
    with pytest.raises(Failed, match="erin to carol without the originator's approval"):
        _share(chain, "erin")


def test_h2_approval_is_spent_by_one_share() -> None:
    chain = _chain()
    _approve(chain, "bob")
    _share(chain, "bob")
    chain.holders.pop("carol")  # as if carol had never received it: still no second licence
    with pytest.raises(Failed, match="without the originator's approval"):
        _share(chain, "bob", index=3)
