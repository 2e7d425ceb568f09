"""A liaison's key history, rebuilt from their key entries in the ledger alone.

docs/protocol.md §9.4 and §10: the chain of a liaison's key entries starts
at their one ``liaison.enrol``; each granted ``key.rotate`` names the key set
in force as ``old_key_id``, carries the statement signed by that key set
(the entry's ``signature``) and by the new signing key (proof of
possession), and the new public keys. ``key.revoke`` ends a key set.
Anything else that would change a liaison's keys (``key.replace``, whose
coordinator approvals this client cannot check yet, a second enrolment, a
rotation not signed by the key in force) is refused: a key is trusted only
if the ledger proves the liaison's own key agreed to it.

:func:`key_history` takes entries that were proven (by inclusion in a
verified checkpoint, :mod:`client.transparency`) and raises
:class:`KeyChainBroken` naming the first entry that does not fit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from client.verify import VerificationFailed
from crypto import (
    KEY_ROTATION_TYPE,
    CryptoError,
    LiaisonPublicKeys,
    RotationStatement,
    verify_signature,
)
from ledger import Entry

ENROL, ROTATE, REPLACE, REVOKE = "liaison.enrol", "key.rotate", "key.replace", "key.revoke"
KEY_ACTIONS = frozenset({ENROL, ROTATE, REPLACE, REVOKE})


class KeyNotProven(VerificationFailed):
    """A key the ledger does not prove: refused, with a short ``reason`` code saying why.

    Codes: ``no-checkpoint-signature``, ``quorum``, ``rollback``, ``fork``,
    ``bad-inclusion``, ``not-in-ledger``, ``stale-key``, ``rogue-key``, the key log's
    ``no-key-log``, ``key-log-fork``, ``not-in-key-log``, ``key-log-rollback``,
    ``hidden-key-entry`` (docs/protocol.md §11.3, §11.8), and the
    :class:`KeyChainBroken` ones.
    """

    def __init__(self, reason: str, message: str, index: int | None = None) -> None:
        """``reason`` is a short code (e.g. ``rotation-not-signed``); ``index`` the entry."""
        super().__init__(f"{message} (reason: {reason})")
        self.reason = reason
        self.index = index


class KeyChainBroken(KeyNotProven):
    """The ledger's key entries of a liaison do not form a chain this client accepts."""


@dataclass(frozen=True)
class ProvenKey:
    """A key set the ledger registered for a liaison, and how."""

    keys: LiaisonPublicKeys
    index: int
    action: str
    previous: str | None
    revoked_at_index: int | None = None


@dataclass
class KeyHistory:
    """A liaison's key sets in ledger order; the last one is in force."""

    liaison_id: str
    keys: list[ProvenKey] = field(default_factory=list)

    def find(self, key_id: str) -> ProvenKey | None:
        """The key set ``key_id`` if the ledger registered it for this liaison."""
        return next((k for k in self.keys if k.keys.key_id == key_id), None)

    @property
    def current(self) -> ProvenKey | None:
        """The key set in force (the last registered), if any."""
        return self.keys[-1] if self.keys else None


def _b64(details: Mapping[str, Any], name: str, index: int) -> bytes:
    value = details.get(name)
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyChainBroken("malformed-key-entry", f"entry {index}: {name} is not base64",
                             index) from exc


def _named_keys(entry: Entry, known: Mapping[str, LiaisonPublicKeys]) -> LiaisonPublicKeys:
    """The key set an enrolment or rotation entry registers; its key id must match.

    Enrolments written before they carried the public keys name only the key
    id, a SHA-256 digest of both keys (docs/protocol.md §3): the key set
    served beside the entry (``known``) is accepted when it has that id.
    """
    d = entry.details
    if entry.action == ENROL and "signing_public" not in d and d.get("key_id") in known:
        return known[str(d["key_id"])]
    try:
        keys = LiaisonPublicKeys(signing=_b64(d, "signing_public", entry.index),
                                 encryption=_b64(d, "encryption_public", entry.index))
    except CryptoError as exc:
        raise KeyChainBroken("malformed-key-entry", f"entry {entry.index}: {exc}",
                             entry.index) from exc
    if d.get("key_id") != keys.key_id:
        raise KeyChainBroken("malformed-key-entry", f"entry {entry.index} names key id "
                             f"{d.get('key_id')} for public keys of id {keys.key_id}",
                             entry.index)
    return keys


def _check_rotation(entry: Entry, current: ProvenKey, origin: str) -> LiaisonPublicKeys:
    """The new key set of a ``key.rotate`` entry, signed as §9.4 says, or KeyChainBroken."""
    new, d, i = _named_keys(entry, {}), entry.details, entry.index
    statement = _b64(d, "statement", i)
    old_id = current.keys.key_id
    actor = entry.actor.key if entry.actor else None
    if d.get("authorized_by") != "current_key" or d.get("old_key_id") != old_id or \
            actor != old_id or hashlib.sha256(statement).hexdigest() != d.get("statement_sha256"):
        raise KeyChainBroken("rotation-mismatch", f"rotation {i} does not name the key set in "
                             f"force ({old_id}) as the one that authorized it", i)
    try:
        parsed = RotationStatement.from_bytes(statement)
        verify_signature(current.keys.signing, KEY_ROTATION_TYPE, statement,
                         base64.b64decode(entry.signature or "", validate=True))
        verify_signature(new.signing, KEY_ROTATION_TYPE, statement,
                         _b64(d, "new_key_signature", i))
    except (CryptoError, binascii.Error, ValueError) as exc:
        raise KeyChainBroken("rotation-not-signed", f"rotation {i} is not signed by the key "
                             f"in force {old_id} and the new key: {exc}", i) from exc
    if (parsed.liaison, parsed.old_key_id, parsed.new_keys, parsed.origin) != (
            entry.subject.get("id"), old_id, new, origin):
        raise KeyChainBroken("rotation-mismatch", f"rotation {i}: the signed statement "
                             "names another liaison, key set or ledger", i)
    return new


def _step(history: KeyHistory, entry: Entry, origin: str,
          known: Mapping[str, LiaisonPublicKeys]) -> None:
    i, current = entry.index, history.current
    if entry.action == ENROL:
        if current is not None:
            raise KeyChainBroken("second-enrolment", f"entry {i} enrols {history.liaison_id} "
                                 "a second time", i)
        history.keys.append(ProvenKey(_named_keys(entry, known), i, ENROL, None))
    elif current is None:
        raise KeyChainBroken("no-enrolment", f"entry {i} ({entry.action}) comes before any "
                             f"enrolment of {history.liaison_id}", i)
    elif entry.action == ROTATE:
        new = _check_rotation(entry, current, origin)
        history.keys.append(ProvenKey(new, i, ROTATE, current.keys.key_id))
    elif entry.action == REVOKE:
        target = history.find(str(entry.details.get("key_id")))
        if target is not None and target.revoked_at_index is None:
            history.keys[history.keys.index(target)] = ProvenKey(
                target.keys, target.index, target.action, target.previous, i)
    else:
        raise KeyChainBroken("unverifiable-replacement", f"entry {i} replaces the keys of "
                             f"{history.liaison_id} by coordinators' approval, which this "
                             "client cannot verify yet", i)


def key_history(liaison_id: str, entries: Sequence[Entry], origin: str, *,
                known: Mapping[str, LiaisonPublicKeys] | None = None) -> KeyHistory:
    """Rebuild ``liaison_id``'s key history from their proven key entries, in ledger order.

    ``origin`` is the verified checkpoint's (a rotation statement names it);
    ``known`` the key sets served beside the entries, by key id (used only
    for enrolments that name their keys by id alone).

    Denied entries and entries about others are refused as not key entries of
    this liaison (the server must list only granted ones and theirs).
    """
    history = KeyHistory(liaison_id)
    last = -1
    for entry in entries:
        if entry.index <= last or entry.action not in KEY_ACTIONS or \
                dict(entry.subject) != {"type": "liaison", "id": liaison_id}:
            raise KeyChainBroken("not-a-key-entry", f"entry {entry.index} is not a key entry "
                                 f"of {liaison_id} in ledger order", entry.index)
        last = entry.index
        if entry.outcome == "granted":
            _step(history, entry, origin, known or {})
    return history
