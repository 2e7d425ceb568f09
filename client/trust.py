"""A profile's trust roots: the ledger's key, the witnesses' keys and their quorum.

They are fixed out of band by the liaison (``cadena trust set``), each
confirmed by a fingerprint read from a trusted channel, and never learnt
from the server: a server that could choose them could sign any view of the
directory. Together they are a C2SP ``tlog-policy`` (one log, the named
witnesses, ``quorum`` of them must cosign; :func:`custody.make_policy`).

File: ``<profile>/trust.json`` (0600)::

    {"v": 1, "ledger_key": VKEY, "witnesses": [VKEY, ...], "quorum": N}

The newest checkpoint this profile verified (for consistency, RFC 9162
§2.1.4) is kept beside it in ``<profile>/directory-state.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.errors import ProfileError, UsageError
from client.profile import Profile
from custody import Policy, PolicyError, make_policy
from ledger import LedgerError, NoteVerifier

FILE_VERSION = 1
ALG_ED25519, ALG_COSIGNATURE = 0x01, 0x04


def key_fingerprint(vkey: str) -> str:
    """A verifier key's fingerprint for people to compare: SHA-256, 8 groups of 4 hex."""
    digest = hashlib.sha256(vkey.encode("utf-8")).hexdigest()[:32]
    return " ".join(digest[i:i + 4] for i in range(0, 32, 4))


def _verifier(vkey: str, alg: int, what: str) -> NoteVerifier:
    try:
        verifier = NoteVerifier.from_string(vkey.strip())
    except LedgerError as exc:
        raise UsageError(f"the {what} key is not a note verifier key: {exc}") from exc
    if verifier.alg != alg:
        raise UsageError(f"the {what} key {verifier.name} has signature type "
                         f"{verifier.alg:#04x}, not {alg:#04x}")
    return verifier


@dataclass(frozen=True)
class TrustRoots:
    """The ledger key, the witnesses' cosigning keys, and how many must cosign."""

    ledger: NoteVerifier
    witnesses: tuple[NoteVerifier, ...]
    quorum: int

    @classmethod
    def parse(cls, ledger_key: str, witnesses: list[str], quorum: int) -> TrustRoots:
        """Trust roots from verifier key strings (ledger: type 0x01, witnesses: 0x04)."""
        roots = cls(_verifier(ledger_key, ALG_ED25519, "ledger"),
                    tuple(_verifier(w, ALG_COSIGNATURE, "witness") for w in witnesses), quorum)
        roots.policy()  # a quorum larger than the witnesses, or a name twice, is refused
        return roots

    def policy(self) -> Policy:
        """The C2SP tlog-policy these roots make (witnesses named by their key names)."""
        named = {w.name: w for w in self.witnesses}
        if len(named) != len(self.witnesses):
            raise UsageError("two witness keys have the same name")
        try:
            return make_policy(self.ledger, named, self.quorum)
        except PolicyError as exc:
            raise UsageError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"v": FILE_VERSION, "ledger_key": str(self.ledger),
                "witnesses": [str(w) for w in self.witnesses], "quorum": self.quorum}


def trust_path(profile: Profile) -> Path:
    """Where the profile keeps its trust roots."""
    return profile.path / "trust.json"


def load_trust(profile: Profile) -> TrustRoots | None:
    """The profile's trust roots, or ``None`` if the liaison never set them."""
    data = profile.read_json(trust_path(profile))
    if data is None:
        return None
    try:
        if data["v"] != FILE_VERSION or not isinstance(data["quorum"], int):
            raise ValueError("version or quorum")
        return TrustRoots.parse(str(data["ledger_key"]), [str(w) for w in data["witnesses"]],
                                data["quorum"])
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise ProfileError(f"{trust_path(profile)} is damaged ({exc}); "
                           "set the trust roots again (cadena trust set)") from exc


def save_trust(profile: Profile, roots: TrustRoots) -> None:
    """Store the trust roots (0600); the checkpoint seen under other roots is forgotten."""
    profile.write_json(trust_path(profile), roots.to_json())
    (profile.path / "directory-state.json").unlink(missing_ok=True)
