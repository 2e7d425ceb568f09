"""Sub-APIs for identity and coordination: states, liaisons, clearances, channels.

Each is a thin, typed wrapper over one ``/v1/<feature>`` router; the server
enforces roles (most writes are for coordinators) and logs every call.
"""

from __future__ import annotations

import base64
import builtins
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from client.errors import NotLoggedIn
from client.models import (
    Channel,
    ChannelKindName,
    Clearance,
    KeyInfo,
    LevelName,
    Liaison,
    RoleName,
    RotationChallenge,
    State,
    StateStatusName,
    parse,
    parse_list,
)
from client.rotation import rotation_body
from client.session import ApiSession, Credentials
from crypto import LiaisonKeys, LiaisonPublicKeys


def _seg(value: str) -> str:
    """A path segment, percent-encoded (ids never contain '/', but never trust that)."""
    return quote(value, safe="")


def _time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times sent to the server must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StatesAPI:
    """``/v1/states``: participating states."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def list(self) -> list[State]:
        """Every participating state."""
        return parse_list(State, self._s.get_json("/v1/states"))

    def enrol(self, code: str, name: str, joining_note: str) -> State:
        """Enrol a state by its ISO 3166-1 alpha-2 code and joining note (coordinators)."""
        body = {"code": code, "name": name, "joining_note": joining_note}
        return parse(State, self._s.post_json("/v1/states", body))

    def set_status(self, code: str, status: StateStatusName, reason: str) -> State:
        """Suspend, reactivate (``active``) or withdraw a state (coordinators)."""
        body = {"status": status, "reason": reason}
        return parse(State, self._s.patch_json(f"/v1/states/{_seg(code)}", body))


class KeyPins(Protocol):
    """Decides whether a key set the directory served may be used for a liaison."""

    def check(self, liaison_id: str, keys: LiaisonPublicKeys, *, current: bool = False) -> None:
        """Return if ``keys`` may be used for ``liaison_id`` (``current``: to encrypt to)."""


class LiaisonsAPI:
    """``/v1/liaisons``: liaisons and their public keys."""

    def __init__(self, session: ApiSession, pins: KeyPins | None = None) -> None:
        """Use ``session`` for every call; check served keys against ``pins`` if given."""
        self._s = session
        self.pins = pins

    def pin(self, liaison_id: str, keys: LiaisonPublicKeys, *, current: bool = False) -> None:
        """Check a key set from the directory against the pins before it is used.

        Every key used to encrypt or to verify passes here (see
        :mod:`client.contacts`, :mod:`client.transparency`); without pins, the
        directory is trusted. ``current``: the key is to be encrypted to, so it
        must be the one in force.
        """
        if self.pins is not None:
            self.pins.check(liaison_id, keys, current=current)

    def list(self, state: str | None = None) -> list[Liaison]:
        """Liaisons, optionally of one state."""
        params = {"state": state} if state else None
        return parse_list(Liaison, self._s.get_json("/v1/liaisons", params))

    def get(self, liaison_id: str) -> Liaison:
        """One liaison with their current public keys."""
        return parse(Liaison, self._s.get_json(f"/v1/liaisons/{_seg(liaison_id)}"))

    def keys(self, liaison_id: str) -> builtins.list[KeyInfo]:
        """Every key set the liaison ever had (old ones verify old signatures)."""
        return parse_list(KeyInfo, self._s.get_json(f"/v1/liaisons/{_seg(liaison_id)}/keys"))

    def enrol(self, liaison_id: str, state_code: str, name: str, role: RoleName,
              *, keys: LiaisonPublicKeys) -> Liaison:
        """Enrol a liaison with their public keys (coordinators)."""
        body = {"id": liaison_id, "state_code": state_code, "name": name, "role": role,
                **_public_keys(keys)}
        return parse(Liaison, self._s.post_json("/v1/liaisons", body))

    def rotate(self, new: LiaisonKeys) -> KeyInfo:
        """Replace the caller's own key set by ``new``; tokens under the old key end.

        Asks for a rotation challenge, checks it, signs the rotation statement
        with the current keys (from the credentials) and proves possession of
        ``new`` (:mod:`client.rotation`); only signatures leave this process.
        Afterwards the session logs in with ``new``.
        """
        creds = self._s.credentials
        if creds is None:
            raise NotLoggedIn("rotating keys needs the current keys: set up a profile")
        current = creds.signing_keys()
        if not isinstance(current, LiaisonKeys):  # an agent signs nothing but what it lists
            raise NotLoggedIn("rotating keys needs the key file itself, not the local agent")
        challenge = parse(RotationChallenge,
                          self._s.post_json("/v1/liaisons/me/keys/challenge", {}))
        body = rotation_body(challenge, creds.liaison_id, current, new,
                             now=self._s.clock(), origin=creds.origin)
        info = parse(KeyInfo, self._s.post_json("/v1/liaisons/me/keys", body))
        self._s.credentials = Credentials(creds.liaison_id, new, creds.origin)
        self._s.forget_token()
        return info

    def revoke_key(self, liaison_id: str, key_id: str, reason: str) -> KeyInfo:
        """Revoke one of a liaison's key sets (coordinators)."""
        path = f"/v1/liaisons/{_seg(liaison_id)}/keys/{_seg(key_id)}/revoke"
        return parse(KeyInfo, self._s.post_json(path, {"reason": reason}))


def _public_keys(keys: LiaisonPublicKeys) -> dict[str, str]:
    return {"signing_public": base64.b64encode(keys.signing).decode("ascii"),
            "encryption_public": base64.b64encode(keys.encryption).decode("ascii")}


class ClearancesAPI:
    """``/v1/clearances``: grant, renew, revoke, list."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def list(self, liaison_id: str | None = None) -> list[Clearance]:
        """Clearances of ``liaison_id`` (coordinators) or of the caller."""
        params = {"liaison_id": liaison_id} if liaison_id else None
        return parse_list(Clearance, self._s.get_json("/v1/clearances", params))

    def grant(self, liaison_id: str, level: LevelName, valid_from: datetime,
              valid_until: datetime) -> Clearance:
        """Grant a clearance over ``[valid_from, valid_until)`` (coordinators)."""
        body = {"liaison_id": liaison_id, "level": level, "valid_from": _time(valid_from),
                "valid_until": _time(valid_until)}
        return parse(Clearance, self._s.post_json("/v1/clearances", body))

    def renew(self, clearance_id: str, valid_until: datetime) -> Clearance:
        """Extend a clearance to ``valid_until`` (coordinators)."""
        path = f"/v1/clearances/{_seg(clearance_id)}/renew"
        return parse(Clearance, self._s.post_json(path, {"valid_until": _time(valid_until)}))

    def revoke(self, clearance_id: str, reason: str) -> Clearance:
        """Revoke a clearance at once (coordinators)."""
        path = f"/v1/clearances/{_seg(clearance_id)}/revoke"
        return parse(Clearance, self._s.post_json(path, {"reason": reason}))


class ChannelsAPI:
    """``/v1/channels``: create, add and remove members, list."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def list(self) -> list[Channel]:
        """Channels the caller belongs to (coordinators see all)."""
        return parse_list(Channel, self._s.get_json("/v1/channels"))

    def create(self, channel_id: str, name: str, kind: ChannelKindName,
               min_clearance: LevelName, *, members: builtins.list[str] | None = None,
               crime_type: str | None = None) -> Channel:
        """Create a channel with its first members (coordinators).

        ``crime_type`` is required for specialized channels, and only for them.
        """
        body: dict[str, object] = {
            "id": channel_id, "name": name, "kind": kind, "min_clearance": min_clearance,
            "members": list(members or []), "crime_type": crime_type}
        return parse(Channel, self._s.post_json("/v1/channels", body))

    def add_member(self, channel_id: str, liaison_id: str) -> Channel:
        """Add a liaison to a channel (coordinators)."""
        path = f"/v1/channels/{_seg(channel_id)}/members"
        return parse(Channel, self._s.post_json(path, {"liaison_id": liaison_id}))

    def remove_member(self, channel_id: str, liaison_id: str) -> Channel:
        """Take a member out of a channel (coordinators); the channel as it is now."""
        path = f"/v1/channels/{_seg(channel_id)}/members/{_seg(liaison_id)}"
        return parse(Channel, self._s.request("DELETE", path).json())
