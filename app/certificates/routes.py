"""Certificate routes: issue, collect, re-issue, judicial-use permission (H1), the seal key.

Issuing records the ``certificate.issue`` entry and answers 202 at once: no
checkpoint is signed per request (DESIGN: checkpoints are signed on an
interval, so that witnesses can agree on them). ``GET /v1/certificates/{id}``
then answers 202 (``Retry-After``, the cosignatures so far) until a checkpoint
carrying the cosignatures the policy requires covers the entry, and 200 with
the sealed bundle from then on (``app.certificates.sealing``). A re-issue is a
new certificate, with its own entry, sealed against a newer cosigned checkpoint.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.auth.dependencies import PrincipalDep
from app.certificates import builder, sealing, service
from app.certificates.errors import CertificatesUnavailable
from app.certificates.schemas import (
    CertificateCreate,
    CertificateStatus,
    PermissionCreate,
    PermissionRead,
    RefreshRead,
)
from app.certificates.seal import load_seal_key, published_key
from app.deps import SettingsDep
from app.ledger import LedgerKeyError, SessionDep, UnitOfWorkRoute, load_note_signer
from app.packets.present import PacketId, ledger_ref
from app.settings import Settings
from custody import CERTIFICATE_TYPE
from ledger import NoteSigner

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
    done = service.grant_permission(session, by, packet_id, body.court, purpose=body.purpose)
    p = done.permission
    return PermissionRead(packet_id=p.packet_id, court=p.court, purpose=p.purpose,
                          granted_by=p.granted_by, granted_at=p.granted_at,
                          ledger=ledger_ref(done.entry))


# Before /v1/certificates/{id}: routes match in the order they are declared.
@router.get("/v1/certificates/key", name="certificate.key", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def seal_key(settings: SettingsDep) -> Response:
    """The verifier key of the centre's certificate seal (public)."""
    return Response(published_key(settings) + "\n",
                    media_type="text/plain")


def _sealer(session: Session, settings: Settings) -> sealing.Sealer:
    signer = _ledger_signer(settings)
    policy = builder.centre_policy(session, signer.verifier_key(), settings.witness_quorum)
    return sealing.Sealer(policy, settings.witness_quorum,
                          load_seal_key(settings.resolved_seal_key_path()), settings.ledger_origin)


def _retry_after(settings: Settings) -> str:
    return str(max(1, math.ceil(settings.checkpoint_interval)))


def _pending(issued: service.Issued, settings: Settings, required: int) -> JSONResponse:
    row = issued.certificate
    return _status(sealing.Pending(row, 0, required, covered=False), settings, headers={
        "Cadena-Ledger-Index": str(issued.entry.index),
        "Cadena-Ledger-Leaf-Hash": issued.entry.leaf_hash.hex()})


def _status(pending: sealing.Pending, settings: Settings,
            headers: dict[str, str] | None = None) -> JSONResponse:
    row = pending.certificate
    if not pending.covered:
        detail = "waiting for the next checkpoint to cover the issue entry"
    else:
        detail = (f"waiting for witness cosignatures: {pending.cosignatures} of "
                  f"{pending.required} on a checkpoint covering the issue entry")
    body = CertificateStatus(id=row.id, packet_id=row.packet_id, status="pending",
                             reissue_of=row.reissue_of, ledger_index=row.ledger_index,
                             cosignatures=pending.cosignatures, required=pending.required,
                             detail=detail)
    return JSONResponse(body.model_dump(), status_code=202, headers={
        "Location": f"/v1/certificates/{row.id}", "Retry-After": _retry_after(settings),
        "Cadena-Certificate-Id": row.id, **(headers or {})})


_PENDING: dict[int | str, dict[str, Any]] = {202: {"model": CertificateStatus,
                  "description": "Recorded; collect it at Location once cosigned"}}


@router.post("/v1/packets/{packet_id}/certificates", status_code=202, name="certificate.issue",
             response_class=JSONResponse, responses=_PENDING)
def issue_certificate(packet_id: PacketId, body: CertificateCreate,
                      session: SessionDep, settings: SettingsDep, *, by: PrincipalDep) -> Response:
    """Ask for a custody certificate of the packet; collect it at ``Location`` (202)."""
    sealer = _sealer(session, settings)  # unavailable (503) before anything is recorded
    issued = service.issue(session, by, packet_id, body.issued_to, body.purpose)
    return _pending(issued, settings, sealer.quorum)


@router.post("/v1/certificates/{certificate_id}/reissue", status_code=202,
             name="certificate.reissue", response_class=JSONResponse, responses=_PENDING)
def reissue_certificate(certificate_id: CertificateId, session: SessionDep,
                        settings: SettingsDep, by: PrincipalDep) -> Response:
    """A new version of the certificate, to be sealed against a newer cosigned checkpoint."""
    sealer = _sealer(session, settings)
    issued = service.reissue(session, by, certificate_id)
    return _pending(issued, settings, sealer.quorum)


@router.get("/v1/certificates/{certificate_id}", name="certificate.collect",
            response_class=Response,
            responses={200: {"content": {CERTIFICATE_TYPE: {}},
                             "description": "The sealed custody certificate"}, **_PENDING})
def collect_certificate(certificate_id: CertificateId, session: SessionDep,
                        settings: SettingsDep, by: PrincipalDep) -> Response:
    """The sealed certificate (200), or its status while cosignatures are awaited (202)."""
    got = sealing.collect(session, by, certificate_id, _sealer(session, settings))
    if isinstance(got, sealing.Pending):
        return _status(got, settings)
    return Response(got.bundle, media_type=CERTIFICATE_TYPE, headers={
        "Cadena-Certificate-Id": got.certificate.id,
        "Cadena-Ledger-Index": str(got.certificate.ledger_index)})


@router.get("/v1/certificates/{certificate_id}/refresh", name="certificate.refresh")
def refresh_certificate(certificate_id: CertificateId, session: SessionDep, by: PrincipalDep,
                        from_size: Annotated[int, Query(alias="from", ge=1)]) -> RefreshRead:
    """The newest checkpoint and a consistency proof from the certificate's checkpoint."""
    got = service.refresh_material(session, by, certificate_id, from_size)
    return RefreshRead(certificate_id=got.certificate_id, from_size=got.old_size,
                       to_size=got.checkpoint.size, checkpoint=got.checkpoint.note,
                       consistency=[h.hex() for h in got.proof], ledger=ledger_ref(got.entry))
