"""Text the service stores and shows to people holds no control or bidi-override character.

Names, notes, reasons, crime types, case references and legal bases are read
by people, in four languages, in the desk, in certificates and in the
ledger. A NUL, another control character (Unicode category Cc) or a
bidirectional formatting character (U+061C, U+200E, U+200F, U+202A-U+202E,
U+2066-U+2069: they reorder what a reader sees, e.g. a name shown backwards)
anywhere in them is refused with 422 and changes nothing.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from app.bootstrap import Coordinator, bootstrap
from app.certificates.schemas import CertificateCreate, PermissionCreate
from app.channels.schemas import ChannelCreate
from app.clearances.schemas import ClearanceRevoke
from app.errors import CadenaError
from app.ledger.engine import make_engine
from app.ledger.unit_of_work import make_session_factory, transaction
from app.liaisons.schemas import KeyRevoke, LiaisonCreate
from app.models.identity import Liaison
from app.packets.schemas import WithdrawCreate
from app.states.schemas import StateCreate, StateUpdate
from app.text import check_display_text
from app.witnesses.schemas import WitnessCreate
from crypto import LiaisonKeys
from tests.app.conftest import World, b64
from tests.app.test_packets_support import (
    assert_problem,
    exchange,
    ledger_size,
    packet_id,
    submit,
    upload,
)
from tests.security.test_hostile_input import _packet_stored
from tests.witness.helpers import witness_signer

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FORBIDDEN = [chr(c) for c in range(sys.maxunicode + 1)
             if unicodedata.category(chr(c)) == "Cc"] + list(BIDI)
KEYS = LiaisonKeys.from_secret_bytes(bytes(range(64))).public
WITNESS_KEY = witness_signer().verifier_key()

# Each request body the API takes with human-readable text, valid as given,
# and the text fields in it.
BODIES: list[tuple[type[BaseModel], dict[str, Any], tuple[str, ...]]] = [
    (StateCreate, {"code": "ZZ", "name": "Zedland", "joining_note": "Note 1/2026"},
     ("name", "joining_note")),
    (StateUpdate, {"status": "suspended", "reason": "review"}, ("reason",)),
    (LiaisonCreate, {"id": "ana", "state_code": "CO", "name": "Ana", "role": "prosecutor",
                     "signing_public": b64(KEYS.signing),
                     "encryption_public": b64(KEYS.encryption)}, ("name",)),
    (KeyRevoke, {"reason": "lost"}, ("reason",)),
    (ChannelCreate, {"id": "drugs", "name": "Drugs", "kind": "specialized",
                     "crime_type": "drug trafficking", "min_clearance": "SECRET"},
     ("name", "crime_type")),
    (ClearanceRevoke, {"reason": "left the service"}, ("reason",)),
    (WithdrawCreate, {"reason": "sent in error"}, ("reason",)),
    (CertificateCreate, {"issued_to": "Juzgado 3", "purpose": "trial"}, ("issued_to", "purpose")),
    (PermissionCreate, {"court": "Juzgado 3", "purpose": "trial"}, ("court", "purpose")),
    (WitnessCreate, {"name": "w", "url": "https://witness.example", "verifier_key": WITNESS_KEY},
     ("verifier_key",)),
]
FIELDS = [(model, body, field) for model, body, fields in BODIES for field in fields]
SAFE_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=BIDI),
                    min_size=1, max_size=80)


@pytest.mark.parametrize(("model", "body"), [(m, b) for m, b, _ in BODIES],
                         ids=[m.__name__ for m, _, _ in BODIES])
def test_the_valid_bodies_are_valid(model: type[BaseModel], body: dict[str, Any]) -> None:
    model.model_validate(body)


@given(case=st.sampled_from(FIELDS), bad=st.sampled_from(FORBIDDEN), at=st.integers(0, 200))
def test_any_control_or_bidi_character_anywhere_in_a_text_field_is_refused(
        case: tuple[type[BaseModel], dict[str, Any], str], bad: str, at: int) -> None:
    model, body, field = case
    value = body[field]
    at %= len(value) + 1
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**body, field: value[:at] + bad + value[at:]})
    assert any(error["loc"][0] == field for error in refused.value.errors())


@given(text=SAFE_TEXT)
def test_text_without_those_characters_is_kept_as_given(text: str) -> None:
    assert check_display_text(text) == text


@pytest.mark.parametrize("name", ["São Tomé e Príncipe", "Côte d’Ivoire", "المغرب",
                                  "Ἑλλάς", "Trinidad & Tobago", "A\u200dB"])
def test_names_in_any_script_are_accepted(name: str) -> None:
    assert StateCreate(code="ZZ", name=name, joining_note="n").name == name


# -- through the API: 422, nothing stored, nothing in the ledger -------------------------

REQUESTS = [
    ("POST", "/v1/states", {"code": "ZZ", "name": "Zed\u202eland", "joining_note": "n"}, "name"),
    ("POST", "/v1/states", {"code": "ZZ", "name": "Zedland", "joining_note": "n\x00"},
     "joining_note"),
    ("PATCH", "/v1/states/CO", {"status": "active", "reason": "\x85"}, "reason"),
    ("POST", "/v1/liaisons", {**BODIES[2][1], "name": "\u2066Ana"}, "name"),
    ("POST", "/v1/channels", {**BODIES[4][1], "name": "Dr\u200fugs"}, "name"),
    ("POST", "/v1/channels", {**BODIES[4][1], "crime_type": "drugs\u061c"}, "crime_type"),
    ("POST", "/v1/witnesses", {**BODIES[9][1], "verifier_key": "\u202a" + WITNESS_KEY},
     "verifier_key"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), REQUESTS,
                         ids=[f"{m} {p} {f}" for m, p, _, f in REQUESTS])
def test_a_refused_text_is_422_and_changes_nothing(world: World, method: str, path: str,
                                                   body: dict[str, Any], field: str) -> None:
    before = ledger_size(world)
    response = world.client.request(method, path, json=body, headers=world.coordinator.auth)
    problem = assert_problem(response, 422, "invalid-request")
    assert any(field in error["loc"] for error in problem["errors"])
    assert ledger_size(world) == before


@pytest.mark.parametrize(("field", "value"), [("case_reference", "FGR/\u202e321"),
                                              ("legal_basis", "MLA treaty\x85art. 7")])
def test_a_packet_with_such_a_text_in_its_header_is_refused(world: World, field: str,
                                                            value: str) -> None:
    ex = exchange(world)
    sealed = ex.seal(None, **{field: value})
    for stream in sealed.streams:
        assert upload(world, ex.alice, stream).status_code == 201
    before = ledger_size(world)
    response = submit(world, ex.alice, sealed, upload_streams=False)
    problem = assert_problem(response, 422, "invalid-envelope")
    assert field in problem["detail"]
    assert ledger_size(world) == before
    assert not _packet_stored(world, packet_id(sealed))


def test_a_listing_filter_with_such_a_text_is_422(world: World) -> None:
    alice = world.liaison("alice", "CO")
    response = world.client.get("/v1/packets", params={"case_reference": "FGR\u202e"},
                                headers=alice.auth)
    assert_problem(response, 422, "invalid-request")


@pytest.mark.parametrize("field", ["name", "state_name", "joining_note"])
def test_bootstrap_refuses_such_a_text(db_url: str, tmp_path: Path, field: str) -> None:
    texts = {"name": "First", "state_name": "Colombia", "joining_note": "Chapultepec/2012",
             field: "Colo\u202ebmia"}
    first = Coordinator(liaison_id="coord", name=texts["name"], state_code="CO",
                        state_name=texts["state_name"], joining_note=texts["joining_note"],
                        keys=KEYS)
    engine = make_engine(db_url)
    try:
        with pytest.raises(CadenaError, match="U\\+202E"), \
                transaction(make_session_factory(engine)) as session:
            bootstrap(session, tmp_path / "ledger.key", "test/ledger", first)
        with engine.connect() as conn:
            assert conn.execute(select(Liaison.id)).first() is None
    finally:
        engine.dispose()
    assert not (tmp_path / "ledger.key").exists()
