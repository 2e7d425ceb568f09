"""Private-key operations without the private keys: what signing and opening need.

A :class:`KeyHolder` signs under a payload type and opens a wrapped content
key; it never hands out the keys themselves. :class:`crypto.LiaisonKeys` is
one (the keys in this process); the command line's local agent is another
(the keys in the agent's process, asked over a Unix socket), as ssh-agent
holds keys for ssh. Sealing, receipts, shares and opening take a holder, so
they run the same either way.
"""

from __future__ import annotations

from typing import Protocol

from crypto.keys import LiaisonPublicKeys
from crypto.wrap import ContentKey


class KeyHolder(Protocol):
    """Signs and unwraps with a liaison's private keys, which it does not show."""

    @property
    def public(self) -> LiaisonPublicKeys:
        """The public key set of the keys held."""
        ...

    def sign(self, payload_type: str, payload: bytes) -> bytes:
        """The Ed25519 signature of ``payload`` under ``payload_type`` (DSSE PAE)."""
        ...

    def unwrap(self, wrapped: bytes, packet_id: str, recipient_id: str) -> ContentKey:
        """Open a content key wrapped to these keys for ``packet_id`` and ``recipient_id``."""
        ...
