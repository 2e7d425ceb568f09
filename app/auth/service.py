"""The rules of logging in and of checking a bearer token.

A liaison asks for a challenge, signs its exact bytes with their registered
Ed25519 key under the ``auth-challenge`` payload type (DSSE PAE, so the
signature can be nothing else), and exchanges the signature for a token.
Tokens are ``cdn1.<id>.<secret>``; only SHA-256(secret) is stored and the
comparison is constant-time. Every refusal is logged in the ledger.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.identity import repository as repo
from app.ledger import NoClearance, Reason, Unauthenticated, deny, draft, now, record
from app.models.auth import AuthChallenge, AuthToken
from app.models.identity import Role, StateStatus
from crypto import AUTH_CHALLENGE_TYPE, CryptoError, b64encode, canonical_json, verify_signature
from ledger import Actor, AppendedEntry, EntryDraft

TOKEN_PREFIX = "cdn1"  # noqa: S105 - a format tag, not a secret


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    liaison_id: str
    key_id: str
    role: Role
    state_code: str
    expires_at: datetime | None = None  # the token's
    clearance_level: int | None = None
    """The level of the clearance in force when the token was checked (in the request's
    transaction, by the token's own query: features need not read it again)."""

    @property
    def actor(self) -> Actor:
        """The ledger actor for this caller."""
        return Actor(liaison=self.liaison_id, key=self.key_id)


@dataclass(frozen=True)
class IssuedChallenge:
    """A challenge as handed to the client: its id, the bytes to sign, expiry."""

    challenge_id: str
    payload: bytes
    expires_at: datetime
    refusal: EntryDraft | None = None  # set for a decoy (unknown liaison)


@dataclass(frozen=True)
class IssuedToken:
    """A bearer token as handed to the client (the only time the secret exists)."""

    token: str
    expires_at: datetime
    clearance_expires_at: datetime | None
    entry: AppendedEntry
    liaison_id: str


def challenge_payload(challenge: AuthChallenge, origin: str) -> bytes:
    """The canonical bytes a liaison signs to log in."""
    return canonical_json({
        "v": 1,
        "kind": "cadena-login",
        "origin": origin,
        "challenge": challenge.id,
        "liaison": challenge.liaison_id,
        "nonce": b64encode(challenge.nonce),
        "expires": challenge.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


def issue_challenge(session: Session, liaison_id: str, origin: str, ttl: int) -> IssuedChallenge:
    """Create a one-time challenge for ``liaison_id``.

    For an unknown liaison the answer looks the same (a decoy challenge,
    stored nowhere, that no signature can redeem) so that challenges do not
    tell known ids from unknown ones; the refusal it really is comes back
    in ``refusal`` for the caller to log.
    """
    moment = now()
    challenge = AuthChallenge(
        id=secrets.token_hex(16), liaison_id=liaison_id, nonce=secrets.token_bytes(32),
        expires_at=(moment + timedelta(seconds=ttl)).replace(microsecond=0),
    )
    payload = challenge_payload(challenge, origin)
    if repo.get_liaison(session, liaison_id) is None:
        refusal = draft(None, "auth.challenge", {"type": "liaison", "id": liaison_id},
                        reason=Reason.UNKNOWN_LIAISON)
        return IssuedChallenge(challenge.id, payload, challenge.expires_at, refusal)
    session.add(challenge)
    session.flush()
    return IssuedChallenge(challenge.id, payload, challenge.expires_at)


def _refuse_login(actor: Actor | None, liaison_id: str, reason: str) -> Unauthenticated:
    # One detail for every refusal: the answer must not tell an unknown (decoy)
    # challenge from a real one with a bad signature. The ledger has the reason.
    return Unauthenticated("login refused",
                           draft(actor, "auth.login", {"type": "liaison", "id": liaison_id},
                                 reason=reason), reason="login-refused")


def issue_token(session: Session, challenge_id: str, key_id: str, signature: bytes,
                *, origin: str, ttl: int) -> IssuedToken:
    """Exchange a signed challenge for a token, or refuse (and log) why not."""
    moment = now()
    challenge = session.get(AuthChallenge, challenge_id, with_for_update=True)
    if challenge is None:
        raise _refuse_login(None, "unknown", Reason.UNKNOWN_CHALLENGE)
    liaison_id = challenge.liaison_id
    key = repo.get_key(session, key_id)
    actor = Actor(liaison=liaison_id, key=key_id) if key is not None else None
    if challenge.used_at is not None:
        raise _refuse_login(actor, liaison_id, Reason.CHALLENGE_USED)
    if challenge.expires_at <= moment:
        raise _refuse_login(actor, liaison_id, Reason.CHALLENGE_EXPIRED)
    if key is None or key.liaison_id != liaison_id:
        raise _refuse_login(None, liaison_id, Reason.WRONG_KEY)
    if key.revoked_at is not None or key.retired_at is not None:
        raise _refuse_login(actor, liaison_id, Reason.KEY_REVOKED)
    try:
        verify_signature(key.signing_public, AUTH_CHALLENGE_TYPE,
                         challenge_payload(challenge, origin), signature)
    except CryptoError:
        raise _refuse_login(actor, liaison_id, Reason.BAD_SIGNATURE) from None
    liaison = key.liaison
    if liaison.state.status != StateStatus.ACTIVE:
        raise _refuse_login(actor, liaison_id, Reason.STATE_NOT_ACTIVE)
    clearance = repo.clearance_in_force(session, liaison_id, moment)
    if clearance is None:
        raise _refuse_login(actor, liaison_id, Reason.NO_CLEARANCE)
    challenge.used_at = moment
    secret = secrets.token_bytes(32)
    token = AuthToken(
        id=secrets.token_hex(12), liaison_id=liaison_id, key_id=key_id,
        secret_hash=hashlib.sha256(secret).digest(), issued_at=moment,
        expires_at=moment + timedelta(seconds=ttl),
    )
    session.add(token)
    entry = record(session, draft(actor, "auth.login", {"type": "liaison", "id": liaison_id},
                                  details={"token": token.id}))
    text = f"{TOKEN_PREFIX}.{token.id}.{_encode_secret(secret)}"
    return IssuedToken(text, token.expires_at, clearance.valid_until, entry, liaison_id)


def _encode_secret(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")


def _decode_secret(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


TokenReader = Callable[[str, datetime], "repo.TokenFacts | None"]
"""Reads a token's facts by its id at a moment (``repo.token_facts``, or a query that
folds them into a feature's own: ``app.packets.repository.retrieval_with_token``)."""


def authenticate(session: Session, bearer: str | None, action: str,
                 read: TokenReader | None = None) -> Principal:
    """The principal behind ``bearer``, or a logged refusal of ``action``.

    ``read`` reads the token's facts (default: their own query on ``session``);
    every check is made here on what it read, whichever query read it.
    """
    subject = {"type": "token", "id": "none"}
    if not bearer:
        raise deny(Unauthenticated, "a bearer token is required", None, action, subject,
                   Reason.NO_TOKEN)
    parts = bearer.split(".")
    secret = _decode_secret(parts[2]) if len(parts) == 3 and parts[0] == TOKEN_PREFIX else None
    moment = now()
    if read is None:
        def read(token_id: str, at: datetime) -> repo.TokenFacts | None:
            return repo.token_facts(session, token_id, at)
    token = read(parts[1], moment) if secret is not None and len(parts[1]) < 64 else None
    if token is None or secret is None:
        raise deny(Unauthenticated, "invalid token", None, action, subject, Reason.MALFORMED_TOKEN)
    subject = {"type": "token", "id": token.token_id}
    actor = Actor(liaison=token.liaison_id, key=token.key_id)
    if not hmac.compare_digest(hashlib.sha256(secret).digest(), token.secret_hash):
        raise deny(Unauthenticated, "invalid token", None, action, subject, Reason.FORGED_TOKEN)
    if token.revoked_at is not None:
        raise deny(Unauthenticated, "token revoked", actor, action, subject, Reason.TOKEN_REVOKED)
    if token.expires_at <= moment:
        raise deny(Unauthenticated, "token expired", actor, action, subject, Reason.TOKEN_EXPIRED)
    holder = token.holder
    if holder is None or holder.key_revoked_at is not None:
        raise deny(Unauthenticated, "key revoked", actor, action, subject, Reason.KEY_REVOKED)
    if holder.state_status != StateStatus.ACTIVE:
        raise deny(Unauthenticated, "state not active", actor, action, subject,
                   Reason.STATE_NOT_ACTIVE)
    if holder.clearance_level is None:  # DESIGN invariant 3: checked at every access
        raise deny(NoClearance, "no clearance in force", actor, action,
                   {"type": "liaison", "id": token.liaison_id}, Reason.NO_CLEARANCE)
    return Principal(token.liaison_id, token.key_id, holder.role, holder.state_code,
                     token.expires_at, holder.clearance_level)
