"""Certificate routes: issue, judicial-use permission (H1), the seal key, refresh.

Issuing is one transaction, committed once by the session dependency before
the response is sent: the ``certificate.issue`` entry is appended (taking the
ledger's append lock), a checkpoint covering it is signed at once, and the
bundle is built and sealed from the same session. The checkpoint's signature
leaves the service only in the response, which exists only once the commit
succeeded; if the transaction fails, the entry and the checkpoint go together
and the signature was never shown to anyone. The append lock is held
throughout, so no other process signs a checkpoint meanwhile (and the stored
checkpoint's compare-and-swap would refuse one). Witnesses cosign that
checkpoint later, on their usual round; ``cadena certificate refresh`` then
brings the cosignatures into the certificate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.auth.dependencies import PrincipalDep
from app.certificates import builder, service
from app.certificates.errors import CertificatesUnavailable
from app.certificates.schemas import (
    CertificateCreate,
    PermissionCreate,
    PermissionRead,
    RefreshRead,
)
from app.certificates.seal import load_seal_key, published_key
from app.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from app.ledger_key import LedgerKeyError, load_note_signer
from app.packets.present import PacketId, ledger_ref
from app.settings import Settings
from ledger.certificate import CERTIFICATE_TYPE
from ledger.note import NoteSigner

router = APIRouter(tags=["certificates"], route_class=UnitOfWorkRoute)
CertificateId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


def _ledger_signer(settings: Settings) -> NoteSigner:
    try:
        return load_note_signer(settings.resolved_ledger_key_path(), settings.ledger_origin)
    except LedgerKeyError as exc:
        raise CertificatesUnavailable(f"the ledger key is unavailable: {exc}") from None


@router.post("/v1/packets/{packet_id}/judicial-permission", status_code=201,
             name="packet.judicial_permission")
def permit_judicial_use(packet_id: PacketId, body: PermissionCreate, session: SessionDep,
                        by: PrincipalDep) -> PermissionRead:
    """The originator permits judicial use of the packet before a named court (H1)."""
    done = service.grant_permission(session, by, packet_id, body.court, body.purpose)
    p = done.permission
    return PermissionRead(packet_id=p.packet_id, court=p.court, purpose=p.purpose,
                          granted_by=p.granted_by, granted_at=p.granted_at,
                          ledger=ledger_ref(done.entry))


@router.post("/v1/packets/{packet_id}/certificates", status_code=201, name="certificate.issue",
             response_class=Response,
             responses={201: {"content": {CERTIFICATE_TYPE: {}},
                              "description": "The sealed custody certificate"}})
def issue_certificate(packet_id: PacketId, body: CertificateCreate,
                      session: SessionDep, settings: SettingsDep, by: PrincipalDep) -> Response:
    """Issue a custody certificate of the packet (the bundle, see docs/certificate.md)."""
    signer = _ledger_signer(settings)
    seal = load_seal_key(settings.resolved_seal_key_path())
    issued = service.issue(session, by, packet_id, body.issued_to, body.purpose)
    service.sign_covering(session, signer, settings.ledger_origin)
    policy = builder.centre_policy(session, signer.verifier_key(), settings.witness_quorum)
    bundle = builder.build_bundle(session, issued.certificate, policy, seal,
                                  settings.ledger_origin)
    return Response(bundle.to_bytes(), status_code=201, media_type=CERTIFICATE_TYPE, headers={
        "Cadena-Certificate-Id": issued.certificate.id,
        "Cadena-Ledger-Index": str(issued.entry.index),
        "Cadena-Ledger-Leaf-Hash": issued.entry.leaf_hash.hex()})


@router.get("/v1/certificates/key", name="certificate.key", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def seal_key(settings: SettingsDep) -> Response:
    """The verifier key of the centre's certificate seal (public)."""
    return Response(published_key(settings) + "\n",
                    media_type="text/plain")


@router.get("/v1/certificates/{certificate_id}/refresh", name="certificate.refresh")
def refresh_certificate(certificate_id: CertificateId, session: SessionDep, by: PrincipalDep,
                        from_size: Annotated[int, Query(alias="from", ge=1)]) -> RefreshRead:
    """The newest checkpoint and a consistency proof from the certificate's checkpoint."""
    got = service.refresh_material(session, by, certificate_id, from_size)
    return RefreshRead(certificate_id=got.certificate_id, from_size=got.old_size,
                       to_size=got.checkpoint.size, checkpoint=got.checkpoint.note,
                       consistency=[h.hex() for h in got.proof], ledger=ledger_ref(got.entry))
