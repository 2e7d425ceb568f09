"""Why an access was refused, in words anyone holding the entry may read.

A refusal's ledger entry (``reason``) and its problem body (extension
``reason``) carry one :class:`Reason` code from this vocabulary, documented in
``docs/ledger-formats.md``. A code says *which rule* refused, never a third
party's facts: refusal entries travel in custody certificates to courts and
to other parties of the packet. Facts about others (a recipient's clearance
level, a state's status, the liaison or court named) go to an auditor-only
record bound to the entry by a salted digest (:class:`PrivateDetail`,
``ledger.format.refusal``; stored by ``app.ledger.recording.record_refusal``).
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

from ledger import DETAIL_SALT_BYTES, detail_digest


class Reason(enum.StrEnum):
    """The reason codes of refusal entries (``reason``) and problem bodies."""

    # authentication (the caller's own credentials)
    NO_TOKEN = "no-token"  # noqa: S105 (a reason code, not a secret)
    MALFORMED_TOKEN = "malformed-token"  # noqa: S105 (a reason code, not a secret)
    FORGED_TOKEN = "forged-token"  # noqa: S105 (a reason code, not a secret)
    TOKEN_REVOKED = "token-revoked"  # noqa: S105 (a reason code, not a secret)
    TOKEN_EXPIRED = "token-expired"  # noqa: S105 (a reason code, not a secret)
    KEY_REVOKED = "key-revoked"
    STATE_NOT_ACTIVE = "state-not-active"
    UNKNOWN_LIAISON = "unknown-liaison"
    UNKNOWN_CHALLENGE = "unknown-challenge"
    CHALLENGE_USED = "challenge-used"
    CHALLENGE_EXPIRED = "challenge-expired"
    WRONG_KEY = "wrong-key"
    BAD_SIGNATURE = "bad-signature"
    RATE_LIMITED = "rate-limited"
    # the caller's standing
    WRONG_ROLE = "wrong-role"
    LAST_COORDINATOR = "last-coordinator"
    NO_PROOF_OF_POSSESSION = "no-proof-of-possession"
    NOT_SIGNED_BY_CURRENT_KEY = "not-signed-by-current-key"
    ROTATION_CHALLENGE_EXPIRED = "rotation-challenge-expired"
    ROTATION_CHALLENGE_MISMATCH = "rotation-challenge-mismatch"
    ROTATION_CHALLENGE_NOT_YOURS = "rotation-challenge-not-yours"
    ROTATION_CHALLENGE_UNKNOWN = "rotation-challenge-unknown"
    ROTATION_KEYS_MISMATCH = "rotation-keys-mismatch"
    ROTATION_MALFORMED = "rotation-malformed"
    ROTATION_PROOFS_MISSING = "rotation-proofs-missing"
    NO_CLEARANCE = "no-clearance"
    CLEARANCE_TOO_LOW = "clearance-too-low"
    NOT_A_MEMBER = "not-a-member"
    KEY_NOT_CURRENT = "key-not-current"
    # the packet and its parties
    NO_SUCH_PACKET = "no-such-packet"
    NOT_A_PARTY = "not-a-party"
    NO_SUCH_CHANNEL = "no-such-channel"
    NO_SUCH_CERTIFICATE = "no-such-certificate"
    NOT_A_RECIPIENT = "not-a-recipient"
    ORIGINATOR_ONLY = "originator-only"
    NOT_THE_SENDER = "not-the-sender"
    PACKET_WITHDRAWN = "packet-withdrawn"
    PACKET_ID_USED = "packet-id-used"
    BELOW_CHANNEL_MINIMUM = "below-channel-minimum"
    RECIPIENT_NOT_ELIGIBLE = "recipient-not-eligible"
    RECIPIENT_HAS_PACKET = "recipient-has-packet"
    INVALID_REPLY = "invalid-reply"
    OBJECT_MISMATCH = "object-mismatch"
    RECEIPT_ALREADY_GIVEN = "receipt-already-given"
    SHARE_REQUEST_OPEN = "share-request-open"
    SHARE_REQUEST_DECIDED = "share-request-decided"
    SHARE_NOT_APPROVED = "share-not-approved"
    PERMISSION_ALREADY_GIVEN = "permission-already-given"
    JUDICIAL_PERMISSION_REQUIRED = "judicial-permission-required"


# A problem body must not tell apart what its status hides: a 404 answers an
# unknown packet and a packet the caller is no party to alike, and a 401 a
# garbled token and a forged one (which would confirm that a token id exists).
_PUBLIC: dict[str, str] = {
    Reason.NO_SUCH_PACKET: "not-found",
    Reason.NOT_A_PARTY: "not-found",
    Reason.NO_SUCH_CHANNEL: "not-found",
    Reason.NO_SUCH_CERTIFICATE: "not-found",
    Reason.MALFORMED_TOKEN: "invalid-token",
    Reason.FORGED_TOKEN: "invalid-token",
}


def public_reason(code: str) -> str:
    """The ``reason`` a problem body shows for the entry's ``code``."""
    return _PUBLIC.get(code, code)


@dataclass(frozen=True)
class PrivateDetail:
    """What a refusal entry leaves out, for auditors: the text and its salt."""

    salt: bytes
    text: str

    @classmethod
    def of(cls, text: str) -> PrivateDetail:
        """``text`` with a fresh random salt."""
        return cls(secrets.token_bytes(DETAIL_SALT_BYTES), text)

    @property
    def digest(self) -> str:
        """``hex(SHA-256(salt || UTF-8(text)))``, the entry's ``details.detail_digest``."""
        return detail_digest(self.salt, self.text)
