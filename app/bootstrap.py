"""The one-time bootstrap: the ledger key and the first coordinator."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clearances import service as clearances
from app.errors import CadenaError
from app.ledger import create_signing_key, draft, now, record
from app.liaisons import service as liaisons
from app.models.identity import Level, Liaison, Role, State, StateStatus
from app.text import check_display_text
from crypto import LiaisonPublicKeys
from ledger import NoteSigner


class AlreadyBootstrapped(CadenaError):
    """The server was bootstrapped before; bootstrap refuses to run twice."""

    status, code, title = 409, "already-bootstrapped", "Already bootstrapped"


class InvalidBootstrap(CadenaError):
    """A name or note given to the bootstrap holds a character no stored text may hold."""

    status, code, title = 422, "invalid-request", "Invalid request"


@dataclass(frozen=True)
class Coordinator:
    """Who the first coordinator is."""

    liaison_id: str
    name: str
    state_code: str
    state_name: str
    joining_note: str
    keys: LiaisonPublicKeys
    clearance_days: int = 365


def _check_texts(first: Coordinator) -> None:
    # The command line bypasses the API's schemas; the same rule for text applies.
    for field in ("name", "state_name", "joining_note"):
        try:
            check_display_text(getattr(first, field))
        except ValueError as exc:
            raise InvalidBootstrap(f"{field}: {exc}") from None


def origin_path(key_path: Path) -> Path:
    """Where the ledger's origin is recorded: beside its key (``Settings`` reads it there)."""
    return key_path.with_name(key_path.name + ".origin")


def _record_origin(path: Path, origin: str) -> None:
    # O_EXCL: like the key, the recorded origin is never overwritten.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(origin + "\n")


def bootstrap(session: Session, key_path: Path, origin: str, first: Coordinator) -> str:
    """Create the ledger key (0600) and the first coordinator; return the verifier key.

    The origin is recorded beside the key (0600), so that every later command
    signs and verifies with the origin chosen here.
    """
    if session.scalars(select(Liaison.id).limit(1)).first() is not None:
        raise AlreadyBootstrapped("liaisons exist already; bootstrap runs once")
    for path in (key_path, origin_path(key_path)):
        if path.exists():
            raise AlreadyBootstrapped(f"{path} exists already; bootstrap runs once")
    liaisons.check_keys(first.keys)
    _check_texts(first)
    moment = now()
    record(session, draft(None, "system.bootstrap", {"type": "system", "id": origin},
                          details={"coordinator": first.liaison_id}))
    session.add(State(code=first.state_code, name=first.state_name, status=StateStatus.ACTIVE,
                      joining_note=first.joining_note, created_at=moment, updated_at=moment))
    session.flush()
    liaisons.enrol(session, None, first.liaison_id, first.state_code, name=first.name,
                   role=Role.COORDINATOR, keys=first.keys)
    clearances.grant(session, None, first.liaison_id, Level.SECRET, valid_from=moment,
                     valid_until=moment + timedelta(days=first.clearance_days))
    session.flush()
    signer = NoteSigner(origin, create_signing_key(key_path))
    _record_origin(origin_path(key_path), origin)
    return signer.verifier_key()
