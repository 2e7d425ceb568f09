"""Secrets: nothing the service logs holds a token, a private key or a plaintext.

DESIGN.md invariant 1 and STYLE.md §10. Every test here and in
``tests/reliability`` that runs a real server process greps that server's
whole log at the end (``harness.assert_no_secrets``). This test drives one
in-process service through logins, a submission whose plaintext carries a
marker, retrieval, download, receipt, share, and refusals (forged, revoked
and malformed tokens, a bad signature), capturing everything logged through
structlog and the standard library, and greps it for every token, every
private key (base64 and hex) and the plaintext marker.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
from structlog.testing import capture_logs

from crypto import make_receipt, share_content_key
from tests.app.conftest import Person, World
from tests.app.test_packets_support import exchange, opened_by, signed_body, submit
from tests.reliability.harness import TOKEN_SHAPE

MARKER = "LOG-PLAINTEXT-MARKER-7f3a"


def _needles(people: list[Person], world: World) -> list[str]:
    needles = [MARKER]
    for person in people:
        secret = person.keys.secret_bytes()
        needles += [secret.hex(), secret[:32].hex(), secret[32:].hex()]
        needles += [base64.b64encode(part).decode() for part in (secret, secret[:32], secret[32:])]
        if person.token:
            needles += [person.token, person.token.rsplit(".", 1)[-1]]
    needles.append(world.settings.resolved_ledger_key_path().read_text().strip())
    return needles


def test_logs_hold_no_token_key_or_plaintext(world: World,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as captured:
        ex = exchange(world)
        sealed = ex.seal(message=f"{MARKER} the witness lives at 12 Calle Sol".encode(),
                         attachments={"statement.txt": f"{MARKER} exhibit".encode()})
        response = submit(world, ex.alice, sealed)
        assert response.status_code == 201, response.text
        pid = response.json()["id"]
        assert world.client.get(f"/v1/packets/{pid}", headers=ex.bob.auth).status_code == 200
        assert world.client.get(f"/v1/packets/{pid}/streams/0",
                                headers=ex.bob.auth).status_code == 200
        opened = opened_by(sealed, ex.alice, ex.bob)
        receipt = make_receipt(opened, ex.bob.id, ex.bob.keys)
        assert world.client.post(f"/v1/packets/{pid}/receipts", headers=ex.bob.auth,
                                 json=signed_body(receipt.receipt,
                                                  receipt.signature)).status_code == 201
        share = share_content_key(opened, ex.bob.keys, ex.bob.id, ex.carol.id,
                                  ex.carol.keys.public)
        world.client.post(f"/v1/packets/{pid}/shares", headers=ex.bob.auth,
                          json=signed_body(share.share, share.signature))
        forged = ex.bob.token.rsplit(".", 1)[0] + ".AAAA" if ex.bob.token else ""
        for token in (forged, "cdn1.zz.zz", "garbage", ex.carol.token or ""):
            world.client.get("/v1/packets", headers={"Authorization": f"Bearer {token}"})
        world.client.post("/v1/packets", headers=ex.alice.auth, json={"envelope": "AAAA"})
    text = json.dumps(captured, default=str) + caplog.text
    assert "request" in text  # the capture did see the service's log lines
    people = [world.coordinator, ex.alice, ex.bob, ex.carol]
    for needle in _needles(people, world):
        assert needle not in text, "a secret or plaintext marker was logged"
    assert TOKEN_SHAPE.search(text) is None, "a bearer token was logged"
