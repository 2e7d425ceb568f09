"""Contacts' public keys pinned in the profile, so the server cannot swap them.

Every key the client encrypts to (a recipient's X25519 key) or verifies with
(a sender's, sharer's or recipient's Ed25519 key) comes from the server's
directory. A server that served its own key instead could read what is sent
and forge what is received; pinning stops that:

- the first key seen for a contact is pinned ("first use") and the command
  says so, with the fingerprint to compare with the contact out of band;
- a key already pinned for that contact is accepted;
- with key transparency (:mod:`client.transparency`, a profile with trust
  roots), only keys the witnessed ledger proves reach the pins at all, and a
  rotation the ledger proves was signed by the pinned key is pinned too
  ("rotation"), the user told;
- any other key (an unproven rotation, or a substitution) is refused with
  :class:`KeyChanged` until the liaison checks the new fingerprint with the
  contact and accepts it (``cadena contacts verify ID --fingerprint ...``).
  Keys accepted earlier stay pinned, for verifying old signatures.

File: ``<profile>/contacts.json`` (0600)::

    {"v": 1, "contacts": {"bob": [{"key_id": "...", "fingerprint": "...",
                                   "pinned_at": RFC 3339,
                                   "how": "first use" | "verified" | "rotation"}]}}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from client.errors import ProfileError, UsageError
from client.keychain import KeyHistory
from client.profile import Profile
from client.session import utc_now
from client.verify import VerificationFailed
from crypto import LiaisonPublicKeys, format_time

How = Literal["first use", "verified", "rotation"]
HOWS = ("first use", "verified", "rotation")
FILE_VERSION = 1


class KeyChanged(VerificationFailed):
    """The directory serves a contact key that is not pinned in this profile."""


@dataclass(frozen=True)
class PinnedKey:
    """One key pinned for a contact."""

    key_id: str
    fingerprint: str
    pinned_at: str
    how: How


def normal_fingerprint(text: str) -> str:
    """A fingerprint as typed (any spacing) in its canonical form: groups, single spaces."""
    return " ".join(text.split())


def _pinned(item: Any) -> PinnedKey:
    if not isinstance(item, dict) or item.get("how") not in HOWS or \
            not all(isinstance(item.get(f), str) for f in ("key_id", "fingerprint", "pinned_at")):
        raise ProfileError("contacts.json holds a malformed pinned key")
    return PinnedKey(item["key_id"], item["fingerprint"], item["pinned_at"], item["how"])


class ContactBook:
    """The contacts' keys pinned in one profile (``contacts.json``)."""

    def __init__(self, profile: Profile, *, me: str | None = None,
                 on_pin: Callable[[str, PinnedKey], None] | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        """Pins of ``profile``; ``on_pin`` is told of every key pinned on first use.

        ``me`` (the profile's own liaison) is not a contact: its keys are its own.
        """
        self._profile = profile
        self._me = me
        self._path = profile.path / "contacts.json"
        self._on_pin = on_pin
        self._clock = clock

    def pins(self) -> dict[str, list[PinnedKey]]:
        """Every contact's pinned keys, oldest first."""
        data = self._profile.read_json(self._path) or {"v": FILE_VERSION, "contacts": {}}
        contacts = data.get("contacts")
        if data.get("v") != FILE_VERSION or not isinstance(contacts, dict) or \
                not all(isinstance(v, list) for v in contacts.values()):
            raise ProfileError(f"{self._path} is not a contacts file this client reads")
        return {cid: [_pinned(item) for item in items] for cid, items in contacts.items()}

    def _save(self, pins: dict[str, list[PinnedKey]]) -> None:
        self._profile.write_json(self._path, {"v": FILE_VERSION, "contacts": {
            cid: [asdict(p) for p in keys] for cid, keys in sorted(pins.items())}})

    def _pin(self, pins: dict[str, list[PinnedKey]], liaison_id: str,
             keys: LiaisonPublicKeys, how: How) -> PinnedKey:
        pinned = PinnedKey(keys.key_id, keys.fingerprint, format_time(self._clock()), how)
        pins[liaison_id] = [p for p in pins.get(liaison_id, []) if p.key_id != keys.key_id]
        pins[liaison_id].append(pinned)
        self._save(pins)
        return pinned

    def check(self, liaison_id: str, keys: LiaisonPublicKeys, *, current: bool = False) -> None:
        """Accept ``keys`` for ``liaison_id`` if pinned (or first seen); else raise KeyChanged.

        ``current`` (the key is to be encrypted to) changes nothing here: pins
        alone cannot tell which key is in force (:mod:`client.transparency` can).
        """
        self.follow(liaison_id, keys, None)

    def follow(self, liaison_id: str, keys: LiaisonPublicKeys,
               history: KeyHistory | None) -> None:
        """:meth:`check`, also accepting a key the ledger proves the pinned key rotated to.

        ``history`` is the contact's key chain, proven in a witnessed checkpoint
        (:func:`client.keychain.key_history`): every key set in it after the
        enrolment was signed by the one before (docs/protocol.md §9.4), so a
        key in it is the same identity as a pinned key in it. That key is
        pinned (``how = "rotation"``) and the user told; any other is
        :class:`KeyChanged`.
        """
        if liaison_id == self._me:
            return
        pins = self.pins()
        known = pins.get(liaison_id, [])
        if any(p.key_id == keys.key_id for p in known):
            return
        if known and history is not None and history.find(keys.key_id) is not None and \
                any(history.find(p.key_id) is not None for p in known):
            self._told(liaison_id, self._pin(pins, liaison_id, keys, "rotation"))
            return
        if known:
            raise KeyChanged(
                f"the server now serves key {keys.key_id} for {liaison_id} (fingerprint "
                f"{keys.fingerprint}), which is not the key pinned for them here "
                f"({known[-1].fingerprint}). If {liaison_id} rotated their key, check the new "
                f"fingerprint with them and run: cadena contacts verify {liaison_id} "
                f"--fingerprint '{keys.fingerprint}'")
        self._told(liaison_id, self._pin(pins, liaison_id, keys, "first use"))

    def _told(self, liaison_id: str, pinned: PinnedKey) -> None:
        if self._on_pin is not None:
            self._on_pin(liaison_id, pinned)

    def accept(self, liaison_id: str, keys: LiaisonPublicKeys, fingerprint: str) -> PinnedKey:
        """Pin ``keys`` as verified, if ``fingerprint`` (read out by the contact) matches."""
        if normal_fingerprint(fingerprint) != keys.fingerprint:
            raise UsageError(f"the server's key of {liaison_id} has fingerprint "
                             f"{keys.fingerprint}, not the one given: nothing pinned")
        return self._pin(self.pins(), liaison_id, keys, "verified")

    def forget(self, liaison_id: str) -> bool:
        """Drop every key pinned for ``liaison_id``; False if none was."""
        pins = self.pins()
        if pins.pop(liaison_id, None) is None:
            return False
        self._save(pins)
        return True
