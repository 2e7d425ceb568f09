"""The prosecutor's pages: inbox (live), sent, threads, due requests, compose, packet view.

Everything a page decides comes from the SDK and the server: the channels and
their members, the refusals (a recipient without clearance, a due date past
on the server's clock); the templates only show it. What the desk adds:

- **Compose** asks for the channel first, then offers only that channel's
  members and only the classifications at or above its minimum. Each
  attachment is sent by ``static/prosecutor.js`` as soon as it is chosen, as
  the raw body of one request, and encrypted as it arrives
  (:mod:`client.desk.spool`); the packet is sealed and sent by
  :func:`client.transfer.send_packet` from those encrypted files.
- **Inbox** receives arrivals live: ``/prosecutor/events`` follows the
  server's event stream in this process (:meth:`client.events.EventsAPI.follow`)
  and pushes each new packet's row to the page (htmx's SSE extension).
- **Packet view** verifies and decrypts the message into memory and shows it
  as text; attachments are written only by :func:`client.transfer.fetch_packet`
  into the folder the person chose for the profile (staged, renamed once every
  chunk verified), never sent to the browser. Opening a packet posts the
  signed receipt.
- **Certificates** for a named court are asked of the server and, once
  sealed, offered as the JSON bundle and its PDF (neither holds content).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from client.certificate.api import CertificatePending, CertificatesAPI
from client.desk.i18n import N_, _
from client.desk.once import acts_once, show_again_at
from client.desk.pages import (
    PROSECUTOR,
    FormData,
    Section,
    blocking,
    desk,
    flash,
    read_form,
    redirect,
    render,
    session_of,
    unlocked_client,
)
from client.desk.spool import BodyReader, Spool, Spooled
from client.errors import ClientError, Conflict, ProblemError, UsageError
from client.events import END_EVENT, STREAM_READ_TIMEOUT, notification, parse_sse
from client.packet_models import PacketPage, PacketRead, PacketSummary
from client.sdk import Client
from client.sharing import verified_receipts
from client.transfer import Outgoing, fetch_packet, open_remote, send_packet
from client.verify import VerificationFailed
from crypto import CryptoError, InvalidArgument, PacketMeta, decrypt_content, make_receipt

if TYPE_CHECKING:
    from client.desk.app import Desk

ATTACHMENT_LIMIT = 8 << 30
"""Largest attachment the desk takes (it is encrypted as it arrives, never held)."""
MESSAGE_LIMIT = 1 << 20
"""Largest message shown in the page; a longer one is saved with the attachments."""
INBOX_PAGE = 50
DUE_SOON = timedelta(days=3)
CERTIFICATE_WAIT = 20.0
SETTINGS_FILE = "desk-prosecutor.json"

LEVELS = ("RESTRICTED", "CONFIDENTIAL", "SECRET")
LEVEL_NAMES = {"RESTRICTED": N_("Restricted"), "CONFIDENTIAL": N_("Confidential"),
               "SECRET": N_("Secret")}
HANDLING = {
    "H0": N_("No restriction beyond law-enforcement use."),
    "H1": N_("Not to be used in judicial proceedings without the originator's permission."),
    "H2": N_("Not to be passed on without the originator's permission."),
    "H3": N_("Other restrictions, stated in the message."),
}
SOURCES = {
    "A": N_("Reliable source: no doubt of its authenticity, trustworthiness or competence."),
    "B": N_("Mostly reliable source: has proved reliable in most instances."),
    "C": N_("Not reliable source: has proved unreliable in most instances."),
    "X": N_("Reliability cannot be assessed."),
}
INFORMATION = {
    "1": N_("Known to be true without reservation."),
    "2": N_("Known personally to the source, not to the officer reporting it."),
    "3": N_("Not known personally to the source, but corroborated by other information."),
    "4": N_("Cannot be judged."),
}
URGENCY = {"routine": N_("Routine"), "urgent": N_("Urgent"), "immediate": N_("Immediate")}
STATUS_NAMES = {"active": N_("Active"), "withdrawn": N_("Withdrawn")}
SHARE_STATUS = {"pending": N_("Pending"), "approved": N_("Approved"), "used": N_("Used")}
_FOLDER_NAME = re.compile(r"[^A-Za-z0-9._-]")


# -- the desk's state for these pages -------------------------------------------------------

@dataclass
class Certificate:
    """A certificate asked for from this desk: its id, court, and the bundle once sealed."""

    id: str
    packet_id: str
    court: str
    bundle: bytes | None = None
    detail: str = ""


@dataclass
class _State:
    spool: Spool
    certificates: dict[str, Certificate] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[Desk, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(request: Request) -> _State:
    the_desk = desk(request)
    with _STATES_LOCK:
        found = _STATES.get(the_desk)
        if found is None:
            spool = Spool(the_desk.profile.path / "desk-outgoing", limit=ATTACHMENT_LIMIT)
            found = _STATES[the_desk] = _State(spool)
    return found


def _me(request: Request) -> str:
    return desk(request).agent.me().id


def save_folder(request: Request) -> Path | None:
    """The folder the person chose for this profile's saved packets (None until chosen)."""
    data = desk(request).profile.read_json(desk(request).profile.path / SETTINGS_FILE) or {}
    folder = data.get("save_folder")
    return Path(folder) if isinstance(folder, str) and folder else None


def _common(request: Request) -> dict[str, Any]:
    return {"level_names": LEVEL_NAMES, "urgency_names": URGENCY, "status_names": STATUS_NAMES,
            "share_status": SHARE_STATUS, "handling_meanings": HANDLING}


def _name_of(client: Client) -> dict[str, str]:
    """Liaison ids to names, as far as the directory shows them to this liaison."""
    try:
        return {liaison.id: liaison.name for liaison in client.liaisons.list()}
    except ProblemError:
        return {}


# -- lists ------------------------------------------------------------------------------------

def _listing(request: Request, box: str) -> tuple[PacketPage, dict[str, str]]:
    client = unlocked_client(request)
    cursor = request.query_params.get("cursor") or None
    page = client.packets.list("inbox" if box == "inbox" else "sent", limit=INBOX_PAGE,
                               cursor=cursor)
    return page, _name_of(client)


async def inbox(request: Request) -> Response:
    """The inbox, newest first; new packets appear live (server-sent events).

    The listing's own ledger entry comes after every packet it shows: the
    page follows the events after it, so each arrival is shown once.
    """
    page, names = await blocking(_listing, request, "inbox")
    return render(request, "prosecutor/list.html",
                  {**_common(request), "box": "inbox", "packets": page.packets, "names": names,
                   "title": _("Inbox"), "after": page.ledger.index,
                   "next_cursor": page.next_cursor,
                   "first": not request.query_params.get("cursor")})


async def sent(request: Request) -> Response:
    """What this liaison sent, newest first."""
    page, names = await blocking(_listing, request, "sent")
    return render(request, "prosecutor/list.html",
                  {**_common(request), "box": "sent", "packets": page.packets, "names": names,
                   "title": _("Sent"), "after": page.ledger.index,
                   "next_cursor": page.next_cursor,
                   "first": not request.query_params.get("cursor")})


def _due(request: Request) -> dict[str, Any]:
    client = unlocked_client(request)
    now = datetime.now(UTC)
    found: dict[str, list[tuple[str, PacketSummary]]] = {"overdue": [], "soon": [], "later": []}
    for box in ("inbox", "sent"):
        for packet in client.packets.list(box, status="active", limit=200).packets:
            if packet.due is None:
                continue
            kind = ("overdue" if packet.overdue else
                    "soon" if packet.due - now <= DUE_SOON else "later")
            found[kind].append((box, packet))
    for rows in found.values():
        rows.sort(key=lambda row: row[1].due or now)
    return {"groups": found, "names": _name_of(client)}


async def due(request: Request) -> Response:
    """Requests with a due date: overdue first, then due within three days, then later."""
    context = await blocking(_due, request)
    return render(request, "prosecutor/due.html", {**_common(request), **context})


async def thread(request: Request) -> Response:
    """A request and the replies this liaison may see, oldest first."""
    packet_id = request.path_params["id"]

    def load() -> dict[str, Any]:
        client = unlocked_client(request)
        return {"thread": client.packets.thread(packet_id), "names": _name_of(client)}
    context = await blocking(load)
    return render(request, "prosecutor/thread.html", {**_common(request), **context})


# -- live arrivals ----------------------------------------------------------------------------

def _follow(client: Client, me: str, after: int, loop: asyncio.AbstractEventLoop,
            out: asyncio.Queue[PacketSummary | None], stop: threading.Event) -> None:
    """Follow the server's events (in a thread); put each new packet's summary on ``out``.

    As :meth:`client.events.EventsAPI.follow` (resume after the last event,
    log in again when the server ends the stream), but every line read,
    keep-alives included (the server sends one every 15 s), checks ``stop``:
    the thread and its connection end soon after the page goes away.
    """
    def lines(response: httpx.Response) -> Iterator[str]:
        for line in response.iter_lines():
            if stop.is_set():
                return
            yield line

    try:
        while not stop.is_set():
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
            with client.session.stream("/v1/events", headers=headers,
                                       read_timeout=STREAM_READ_TIMEOUT) as response:
                for event in parse_sse(lines(response)):
                    if event.event == END_EVENT:
                        break
                    note = notification(event)
                    after = note.index
                    if note.kind not in ("packet", "reply"):
                        continue
                    summary = client.packets.find(note.packet_id)
                    if summary is not None and me in summary.recipients:
                        _hand_over(loop, out, summary)
            client.session.forget_token()  # the server ended it: the token no longer serves
    except (ClientError, httpx.HTTPError):  # the page shows no more arrivals; reload retries
        pass
    finally:
        _hand_over(loop, out, None)


def _hand_over(loop: asyncio.AbstractEventLoop, out: asyncio.Queue[PacketSummary | None],
               item: PacketSummary | None) -> None:
    with contextlib.suppress(RuntimeError):  # the desk stopped: nobody is listening
        loop.call_soon_threadsafe(out.put_nowait, item)


def _sse(event: str, html: str) -> bytes:
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n".encode()


async def events(request: Request) -> Response:
    """Server-sent events for the inbox page: one ``arrival`` (a table row) per new packet."""
    try:
        after = max(int(request.query_params.get("after", "")), -1)
    except ValueError:
        raise UsageError("the event stream needs ?after=<ledger index>") from None
    client = await blocking(unlocked_client, request)
    me = await blocking(_me, request)
    names = await blocking(_name_of, client)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[PacketSummary | None] = asyncio.Queue()
    stop = threading.Event()
    worker = threading.Thread(target=_follow, args=(client, me, after, loop, queue, stop),
                              name="desk-events", daemon=True)
    template = desk(request).templates.get_template("prosecutor/_row.html")
    context = {**_common(request), "box": "inbox", "names": names, "fresh": True}

    async def stream() -> AsyncIterator[bytes]:
        # The follower starts with the stream, inside the ``finally`` that stops it: a response
        # dropped before its first chunk (the page closed at once) runs neither.
        try:
            worker.start()
            yield b": connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is None:
                    return
                yield _sse("arrival", template.render({**context, "p": item}))
        finally:
            stop.set()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- compose ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComposeChoices:
    """What the compose form offers for one channel: its members and allowed levels."""

    channels: list[Any]
    channel: Any | None
    recipients: list[tuple[str, str]]
    levels: list[str]


def _choices(request: Request, channel_id: str) -> ComposeChoices:
    client = unlocked_client(request)
    me = _me(request)
    channels = [c for c in client.channels.list() if me in c.members]
    channel = next((c for c in channels if c.id == channel_id), None)
    if channel is None:
        return ComposeChoices(channels, None, [], [])
    names = _name_of(client)
    recipients = [(m, names.get(m, m)) for m in channel.members if m != me]
    levels = list(LEVELS[LEVELS.index(channel.min_clearance):])
    return ComposeChoices(channels, channel, recipients, levels)


def _compose_page(request: Request, choices: ComposeChoices, values: dict[str, Any],
                  errors: dict[str, str], *, status: int = 200) -> Response:
    today = datetime.now(UTC).date().isoformat()
    return render(request, "prosecutor/compose.html", {
        **_common(request), "choices": choices, "values": values, "errors": errors,
        "min_due": today, "sources": SOURCES, "information": INFORMATION,
        "spooled": values.get("spooled", []), "reply_to": values.get("in_reply_to", ""),
    }, status=status)


async def compose(request: Request) -> Response:
    """Step one: the channel; step two (``?channel=``): everything else for that channel."""
    channel_id = request.query_params.get("channel", "")
    choices = await blocking(_choices, request, channel_id)
    errors = ({"channel": _("Choose one of your channels.")}
              if channel_id and choices.channel is None else {})
    values: dict[str, Any] = {"channel": channel_id, "classification": "", "handling": "H0",
                              "evaluation": "", "urgency": "", "recipients": [],
                              "in_reply_to": request.query_params.get("reply", "")}
    return _compose_page(request, choices, values, errors,
                         status=400 if errors else 200)


def _validate(form: FormData, choices: ComposeChoices) -> tuple[dict[str, str], dict[str, Any]]:
    errors: dict[str, str] = {}
    recipients = [r for r in form.all("recipients") if r]
    allowed = {r for r, _name in choices.recipients}
    if not recipients:
        errors["recipients"] = _("Choose at least one recipient.")
    elif not set(recipients) <= allowed:
        errors["recipients"] = _("Choose recipients among the channel's members.")
    if form.get("classification") not in choices.levels:
        errors["classification"] = _("Choose a classification at or above the channel's "
                                     "minimum.")
    if form.get("handling") not in HANDLING:
        errors["handling"] = _("Choose a handling code.")
    evaluation = form.get("evaluation")
    if len(evaluation) != 2 or evaluation[0] not in SOURCES or evaluation[1] not in INFORMATION:
        errors["evaluation"] = _("Choose the evaluation in the grid.")
    urgency = form.get("urgency")
    if urgency and urgency not in URGENCY:
        errors["urgency"] = _("Choose an urgency.")
    due_text = form.get("due")
    due_at: datetime | None = None
    if due_text:
        try:
            due_at = datetime.fromisoformat(due_text).replace(tzinfo=UTC)
        except ValueError:
            errors["due"] = _("Give the due date as a date.")
        else:
            if len(due_text) == 10:  # a day: due at its end (UTC)
                due_at += timedelta(days=1) - timedelta(seconds=1)
            if due_at < datetime.now(UTC):
                errors["due"] = _("The due date cannot be in the past.")
    for name in ("case_reference", "legal_basis"):
        value = form.get(name)
        if len(value) > 256 or any(ord(ch) < 32 for ch in value):
            errors[name] = _("At most 256 characters, on one line.")
    if not form.raw("message").strip():
        errors["message"] = _("Write the message.")
    values = {"channel": form.get("channel"), "recipients": recipients,
              "classification": form.get("classification"), "handling": form.get("handling"),
              "evaluation": evaluation, "urgency": urgency, "due": due_text,
              "case_reference": form.get("case_reference"),
              "legal_basis": form.get("legal_basis"), "message": form.raw("message"),
              "in_reply_to": form.get("in_reply_to"), "due_at": due_at}
    return errors, values


def _send(request: Request, values: dict[str, Any], spooled: list[Spooled]) -> str:
    client = unlocked_client(request)
    keys = desk(request).agent.keys()
    me = _me(request)
    due_at = values["due_at"]
    try:
        meta = PacketMeta(
            channel_id=values["channel"], classification=values["classification"],
            handling=values["handling"], evaluation=values["evaluation"],
            case_reference=values["case_reference"] or None,
            legal_basis=values["legal_basis"] or None,
            in_reply_to=values["in_reply_to"] or None, urgency=values["urgency"] or None,
            due=due_at.strftime("%Y-%m-%dT%H:%M:%SZ") if due_at else None)
    except InvalidArgument as exc:
        raise UsageError(str(exc)) from exc
    message = values["message"].encode("utf-8")
    out = Outgoing(values["recipients"], meta, io.BytesIO(message),
                   [s.source() for s in spooled], message_size=len(message))
    sent_packet = send_packet(client, keys, me, out,
                              workdir=_state(request).spool.workdir())
    return sent_packet.created.id


async def _compose_again(request: Request, form: FormData) -> Response:
    """The compose form again, as it was sent, with a fresh token (the old one was refused)."""
    choices = await blocking(_choices, request, form.get("channel"))
    if choices.channel is None:
        return _compose_page(request, choices, {"channel": ""}, {}, status=400)
    _errors, values = _validate(form, choices)
    spool, owner = _state(request).spool, session_of(request).id
    values["spooled"] = []
    for file_id in form.all("attachment"):
        with contextlib.suppress(UsageError):  # sent meanwhile, or removed: not offered again
            values["spooled"].append(spool.get(owner, file_id))
    return _compose_page(request, choices, values, {}, status=400)


def _packet_page(request: Request) -> str:
    return f"/prosecutor/packets/{quote(request.path_params['id'])}"


@acts_once(_compose_again)
async def compose_send(request: Request) -> Response:
    """Check the form (the server checks again), seal, upload and send; then the packet."""
    form = await read_form(request)
    choices = await blocking(_choices, request, form.get("channel"))
    if choices.channel is None:
        return _compose_page(request, choices, {"channel": ""},
                             {"channel": _("Choose one of your channels.")}, status=400)
    errors, values = _validate(form, choices)
    state = _state(request)
    owner = session_of(request).id
    spooled = []
    for file_id in form.all("attachment"):
        try:
            spooled.append(state.spool.get(owner, file_id))
        except UsageError:
            errors["attachments"] = _("An attachment is no longer here: add it again.")
    if len({s.name for s in spooled}) != len(spooled):
        errors["attachments"] = _("Two attachments have the same name.")
    values["spooled"] = spooled
    if not errors:
        try:  # taken for this send only: a second click, or another tab, cannot send them again
            spooled = state.spool.take(owner, [s.id for s in spooled])
        except UsageError:
            errors["attachments"] = _("An attachment is no longer here: add it again.")
    if errors:
        return _compose_page(request, choices, values, errors, status=400)
    try:
        packet_id = await blocking(_send, request, values, spooled)
    except Exception:  # not sent: the form can be sent again (a cancelled request may have sent)
        state.spool.put_back(owner, spooled)
        raise
    for s in spooled:
        s.path.unlink(missing_ok=True)
    flash(request, _("The packet was sent, signed and encrypted."))
    return redirect(f"/prosecutor/packets/{packet_id}")


async def attachment(request: Request) -> Response:
    """Take one attachment as the raw request body, encrypting it as it arrives."""
    name = request.query_params.get("name", "").strip()
    if not name or "/" in name or "\\" in name or name in (".", "..") or len(name) > 255:
        return JSONResponse({"title": _("The file name cannot be used.")}, status_code=400)
    if request.headers.get("content-type", "").startswith("multipart/"):
        return JSONResponse({"title": _("Send the file itself, not a form.")}, status_code=415)
    await blocking(unlocked_client, request)
    chunks = request.stream()

    async def next_chunk() -> bytes:
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            return b""

    reader = BodyReader(next_chunk, ATTACHMENT_LIMIT)
    spooled = await blocking(_state(request).spool.receive, session_of(request).id, name,
                             reader)
    return JSONResponse({"id": spooled.id, "name": spooled.name,
                         "size": spooled.plaintext.length})


async def attachment_remove(request: Request) -> Response:
    """Forget an attachment before sending (its encrypted file is deleted)."""
    await blocking(unlocked_client, request)
    _state(request).spool.discard(session_of(request).id, request.path_params["file"])
    return Response(status_code=204)


# -- one packet -------------------------------------------------------------------------------

@dataclass
class Opened:
    """What the packet page shows of a packet this liaison can read."""

    read: PacketRead
    message: str | None
    attachments: list[tuple[str, int, str]]
    sender_fingerprint: str
    receipt_posted: bool


def _open(request: Request, packet_id: str) -> Opened | None:
    """Verify and decrypt the message in memory; post the receipt. None for the originator."""
    client = unlocked_client(request)
    me = _me(request)
    keys = desk(request).agent.keys()
    read = client.packets.retrieve(packet_id)
    if read.wrapped_key is None and read.key_share is None:
        return None
    header, opened, _entries = open_remote(client, me, keys, read)
    message: str | None = None
    stream = header.streams[1]
    if opened.statement.message.length <= MESSAGE_LIMIT:
        reader = client.packets.open_stream(read.id, 1, stream.length, stream.sha256)
        buffer = io.BytesIO()
        try:
            decrypt_content(opened, 1, cast(Any, reader), buffer)
        except CryptoError as exc:
            raise VerificationFailed(f"the message of packet {read.id} fails verification: "
                                     f"{exc}") from exc
        finally:
            reader.close()
        message = buffer.getvalue().decode("utf-8", errors="replace")
    posted = False
    if read.sender_id != me:
        signed = make_receipt(opened, me, keys)
        try:
            client.packets.add_receipt(read.id, signed.receipt, signed.signature)
            posted = True
        except Conflict:
            posted = False
    sender_key = client.liaisons.get(read.sender_id).current_key
    return Opened(read, message,
                  [(a.name, a.length, a.sha256) for a in opened.statement.attachments],
                  sender_key.fingerprint if sender_key is not None else read.sender_key_id,
                  posted)


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _packet_context(request: Request, packet_id: str) -> dict[str, Any]:
    client = unlocked_client(request)
    me = _me(request)
    summary = client.packets.find(packet_id)
    if summary is None:
        raise UsageError(f"packet {packet_id} is not one you can see")
    opened = _open(request, packet_id)
    mine = summary.sender_id == me
    receipts = ([(r.recipient.id, _moment(r.received))
                 for r in verified_receipts(client, packet_id).receipts] if mine else [])
    try:
        shares = client.packets.share_requests(packet_id).requests
    except ProblemError:
        shares = []
    folder = save_folder(request)
    state = _state(request)
    # A copy, taken at once: the certificate form adds to it on the event loop's thread.
    certificates = [c for c in list(state.certificates.values()) if c.packet_id == packet_id]
    saved = _target(folder, packet_id) if folder is not None else None
    return {"p": summary, "opened": opened, "mine": mine, "receipts": receipts,
            "shares": shares, "folder": folder, "certificates": certificates,
            "saved_at": saved if saved is not None and saved.exists() else None,
            "names": _name_of(client), "my_id": me}


async def packet(request: Request) -> Response:
    """A packet: what was verified, the message as text, attachments, receipts, sharing."""
    context = await blocking(_packet_context, request, request.path_params["id"])
    return render(request, "prosecutor/packet.html", {**_common(request), **context,
                                                       "errors": {}, "values": {}})


def _target(folder: Path, packet_id: str) -> Path:
    return folder / f"packet-{_FOLDER_NAME.sub('_', packet_id)}"


@acts_once(show_again_at(_packet_page))
async def save(request: Request) -> Response:
    """Fetch, verify and decrypt the packet into the chosen folder (staged, then renamed)."""
    packet_id = request.path_params["id"]
    folder = save_folder(request)
    if folder is None:
        flash(request, _("First choose the folder where packets are saved."), kind="error")
        return redirect(f"/prosecutor/folder?next=/prosecutor/packets/{quote(packet_id)}")
    target = _target(folder, packet_id)
    if target.exists():
        flash(request, _("This packet is saved already in %(path)s.", path=str(target)))
        return redirect(f"/prosecutor/packets/{packet_id}")

    def run() -> None:
        client = unlocked_client(request)
        fetch_packet(client, _me(request), desk(request).agent.keys(), packet_id,
                     directory=target)
    await blocking(run)
    flash(request, _("Every file verified and was saved in %(path)s.", path=str(target)))
    return redirect(f"/prosecutor/packets/{packet_id}")


@acts_once(show_again_at(_packet_page))
async def withdraw(request: Request) -> Response:
    """Withdraw a packet this liaison sent (the reason is recorded in the ledger)."""
    packet_id = request.path_params["id"]
    form = await read_form(request)
    reason = form.get("reason")
    if not reason:
        flash(request, _("Give the reason for the withdrawal."), kind="error")
        return redirect(f"/prosecutor/packets/{packet_id}")

    def run() -> None:
        unlocked_client(request).packets.withdraw(packet_id, reason)
    await blocking(run)
    flash(request, _("The packet was withdrawn."))
    return redirect(f"/prosecutor/packets/{packet_id}")


@acts_once(show_again_at(_packet_page))
async def share_request(request: Request) -> Response:
    """Ask to share a packet with another liaison (the originator approves where needed)."""
    packet_id = request.path_params["id"]
    form = await read_form(request)
    recipient = form.get("recipient")
    if not recipient:
        flash(request, _("Give the liaison to share with."), kind="error")
        return redirect(f"/prosecutor/packets/{packet_id}")

    def run() -> None:
        unlocked_client(request).packets.request_share(packet_id, recipient)
    await blocking(run)
    flash(request, _("The share request was recorded."))
    return redirect(f"/prosecutor/packets/{packet_id}")


@acts_once(show_again_at(_packet_page))
async def share_approve(request: Request) -> Response:
    """As the originator, approve a share request."""
    packet_id, request_id = request.path_params["id"], request.path_params["request"]

    def run() -> None:
        unlocked_client(request).packets.approve_share(packet_id, request_id)
    await blocking(run)
    flash(request, _("The share request was approved."))
    return redirect(f"/prosecutor/packets/{packet_id}")


@acts_once(show_again_at(_packet_page))
async def certificate(request: Request) -> Response:
    """Ask the server for a custody certificate of the packet for a named court."""
    packet_id = request.path_params["id"]
    form = await read_form(request)
    court, purpose = form.get("court"), form.get("purpose")
    if not court or not purpose:
        flash(request, _("Name the court and the purpose."), kind="error")
        return redirect(f"/prosecutor/packets/{packet_id}")

    def run() -> Certificate:
        api = CertificatesAPI(unlocked_client(request).session)
        state = api.issue(packet_id, court, purpose)
        found = Certificate(state.id, packet_id, court)
        try:
            found.bundle = api.wait(state, CERTIFICATE_WAIT)
        except CertificatePending as exc:
            found.detail = str(exc)
        return found
    found = await blocking(run)
    _state(request).certificates[found.id] = found
    flash(request, _("The certificate is sealed.") if found.bundle else
          _("The certificate was asked for; the witnesses have not cosigned it yet."))
    return redirect(f"/prosecutor/packets/{packet_id}")


async def certificate_collect(request: Request) -> Response:
    """Ask again for a certificate that was pending."""
    found = _state(request).certificates.get(request.path_params["cid"])
    if found is None:
        raise UsageError("no such certificate was asked for from this desk")

    def run() -> None:
        state = CertificatesAPI(unlocked_client(request).session).collect(found.id)
        found.bundle = state.bundle
    await blocking(run)
    return redirect(f"/prosecutor/packets/{found.packet_id}")


async def certificate_file(request: Request) -> Response:
    """The sealed certificate as JSON or PDF (no decrypted content is in either)."""
    await blocking(unlocked_client, request)
    found = _state(request).certificates.get(request.path_params["cid"])
    kind = request.path_params["kind"]
    if found is None or found.bundle is None or kind not in ("json", "pdf"):
        raise UsageError("no sealed certificate by that id on this desk")
    name = f"certificate-{_FOLDER_NAME.sub('_', found.id)}.{kind}"
    if kind == "json":
        body, media = found.bundle, "application/json"
    else:
        from client.certificate.pdf import render_pdf  # fpdf2 is slow to import: on use
        bundle = found.bundle
        body, media = await blocking(render_pdf, bundle), "application/pdf"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- the save folder --------------------------------------------------------------------------

async def folder_page(request: Request) -> Response:
    """Where this profile's packets are saved: shown, and changed here."""
    return render(request, "prosecutor/folder.html",
                  {"folder": save_folder(request), "errors": {},
                   "values": {"folder": str(save_folder(request) or "")},
                   "next": _safe_next(request.query_params.get("next", ""))})


def _safe_next(target: str) -> str:
    return target if target.startswith("/prosecutor/") and "//" not in target else ""


async def folder_set(request: Request) -> Response:
    """Choose the folder (an absolute path on this computer; created 0700 if missing)."""
    form = await read_form(request)
    text = form.get("folder")
    path = Path(text).expanduser() if text else None
    error = ""
    if path is None or not path.is_absolute():
        error = _("Give the full path of a folder on this computer.")
    elif path.exists() and not path.is_dir():
        error = _("This path is a file, not a folder.")
    if error or path is None:
        return render(request, "prosecutor/folder.html",
                      {"folder": save_folder(request), "errors": {"folder": error},
                       "values": {"folder": text}, "next": _safe_next(form.get("next"))},
                      status=400)
    the_desk = desk(request)

    def run() -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        the_desk.profile.write_json(the_desk.profile.path / SETTINGS_FILE,
                                    {"save_folder": str(path)})
    await blocking(run)
    flash(request, _("Packets will be saved in %(path)s.", path=str(path)))
    return redirect(_safe_next(form.get("next")) or "/prosecutor/folder")


def _routes() -> Iterator[Route]:
    yield Route("/", inbox, methods=["GET"])
    yield Route("/sent", sent, methods=["GET"])
    yield Route("/due", due, methods=["GET"])
    yield Route("/events", events, methods=["GET"])
    yield Route("/threads/{id}", thread, methods=["GET"])
    yield Route("/compose", compose, methods=["GET"])
    yield Route("/compose", compose_send, methods=["POST"])
    yield Route("/attachments", attachment, methods=["POST"])
    yield Route("/attachments/{file}/remove", attachment_remove, methods=["POST"])
    yield Route("/packets/{id}", packet, methods=["GET"])
    yield Route("/packets/{id}/save", save, methods=["POST"])
    yield Route("/packets/{id}/withdraw", withdraw, methods=["POST"])
    yield Route("/packets/{id}/share", share_request, methods=["POST"])
    yield Route("/packets/{id}/shares/{request}/approve", share_approve, methods=["POST"])
    yield Route("/packets/{id}/certificates", certificate, methods=["POST"])
    yield Route("/certificates/{cid}/collect", certificate_collect, methods=["POST"])
    yield Route("/certificates/{cid}.{kind}", certificate_file, methods=["GET"])
    yield Route("/folder", folder_page, methods=["GET"])
    yield Route("/folder", folder_set, methods=["POST"])


section = Section(key="prosecutor", title=N_("Cases"), roles=frozenset({PROSECUTOR}),
                  routes=list(_routes()))
