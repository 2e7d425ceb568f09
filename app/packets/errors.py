"""Problem types of the packet routes.

Two families, as everywhere in the service:

- refusals (``AccessDenied`` subclasses): who may do what — membership,
  clearance, party to the packet, originator-only actions, withdrawn packets,
  signatures that do not verify with the caller's key, replays. Each carries
  its ledger entry, recorded on its own after the rollback (``app.ledger.route``);
- bad input (plain ``CadenaError``): malformed envelopes, missing ciphertext
  blobs, unknown stream indexes, a due date already past. Nothing is changed and nothing is logged.
"""

from __future__ import annotations

from app.errors import CadenaError
from app.ledger import AccessDenied, NoClearance

__all__ = ["NoClearance"]  # raised by authentication (app.ledger.recording) as by the packet rules


class NotAMember(AccessDenied):
    """The caller (or a named liaison) is not a member of the packet's channel."""

    status, code, title = 403, "not-a-member", "Not a channel member"


class InsufficientClearance(AccessDenied):
    """The clearance in force is below the packet's classification."""

    status, code, title = 403, "insufficient-clearance", "Insufficient clearance"


class BelowChannelMinimum(AccessDenied):
    """The packet's classification is below the channel's minimum."""

    status, code, title = 403, "below-channel-minimum", "Classification below channel minimum"


class RecipientNotEligible(AccessDenied):
    """A recipient may not receive this packet (membership, clearance, state or key)."""

    status, code, title = 403, "recipient-not-eligible", "Recipient not eligible"


class NotTheSender(AccessDenied):
    """The header names another sender, or the caller's key is not current."""

    status, code, title = 403, "not-the-sender", "Caller is not the signed sender"


class NotAHolder(AccessDenied):
    """The action needs a recipient (someone the packet's key was wrapped for)."""

    status, code, title = 403, "not-a-recipient", "Not a recipient"


class OriginatorOnly(AccessDenied):
    """Only the packet's originator may do this."""

    status, code, title = 403, "originator-only", "Originator only"


class ShareNotApproved(AccessDenied):
    """H2: onward sharing needs the originator's recorded approval."""

    status, code, title = 403, "share-not-approved", "Sharing not approved by the originator"


class Withdrawn(AccessDenied):
    """The originator withdrew the packet; its key is no longer delivered."""

    status, code, title = 410, "packet-withdrawn", "Packet withdrawn"


class SignatureRefused(AccessDenied):
    """A signed object does not verify with the signer's registered key."""

    status, code, title = 422, "bad-signature", "Signature does not verify"


class ObjectMismatch(AccessDenied):
    """A signed receipt or share names another packet, header, digests or signer."""

    status, code, title = 422, "object-mismatch", "Signed object does not match the packet"


class InvalidReply(AccessDenied):
    """``in_reply_to`` names no packet the sender may see in the same channel."""

    status, code, title = 422, "invalid-reply", "Invalid in_reply_to"


class PacketConflict(AccessDenied):
    """The action conflicts with what exists (replayed id, second receipt, ...)."""

    status, code, title = 409, "packet-conflict", "Conflict"


class InvalidEnvelope(CadenaError):
    """The envelope is not a well-formed Cadena envelope."""

    status, code, title = 422, "invalid-envelope", "Invalid envelope"


class InvalidDue(CadenaError):
    """A request's due date has already passed when it is submitted."""

    status, code, title = 422, "invalid-due", "Due date in the past"


class InvalidEncoding(CadenaError):
    """A base64 value does not decode."""

    status, code, title = 422, "invalid-request", "Invalid request"


class MissingStream(CadenaError):
    """A ciphertext stream the header lists is not in the blob store (or differs)."""

    status, code, title = 422, "missing-stream", "Ciphertext stream missing"


class InlineStreamMismatch(CadenaError):
    """An inline stream is not one the header lists, or not its ciphertext."""

    status, code, title = 422, "inline-stream-mismatch", "Inline stream mismatch"


class InvalidCursor(CadenaError):
    """The listing cursor is not one this server issued."""

    status, code, title = 422, "invalid-cursor", "Invalid cursor"
