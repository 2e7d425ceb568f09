"""``/v1/blobs`` and ``/v1/packets``: upload ciphertext, submit, list, retrieve, download.

Receipts, share requests, shares, withdrawal and threads are in
``app.packets.sharing_routes``; ``router`` carries them all, ``blob_router`` the upload.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import PrincipalDep, current_principal, require_role
from app.auth.schemas import ID_PATTERN
from app.auth.service import Principal
from app.blobs import (
    SHA256_PATTERN,
    BlobResponse,
    BlobStorage,
    BlobStoreDep,
    ContentTooLarge,
    RangeNotSatisfiable,
    StoredBlob,
    in_memory,
    receive_blob,
)
from app.deps import SettingsDep
from app.errors import PROBLEM_MEDIA_TYPE
from app.ledger import SessionDep, UnitOfWorkRoute
from app.models.identity import Role
from app.models.packet import PacketStatus
from app.packets import service, submission
from app.packets.access import (
    Authenticated,
    Listed,
    ListingCredentials,
    RetrievalCredentials,
    SubmissionCredentials,
    Submitter,
)
from app.packets.listing import PacketFilter
from app.packets.present import PacketId, b64, ledger_ref, summary_fields
from app.packets.schemas import (
    MAX_STREAM_INDEX,
    BlobRead,
    Box,
    KeyShareRead,
    PacketCreate,
    PacketCreated,
    PacketList,
    PacketRead,
    StreamRead,
)
from app.packets.sharing_routes import router as sharing_router
from app.ratelimit import RateLimitsDep
from app.text import DisplayText
from app.timestamp import UTCTimestamp

ProsecutorDep = Annotated[Principal, Depends(require_role(Role.PROSECUTOR))]
BINARY: dict[str, Any] = {"content": {"application/octet-stream": {}}}

# Two routers, each included by the application at the top (app.main): every
# level of nesting is one more walk of routes to match a request.
router = APIRouter(prefix="/v1/packets", tags=["packets"], route_class=UnitOfWorkRoute)
blob_router = APIRouter(tags=["packets"], route_class=UnitOfWorkRoute)


async def _receive(request: Request, store: BlobStorage, sha256: str,
                   limit: int) -> StoredBlob:
    writer = await run_in_threadpool(store.writer, sha256, limit)
    return await receive_blob(request.stream(), writer)


@blob_router.put("/v1/blobs/{sha256}", status_code=201, name="blob.upload", tags=["packets"],
            openapi_extra={"requestBody": {"required": True, **BINARY}})
async def upload_blob(sha256: Annotated[str, Path(pattern=SHA256_PATTERN)], request: Request,
                      response: Response, session: SessionDep, *, settings: SettingsDep,
                      store: BlobStoreDep, by: ProsecutorDep) -> BlobRead:
    """Store a ciphertext stream under its SHA-256 (idempotent: 200 if already stored)."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ContentTooLarge(f"a blob may hold at most {limit} bytes")
    # Authentication only read: end its transaction so that a long upload holds
    # no database lock (SQLite takes its write lock at BEGIN).
    await run_in_threadpool(session.rollback)
    size = await run_in_threadpool(store.refresh, sha256)  # restarts its prune grace period
    if size is not None:
        blob = StoredBlob(sha256, size, created=False)
        response.status_code = 200
    else:
        blob = await _receive(request, store, sha256, limit)
    entry = await run_in_threadpool(service.record_upload, session, by, blob)
    return BlobRead(sha256=blob.sha256, size=blob.size, created=blob.created,
                    ledger=ledger_ref(entry))


async def submission_credentials(request: Request) -> SubmissionCredentials:
    """The caller's credentials, checked in the route's thread by the query that also
    reads their key set (``app.packets.access.SubmissionCredentials``)."""
    return SubmissionCredentials(await current_principal(request))


SubmitterDep = Annotated[Submitter, Depends(submission_credentials)]


@router.post("", status_code=201, name="packet.submit")
def submit_packet(body: PacketCreate, request: Request, session: SessionDep,
                  settings: SettingsDep, *, store: BlobStoreDep, read: SubmitterDep,
                  limits: RateLimitsDep) -> PacketCreated:
    """Submit a signed envelope whose ciphertext streams were uploaded as blobs."""
    by = read.principal
    limits.check(limits.submit, [f"submit:{by.liaison_id}"], by.actor, "packet.submit",
                 subject={"type": "packet", "id": "new"})
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_json_bytes:
        raise ContentTooLarge(f"a submission may hold at most {settings.max_json_bytes} bytes")
    done = submission.submit(session, store, by, body.envelope, inline=body.inline_streams,
                             key=read.key)
    view = service.new_view(done.packet, done.recipient_ids, done.packet.submitted_at)
    return PacketCreated(**summary_fields(view), ledger=ledger_ref(done.entry))


async def listing_credentials(
    request: Request, box: Box = "inbox",
    channel: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=128)] = None,
    *, case_reference: Annotated[DisplayText | None, Query(min_length=1, max_length=256)] = None,
    since: UTCTimestamp | None = None, until: UTCTimestamp | None = None,
    status: PacketStatus | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> ListingCredentials:
    """The caller's credentials and the page asked for, checked and read in the route's
    thread by one query (``app.packets.access.ListingCredentials``)."""
    wanted = PacketFilter(box, channel, case_reference, since, until, status)
    return ListingCredentials(await current_principal(request), wanted, limit, cursor)


ListingDep = Annotated[Listed, Depends(listing_credentials)]


@router.get("", name="packet.list", response_model=PacketList)
def list_packets(session: SessionDep, read: ListingDep) -> PacketList:
    """Packets in the caller's inbox or sent box, newest first (metadata only)."""
    page = service.listing(session, read.principal, read.wanted, read.limit,
                           cursor=read.cursor, read=read.page)
    # One validation of the whole page from plain values (pydantic-core), not one
    # model per packet built from keywords.
    return PacketList.model_validate({"packets": [summary_fields(v) for v in page.views],
                                      "next_cursor": page.next_cursor,
                                      "ledger": ledger_ref(page.entry)})


async def retrieval_credentials(request: Request, packet_id: PacketId) -> RetrievalCredentials:
    """The caller's credentials, checked in the route's thread by the query that reads
    the packet (``app.packets.access.RetrievalCredentials``)."""
    return RetrievalCredentials(await current_principal(request), packet_id)


RetrievalDep = Annotated[Authenticated, Depends(retrieval_credentials)]


@router.get("/{packet_id}", name="packet.retrieve")
def retrieve_packet(packet_id: PacketId, session: SessionDep, read: RetrievalDep) -> PacketRead:
    """Metadata, the signed header and, for a recipient, their wrapped key (key delivery)."""
    got = service.retrieve(session, read.principal, packet_id, read=read)
    p, held = got.access.packet, got.access.holding
    share = None
    if held is not None and held.share is not None and held.share_signature is not None:
        share = KeyShareRead(share=b64(held.share), signature=b64(held.share_signature),
                             sharer_id=held.shared_by or "")
    return PacketRead(
        **summary_fields(got.view), sender_key_id=p.sender_key_id, header=b64(p.header),
        signature=b64(p.signature), header_sha256=p.header_sha256,
        streams=[StreamRead(index=s.index, sha256=s.sha256, length=s.length)
                 for s in got.streams],
        wrapped_key=b64(held.wrapped_key) if held else None,
        key_id=held.key_id if held else None, key_share=share, withdrawn_at=p.withdrawn_at,
        withdrawal_reason=p.withdrawal_reason, ledger=ledger_ref(got.entry))


@router.get("/{packet_id}/streams/{index}", name="packet.download",
             response_class=StreamingResponse,
             responses={200: BINARY, 206: BINARY, 416: {"description": "Range not satisfiable"}})
def download_stream(packet_id: PacketId, index: Annotated[int, Path(ge=0, le=MAX_STREAM_INDEX)],
                    request: Request, session: SessionDep, *, store: BlobStoreDep,
                    by: PrincipalDep) -> Response:
    """A ciphertext stream, whole or one byte range (``Range: bytes=a-b``, RFC 9110 §14)."""
    try:
        grant = service.download(session, store, by, packet_id, index=index,
                                 range_header=request.headers.get("range"))
    except RangeNotSatisfiable as exc:
        return JSONResponse(exc.problem(instance=request.url.path), status_code=exc.status,
                            media_type=PROBLEM_MEDIA_TYPE,
                            headers={"Content-Range": f"bytes */{exc.extensions['size']}"})
    stream, byte_range = grant.stream, grant.byte_range
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{stream.sha256}"',
               "Cadena-Ledger-Index": str(grant.entry.index),
               "Cadena-Ledger-Leaf-Hash": grant.entry.leaf_hash.hex(),
               "Content-Length": str(byte_range.length if byte_range else stream.length)}
    if byte_range is not None:
        headers["Content-Range"] = byte_range.content_range
    chunks = (store.stream(stream.sha256, byte_range) if stream.content is None
              else in_memory(stream.content, byte_range))
    return BlobResponse(chunks, status_code=206 if byte_range else 200, headers=headers)


router.include_router(sharing_router)  # after the hot routes: matched in order
