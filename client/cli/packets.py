"""Prosecutors' commands: ``send``, ``inbox``, ``sent`` and ``fetch``.

Sharing, withdrawal, threads and receipts are in :mod:`client.cli.sharing`;
:func:`register` adds both. Transfers over a few MB show rich progress bars
(rate and ETA) on standard error unless ``--quiet``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, cast

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from client.cli import sharing as cli_sharing
from client.cli.common import (
    Connection,
    JsonOpt,
    ProfileOpt,
    QuietOpt,
    connect,
    err,
    guarded,
    out,
    print_json,
    print_table,
    when,
)
from client.cli.follow import Follow, follow_listing, stream_start
from client.cli.sharing import liaison_keys
from client.errors import UsageError
from client.packet_models import BoxName, PacketStatusName, PacketSummary
from client.transfer import (
    Outgoing,
    ProgressFactory,
    SentPacket,
    fetch_packet,
    no_progress,
    send_packet,
)
from crypto import Classification, HandlingCode, InvalidArgument, PacketMeta, Urgency, format_time

PROGRESS_THRESHOLD = 4 << 20
"""Transfers smaller than this show no progress bar."""


def register(app: typer.Typer) -> None:
    """Add the packet commands to ``app``."""
    app.command("send")(send)
    app.command("inbox")(inbox)
    app.command("sent")(sent)
    app.command("fetch")(fetch)
    cli_sharing.register(app)


def progress_bars(quiet: bool) -> ProgressFactory:
    """Rich progress bars on standard error for transfers over a few MB (none if quiet)."""
    if quiet:
        return no_progress

    @contextlib.contextmanager
    def bars(label: str, total: int) -> Iterator[Any]:
        if total < PROGRESS_THRESHOLD:
            yield lambda _n: None
            return
        with Progress(TextColumn("{task.description:>11}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=err(),
                      transient=False) as progress:
            task = progress.add_task(label, total=total)
            yield lambda n: progress.advance(task, n)

    return bars


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- send ----------------------------------------------------------------------

ToOpt = Annotated[list[str] | None, typer.Option(
    "--to", help="A recipient's liaison id (repeat). Default for a reply: its sender.")]
AttachOpt = Annotated[list[Path] | None, typer.Option(
    "--attach", "-a", exists=True, dir_okay=False, readable=True,
    help="A file to attach, under its own name (repeat).")]


def _message(message: Path | None, text: str | None) -> tuple[BinaryIO, int]:
    if text is not None and message is not None:
        raise typer.BadParameter("give --message or --text, not both")
    if text is not None:
        import io

        data = text.encode("utf-8")
        return io.BytesIO(data), len(data)
    if message is None or str(message) == "-":
        if sys.stdin.isatty():
            raise typer.BadParameter("give --message FILE, --text TEXT, or pipe the message "
                                     "on standard input")
        return cast(BinaryIO, sys.stdin.buffer), 0
    try:
        return message.open("rb"), message.stat().st_size
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {message}: {exc}", param_hint="--message") from exc


def _reply_defaults(conn: Connection, me: str, draft: Draft
                    ) -> tuple[str, list[str], PacketSummary | None]:
    reply_to, channel, to = draft.reply_to, draft.channel, draft.to
    original = conn.client.packets.find(reply_to) if reply_to else None
    if reply_to and original is None:
        raise UsageError(f"packet {reply_to} is not in a thread you can see")
    if channel is None:
        if original is None:
            raise typer.BadParameter("give --channel", param_hint="--channel")
        channel = original.channel_id
    if not to:
        if original is None or original.sender_id == me:
            raise typer.BadParameter("give at least one --to", param_hint="--to")
        to = [original.sender_id]
    return channel, to, original


def _classification(conn: Connection, channel: str, given: Classification | None,
                    original: PacketSummary | None) -> Classification:
    if given is not None:
        return given
    if original is not None:
        return Classification(original.classification)
    for item in conn.client.channels.list():
        if item.id == channel:
            return Classification(item.min_clearance)
    raise UsageError(f"you are not a member of channel {channel!r}")


@dataclass(frozen=True)
class Draft:
    """What ``cadena send`` was asked to send, as given on the command line."""

    to: list[str] | None
    channel: str | None
    reply_to: str | None
    classification: Classification | None
    handling: HandlingCode
    evaluation: str
    case: str | None
    legal_basis: str | None
    urgency: Urgency | None
    due: datetime | None
    body: BinaryIO
    size: int
    attach: list[Path]


def _send(ctx: typer.Context, profile: str | None, draft: Draft, *, workdir: Path | None,
          quiet: bool) -> SentPacket:
    with connect(ctx, profile) as conn:
        me, keys = liaison_keys(conn)
        channel, to, original = _reply_defaults(conn, me, draft)
        level = _classification(conn, channel, draft.classification, original)
        due_at = _utc(draft.due)
        try:
            meta = PacketMeta(channel, level, draft.handling, draft.evaluation.upper(),
                              draft.case, draft.legal_basis, draft.reply_to, draft.urgency,
                              format_time(due_at) if due_at else None)
        except InvalidArgument as exc:
            raise typer.BadParameter(str(exc)) from exc
        outgoing = Outgoing(sorted(set(to)), meta, draft.body, draft.attach, draft.size)
        return send_packet(conn.client, keys, me, outgoing, workdir=workdir,
                           progress=progress_bars(quiet))


@guarded
def send(
    ctx: typer.Context, to: ToOpt = None,
    channel: Annotated[str | None, typer.Option(help="Channel id (default for a reply: its "
                                                     "channel).")] = None,
    message: Annotated[Path | None, typer.Option(
        "--message", "-m", help="Message file ('-' or omitted: standard input).")] = None,
    *, text: Annotated[str | None, typer.Option(help="The message text itself.")] = None,
    attach: AttachOpt = None,
    classification: Annotated[Classification | None, typer.Option(
        case_sensitive=False, help="Default: the channel's minimum (a reply: the request's).")
    ] = None,
    handling: Annotated[HandlingCode, typer.Option(case_sensitive=False, help="H0..H3.")
                        ] = HandlingCode.H0,
    evaluation: Annotated[str | None, typer.Option(
        help="Source reliability A/B/C/X and information assessment 1-4, e.g. B2.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case reference.")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="Legal basis of the exchange.")
                           ] = None,
    reply_to: Annotated[str | None, typer.Option(help="Packet id this answers.")] = None,
    urgency: Annotated[Urgency | None, typer.Option(case_sensitive=False)] = None,
    due: Annotated[datetime | None, typer.Option(help="Answer due by (UTC unless stated).")
                   ] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to stage ciphertext (default: the system temp directory).")] = None,
    profile: ProfileOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Encrypt a message and attachments for the recipients, sign and send them."""
    if evaluation is None:
        raise typer.BadParameter("give the 4x4 evaluation code, e.g. B2",
                                 param_hint="--evaluation")
    body, size = _message(message, text)
    try:
        draft = Draft(to, channel, reply_to, classification, handling, evaluation, case,
                      legal_basis, urgency, due, body, size, list(attach or []))
        sent_packet = _send(ctx, profile, draft, workdir=workdir, quiet=quiet)
    finally:
        if body is not sys.stdin.buffer:
            body.close()
    created = sent_packet.created
    if as_json:
        print_json({**created.to_json(), "upload_entries": sent_packet.upload_entries})
        return
    console = out()
    console.print(f"sent packet [bold]{created.id}[/] to {', '.join(created.recipients)} "
                  f"on {created.channel_id} ({created.classification}, {created.handling}, "
                  f"{created.evaluation})")
    for rid, pub in sent_packet.recipient_keys.items():
        console.print(f"  encrypted to {rid}: key {pub.key_id}, fingerprint {pub.fingerprint}")
    console.print(f"  {len(sent_packet.header.streams)} ciphertext streams, "
                  f"{sum(s.length for s in sent_packet.header.streams)} bytes; "
                  f"ledger entry {created.ledger.index}")


# -- inbox and sent ------------------------------------------------------------


def _rows(packets: list[PacketSummary], box: BoxName) -> list[tuple[Any, ...]]:
    def flags(p: PacketSummary) -> str:
        marks: list[str] = [p.status] if p.status != "active" else []
        marks += ["reply"] if p.in_reply_to else []
        marks += [f"{p.urgency}"] if p.urgency else []
        marks += ["OVERDUE"] if p.overdue else []
        return ", ".join(marks)

    return [(p.id, p.sender_id if box == "inbox" else ", ".join(p.recipients), p.channel_id,
             p.classification, p.handling, p.case_reference, when(p.submitted_at), flags(p))
            for p in packets]


def _table(box: BoxName, packets: list[PacketSummary]) -> None:
    who = "from" if box == "inbox" else "to"
    print_table("Inbox" if box == "inbox" else "Sent", ["id", who, "channel", "class",
                "handling", "case", "submitted", "notes"], _rows(packets, box), whole={"id"})


def _listing(conn: Connection, box: BoxName, filters: dict[str, Any], *, limit: int,
             every: bool) -> list[PacketSummary]:
    found: list[PacketSummary] = []
    cursor = None
    while True:
        page = conn.client.packets.list(box, limit=limit, cursor=cursor, **filters)
        found += page.packets
        cursor = page.next_cursor
        if not every or cursor is None:
            return found


def _print_new(conn: Connection, box: BoxName, filters: dict[str, Any], seen: set[str], *,
               as_json: bool) -> None:
    fresh = [p for p in _listing(conn, box, filters, limit=50, every=False) if p.id not in seen]
    seen.update(p.id for p in fresh)
    for item in reversed(fresh):
        if as_json:
            print_json(item.to_json())
        else:
            _table(box, [item])


StatusOpt = Annotated[str | None, typer.Option(help="active or withdrawn.")]


@dataclass(frozen=True)
class Query:
    """What ``cadena inbox`` or ``cadena sent`` was asked to list, and how."""

    channel: str | None
    case: str | None
    since: datetime | None
    until: datetime | None
    status: str | None
    limit: int
    every: bool
    follow: bool
    interval: float
    polls: int | None


def _list_command(ctx: typer.Context, box: BoxName, query: Query, *, profile: str | None,
                  as_json: bool) -> None:
    if query.status not in (None, "active", "withdrawn"):
        raise typer.BadParameter("use active or withdrawn", param_hint="--status")
    filters = {"channel": query.channel, "case_reference": query.case,
               "since": _utc(query.since), "until": _utc(query.until),
               "status": cast(PacketStatusName | None, query.status)}
    with connect(ctx, profile) as conn:
        # Events before the checkpoint read first are in the listing read after it,
        # so the stream need not replay the whole history.
        after = stream_start(conn) if query.follow and box == "inbox" else None
        packets = _listing(conn, box, filters, limit=query.limit, every=query.every)
        if as_json:
            print_json([p.to_json() for p in packets])
        else:
            _table(box, packets)
        if query.follow:
            seen = {p.id for p in packets}
            follow_listing(conn, box, seen, Follow(query.interval, query.polls, after),
                           print_new=lambda: _print_new(conn, box, filters, seen, as_json=as_json))


ChannelOpt = Annotated[str | None, typer.Option(help="Only this channel.")]
CaseOpt = Annotated[str | None, typer.Option("--case", help="Only this case reference.")]
SinceOpt = Annotated[datetime | None, typer.Option(help="Submitted at or after (UTC).")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Submitted before (UTC).")]
LimitOpt = Annotated[int, typer.Option(min=1, max=200, help="Packets per page.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every page, not only the first.")]
FollowOpt = Annotated[bool, typer.Option(
    "--follow", "-f", help="Keep printing new ones (the inbox: at once, as they arrive).")]
IntervalOpt = Annotated[float, typer.Option(min=0.1, help="Seconds between polls (sent).")]
PollsOpt = Annotated[int | None, typer.Option(
    hidden=True, help="Stop after N polls (inbox: N event-stream connections).")]


@guarded
def inbox(ctx: typer.Context, channel: ChannelOpt = None, case: CaseOpt = None,
          since: SinceOpt = None, *, until: UntilOpt = None, status: StatusOpt = None,
          limit: LimitOpt = 50, every: AllOpt = False, follow: FollowOpt = False,
          interval: IntervalOpt = 5.0, polls: PollsOpt = None, profile: ProfileOpt = None,
          as_json: JsonOpt = False) -> None:
    """Packets addressed or shared to you, newest first (metadata only)."""
    query = Query(channel, case, since, until, status, limit, every, follow, interval, polls)
    _list_command(ctx, "inbox", query, profile=profile, as_json=as_json)


@guarded
def sent(ctx: typer.Context, channel: ChannelOpt = None, case: CaseOpt = None,
         since: SinceOpt = None, *, until: UntilOpt = None, status: StatusOpt = None,
         limit: LimitOpt = 50, every: AllOpt = False, follow: FollowOpt = False,
         interval: IntervalOpt = 5.0, polls: PollsOpt = None, profile: ProfileOpt = None,
         as_json: JsonOpt = False) -> None:
    """Packets you sent, newest first."""
    query = Query(channel, case, since, until, status, limit, every, follow, interval, polls)
    _list_command(ctx, "sent", query, profile=profile, as_json=as_json)


# -- fetch ---------------------------------------------------------------------


@guarded
def fetch(
    ctx: typer.Context, packet_id: Annotated[str, typer.Argument(help="The packet id.")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Directory to create (default: ./<packet id>).")] = None,
    no_receipt: Annotated[bool, typer.Option(
        "--no-receipt", help="Do not send the signed receipt.")] = False,
    *, profile: ProfileOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Download, verify and decrypt a packet into a directory, then send a signed receipt."""
    directory = out_dir or Path(packet_id)
    with connect(ctx, profile) as conn:
        me, keys = liaison_keys(conn)
        got = fetch_packet(conn.client, me, keys, packet_id, directory=directory,
                           receipt=not no_receipt, progress=progress_bars(quiet))
    files = [{"name": f.label, "path": str(f.path), "length": f.digest.length,
              "sha256": f.digest.sha256} for f in got.files]
    receipt = got.receipt.ledger.index if got.receipt else None
    if as_json:
        print_json({"packet": got.read.id, "sender": got.read.sender_id,
                    "directory": str(directory), "files": files, "verified": True,
                    "retrieve_entry": got.read.ledger.index, "receipt_entry": receipt,
                    "receipt_existed": got.receipt_existed})
        return
    console = out()
    console.print(f"packet {got.read.id} from {got.read.sender_id} "
                  f"({got.read.classification}, {got.read.handling}): sender's signature, "
                  "ciphertext and plaintext digests [green]verified[/]")
    print_table(f"Decrypted into {directory}", ["content", "file", "bytes", "sha256"],
                [(f["name"], f["path"], f["length"], f["sha256"]) for f in files])
    if got.receipt is not None:
        console.print(f"signed receipt recorded in the ledger at entry {receipt}")
    elif got.receipt_existed:
        console.print("your receipt for this packet was recorded before")
