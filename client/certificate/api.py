"""The certificate routes of the server, for the command line (fetching only, no trust)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.errors import ProtocolError
from client.session import ApiSession


@dataclass(frozen=True)
class RefreshMaterial:
    """What ``GET /v1/certificates/{id}/refresh`` answers (unverified)."""

    checkpoint: str
    consistency: tuple[bytes, ...]


class CertificatesAPI:
    """Issue certificates, record judicial permission, fetch the seal key and refreshes."""

    def __init__(self, session: ApiSession) -> None:
        """Use ``session`` for every call."""
        self._s = session

    def issue(self, packet_id: str, issued_to: str, purpose: str) -> bytes:
        """Issue a certificate; return the bundle bytes exactly as served."""
        response = self._s.request("POST", f"/v1/packets/{packet_id}/certificates",
                                   json={"issued_to": issued_to, "purpose": purpose})
        return response.content

    def permit(self, packet_id: str, court: str, purpose: str | None = None) -> dict[str, Any]:
        """As the originator, permit judicial use of an H1 packet before ``court``."""
        body = {"court": court, **({"purpose": purpose} if purpose else {})}
        answer: dict[str, Any] = self._s.post_json(
            f"/v1/packets/{packet_id}/judicial-permission", body)
        return answer

    def seal_key(self) -> str:
        """The seal key the server publishes (compare it out of band before trusting it)."""
        return self._s.get_text("/v1/certificates/key").strip()

    def refresh(self, certificate_id: str, old_size: int) -> RefreshMaterial:
        """The newest checkpoint and a consistency proof from ``old_size``."""
        data = self._s.get_json(f"/v1/certificates/{certificate_id}/refresh",
                                {"from": old_size})
        try:
            return RefreshMaterial(str(data["checkpoint"]),
                                   tuple(bytes.fromhex(h) for h in data["consistency"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed refresh answer: {exc}") from exc
