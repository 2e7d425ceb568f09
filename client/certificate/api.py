"""The certificate routes of the server, for the command line (fetching only, no trust).

A certificate is asked for (``issue``, ``reissue``: 202, pending) and then
collected (``collect``): 202 while the witnesses' cosignatures are awaited,
200 with the sealed bundle once a cosigned checkpoint covers its issue
entry. :meth:`CertificatesAPI.wait` polls within a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from client.errors import ClientError, ProtocolError
from client.session import ApiSession

BUNDLE_TYPE = "application/vnd.cadena.custody-certificate.v1+json"
MAX_POLL_SECONDS = 5.0


class CertificatePending(ClientError):
    """The certificate is not sealed yet (exit 4): collect it later, it stays on record."""


@dataclass(frozen=True)
class CertificateState:
    """Where a requested certificate stands; ``bundle`` once it is sealed."""

    id: str
    bundle: bytes | None
    cosignatures: int = 0
    required: int = 0
    detail: str = ""
    retry_after: float = 1.0


def _state(response: httpx.Response) -> CertificateState:
    certificate_id = response.headers.get("Cadena-Certificate-Id", "")
    if response.status_code == 200:
        if not response.headers.get("content-type", "").startswith(BUNDLE_TYPE):
            raise ProtocolError("a collected certificate is not a certificate bundle")
        return CertificateState(certificate_id, response.content)
    try:
        body = response.json()
        retry = float(response.headers.get("Retry-After", "1"))
        return CertificateState(str(body["id"]), None, int(body["cosignatures"]),
                                int(body["required"]), str(body["detail"]),
                                min(max(retry, 0.1), MAX_POLL_SECONDS))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed certificate status: {exc}") from exc


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

    def issue(self, packet_id: str, issued_to: str, purpose: str) -> CertificateState:
        """Ask for a certificate (recorded at once); collect it with :meth:`wait`."""
        return _state(self._s.request("POST", f"/v1/packets/{packet_id}/certificates",
                                      json={"issued_to": issued_to, "purpose": purpose}))

    def reissue(self, certificate_id: str) -> CertificateState:
        """Ask for a new version of a certificate, against a newer cosigned checkpoint."""
        return _state(self._s.request("POST", f"/v1/certificates/{certificate_id}/reissue"))

    def collect(self, certificate_id: str) -> CertificateState:
        """The certificate's state now: the sealed bundle bytes as served, or pending."""
        return _state(self._s.request("GET", f"/v1/certificates/{certificate_id}"))

    def wait(self, state: CertificateState, timeout: float,
             progress: Callable[[CertificateState, float], None] | None = None) -> bytes:
        """Poll until the certificate is sealed, at most ``timeout`` seconds; its bytes.

        ``progress`` is told each pending state and the seconds waited so far.
        Raises :class:`CertificatePending` when the time is up.
        """
        started = time.monotonic()
        while state.bundle is None:
            waited = time.monotonic() - started
            if progress is not None:
                progress(state, waited)
            if waited + state.retry_after > timeout:
                raise CertificatePending(
                    f"certificate {state.id} is not sealed yet ({state.detail}); it stays "
                    f"on record: `cadena certificate collect {state.id} -o FILE` later")
            time.sleep(state.retry_after)
            state = self.collect(state.id)
        return state.bundle

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
