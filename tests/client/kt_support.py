"""Helpers for key-transparency tests: a witness, checkpoints, and a dishonest operator.

The dishonest operator acts on the server's database directly, as an
operator with database access could: it adds key rows without any ledger
entry, or appends ledger entries that no liaison signed.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from app.ledger.recording import draft, now, record
from app.ledger.unit_of_work import transaction
from app.liaisons.rotation import entry_details
from app.models.identity import LiaisonKey
from app.witnesses import repository as witnesses
from app.witnesses.service import keep_cosignature
from client.contacts import ContactBook
from client.models import DirectoryPage
from client.profile import Profile
from client.sdk import Client
from client.transparency import (
    CheckpointStore,
    DirectoryAPI,
    KeyTransparency,
    MemoryCheckpoints,
)
from client.trust import TrustRoots
from crypto import KEY_ROTATION_TYPE, LiaisonKeys, RotationStatement, SignedRotation, sign
from ledger import Actor, CosignatureSigner, parse_checkpoint_body, parse_note
from tests.app.conftest import Person, World, sign_checkpoint_now
from tests.client.conftest import sdk_for, sessions, verifier_key

WITNESS = CosignatureSigner("witness.example/kt", SigningKey(bytes(range(1, 33))))


def register_witness(w: World) -> None:
    """Register :data:`WITNESS` with the server (its URL is never reached in tests)."""
    response = w.client.post("/v1/witnesses", headers=w.coordinator.auth, json={
        "name": "kt", "url": "http://127.0.0.1:9", "verifier_key": WITNESS.verifier_key()})
    assert response.status_code == 201, response.text


def cosign_latest(w: World) -> None:
    """What a witness round does: cosign the latest checkpoint; the server keeps the line."""
    note = w.client.get("/v1/ledger/checkpoint").text
    checkpoint = parse_checkpoint_body(parse_note(note).text_body)
    stamp = int(time.time())
    with transaction(sessions(w)) as session:
        witness = witnesses.active_named(session, "kt")
        assert witness is not None
        keep_cosignature(session, witness.id, checkpoint.size,
                         WITNESS.cosign(checkpoint, stamp), timestamp=stamp)


def witnessed_checkpoint(w: World) -> None:
    """Sign a checkpoint of the whole ledger (if it grew) and have the witness cosign it."""
    sign_checkpoint_now(w)
    cosign_latest(w)


def roots(w: World, quorum: int = 1) -> TrustRoots:
    """The trust roots a liaison sets out of band: the ledger key and the witness."""
    return TrustRoots.parse(verifier_key(w), [WITNESS.verifier_key()], quorum)


class ServedDirectory(DirectoryAPI):
    """The directory as served, passed through ``tamper`` (a dishonest server's answer)."""

    def __init__(self, client: Client, tamper: Callable[[DirectoryPage], DirectoryPage]) -> None:
        """Serve ``client``'s directory answers changed by ``tamper``."""
        super().__init__(client.session)
        self._tamper = tamper

    def read(self, liaison_id: str, *, start: int = 0, since: int | None = None,
             witnessed: int = 0, key_since: int | None = None) -> DirectoryPage:
        """The served page, tampered."""
        return self._tamper(super().read(liaison_id, start=start, since=since,
                                         witnessed=witnessed, key_since=key_since))


@dataclass
class Viewer:
    """A liaison's client with key transparency on: its SDK, its checks, its warnings."""

    client: Client
    kt: KeyTransparency
    kt_roots: TrustRoots
    store: CheckpointStore
    warnings: list[str]


def viewer(w: World, person: Person, *, quorum: int = 1, store: CheckpointStore | None = None,
           pins: ContactBook | None = None,
           tamper: Callable[[DirectoryPage], DirectoryPage] | None = None) -> Viewer:
    """``person``'s SDK client checking keys against the ledger (and ``pins``, if given)."""
    client = sdk_for(w, person)
    api = DirectoryAPI(client.session) if tamper is None else ServedDirectory(client, tamper)
    warnings: list[str] = []
    kept = store or MemoryCheckpoints()
    trusted = roots(w, quorum)
    kt = KeyTransparency(api, trusted, kept, pins=pins, warn=warnings.append)
    client.liaisons.pins = kt
    return Viewer(client, kt, trusted, kept, warnings)


def contact_book(home: Path, me: str) -> ContactBook:
    """An empty contact book in a fresh profile under ``home``."""
    return ContactBook(Profile(me, home), me=me)


def rogue_key_row(w: World, liaison_id: str, rogue: LiaisonKeys, *, retire: bool) -> None:
    """Insert a key row for ``liaison_id`` with no ledger entry (retiring theirs if asked)."""
    with transaction(sessions(w)) as session:
        if retire:
            for key in session.query(LiaisonKey).filter_by(liaison_id=liaison_id):
                key.retired_at = key.created_at
        session.add(LiaisonKey(key_id=rogue.public.key_id, liaison_id=liaison_id,
                               signing_public=rogue.public.signing,
                               encryption_public=rogue.public.encryption,
                               created_at=now()))


def rogue_rotation(w: World, victim: Person, rogue: LiaisonKeys, *, retire: bool = True) -> None:
    """Append a granted ``key.rotate`` of ``victim`` to ``rogue`` that the victim never signed.

    With ``retire=False`` the victim's key stays usable (they notice nothing
    when they log in), while the directory serves the rogue key as current.
    The statement is well formed and names the victim's key in force, but it
    is signed by the rogue key (the operator does not hold the victim's).
    """
    statement = RotationStatement(
        origin=w.settings.ledger_origin, liaison=victim.id, challenge=os.urandom(16).hex(),
        nonce=os.urandom(32), server_box=bytes(SigningKey.generate().verify_key),
        old_key_id=victim.keys.public.key_id, new_keys=rogue.public).to_bytes()
    signed = SignedRotation(statement, sign(rogue.signing_key, KEY_ROTATION_TYPE, statement),
                            sign(rogue.signing_key, KEY_ROTATION_TYPE, statement), b"")
    with transaction(sessions(w)) as session:
        record(session, draft(Actor(liaison=victim.id, key=victim.keys.public.key_id),
                              "key.rotate", {"type": "liaison", "id": victim.id},
                              details=entry_details(signed, victim.keys.public.key_id,
                                                    rogue.public),
                              signature=base64.b64encode(signed.signature).decode()))
    rogue_key_row(w, victim.id, rogue, retire=retire)
