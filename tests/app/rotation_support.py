"""Helpers for key-rotation tests: a challenge, then the statement and its three proofs.

As a client does it (``client.resources.LiaisonsAPI.rotate``), with hooks to
sign with the wrong keys.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from crypto import KEY_ROTATION_TYPE, LiaisonKeys, RotationStatement, box_proof, sign
from tests.app.conftest import Person, World, b64


def rotation_challenge(world: World, person: Person) -> dict[str, Any]:
    """Ask for a rotation challenge as ``person``."""
    response = world.client.post("/v1/liaisons/me/keys/challenge", headers=person.auth)
    assert response.status_code == 201, response.text
    return dict(response.json())


def rotation_body(challenge: dict[str, Any], person: Person, new: LiaisonKeys, *,
                  signer: LiaisonKeys | None = None, new_signer: LiaisonKeys | None = None,
                  box_holder: LiaisonKeys | None = None) -> dict[str, str]:
    """The request body of a rotation of ``person`` to ``new`` for ``challenge``.

    ``signer`` signs as the current key (default: the person's), ``new_signer``
    proves the new signing key (default: ``new``), ``box_holder`` the new
    encryption key (default: ``new``).
    """
    server_box = base64.b64decode(challenge["server_box"])
    statement = RotationStatement(
        origin=challenge["origin"], liaison=challenge["liaison_id"],
        challenge=challenge["challenge_id"], nonce=base64.b64decode(challenge["nonce"]),
        server_box=server_box, old_key_id=person.keys.public.key_id, new_keys=new.public,
    ).to_bytes()
    return {
        "signing_public": b64(new.public.signing),
        "encryption_public": b64(new.public.encryption),
        "challenge_id": challenge["challenge_id"],
        "statement": b64(statement),
        "signature": b64(sign((signer or person.keys).signing_key, KEY_ROTATION_TYPE,
                              statement)),
        "new_key_signature": b64(sign((new_signer or new).signing_key, KEY_ROTATION_TYPE,
                                      statement)),
        "box_proof": b64(box_proof((box_holder or new).encryption_key, server_box, statement)),
    }


def post_rotation(world: World, person: Person, body: dict[str, str]) -> httpx.Response:
    """``POST /v1/liaisons/me/keys`` as ``person``."""
    response: httpx.Response = world.client.post("/v1/liaisons/me/keys", headers=person.auth,
                                                 json=body)
    return response


def rotate(world: World, person: Person, new: LiaisonKeys) -> httpx.Response:
    """An honest rotation of ``person`` to ``new`` (challenge, statement, proofs)."""
    body = rotation_body(rotation_challenge(world, person), person, new)
    return post_rotation(world, person, body)
