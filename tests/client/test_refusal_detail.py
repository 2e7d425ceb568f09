"""A refusal's auditor-only detail: served to auditors, checked against the entry's digest."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.ledger.engine import make_engine
from app.models.refusal import RefusalDetail
from client.audit import audit_ledger, fetch_refusal_detail
from client.errors import AuditFailure, AuditFault
from crypto import uuid7
from ledger import NoteVerifier
from tests.app.conftest import Person, World
from tests.app.test_packets_support import exchange, execute, last_entry, submit
from tests.client.conftest import sdk_for, verifier_key
from tests.client.conftest import sign_checkpoint as sign_now


def _refused_submission(world: World) -> tuple[Person, int]:
    """alice addresses dave, who is not in the channel: a refusal with a private detail."""
    ex = exchange(world)
    dave = world.liaison("dave", "MX")
    response = submit(world, ex.alice, ex.seal([dave]))
    assert response.json()["reason"] == "recipient-not-eligible"
    assert "member" not in response.text  # the caller learns the rule, not dave's facts
    auditor = world.liaison("audit", "CO", role="auditor")
    return auditor, response.json()["ledger_index"]


def _verified_raw(world: World, auditor: Person, index: int) -> bytes:
    sign_now(world)
    client = sdk_for(world, auditor)
    audit_ledger(client.ledger, NoteVerifier.from_string(verifier_key(world)), None)
    return next(e.raw for e in world.entries() if e.index == index)


def test_auditor_fetches_and_checks_a_refusal_detail(world: World) -> None:
    auditor, index = _refused_submission(world)
    raw = _verified_raw(world, auditor, index)
    detail = fetch_refusal_detail(sdk_for(world, auditor).ledger, raw)
    assert (detail.index, detail.reason) == (index, "recipient-not-eligible")
    assert detail.detail == "recipient dave: not a member of channel ch"
    entry = last_entry(world)
    assert (entry.action, entry.outcome) == ("ledger.refusal_detail", "granted")
    assert entry.subject == {"type": "ledger", "id": f"refusal:{index}"}


@pytest.mark.parametrize("column", ["detail", "salt"])
def test_a_tampered_record_fails_the_check(world: World, column: str) -> None:
    auditor, index = _refused_submission(world)
    raw = _verified_raw(world, auditor, index)
    changed = ({"detail": "recipient dave: clearance RESTRICTED is below SECRET"}
               if column == "detail" else {"salt": bytes(32)})
    execute(world, update(RefusalDetail).where(RefusalDetail.ledger_index == index)
            .values(**changed))
    with pytest.raises(AuditFailure) as caught:
        fetch_refusal_detail(sdk_for(world, auditor).ledger, raw)
    assert (caught.value.fault, caught.value.index) == (AuditFault.REFUSAL_DETAIL_MISMATCH,
                                                        index)


def test_only_auditors_read_refusal_details_and_the_refusal_is_logged(world: World) -> None:
    auditor, index = _refused_submission(world)
    alice = world.people["alice"]
    refused = world.client.get(f"/v1/ledger/refusals/{index}", headers=alice.auth)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "wrong-role"
    assert "dave" not in refused.text
    entry = last_entry(world)
    assert (entry.action, entry.outcome, entry.reason) == (
        "ledger.refusal_detail", "denied", "wrong-role")
    assert refused.json()["ledger_index"] == entry.index
    granted = world.client.get(f"/v1/ledger/refusals/{index - 1}", headers=auditor.auth)
    assert granted.status_code == 404  # a granted entry has no refusal detail


def test_every_digest_has_its_record_and_every_record_its_digest(world: World) -> None:
    _refused_submission(world)
    unknown = world.client.get(f"/v1/packets/{uuid7()}", headers=world.people["carol"].auth)
    assert unknown.json()["reason"] == "not-found"  # a code alone: no record, no digest
    with_digest = {e.index for e in world.entries() if "detail_digest" in e.details}
    engine = make_engine(world.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(select(RefusalDetail.ledger_index)).scalars())
    finally:
        engine.dispose()
    assert with_digest == stored != set()
