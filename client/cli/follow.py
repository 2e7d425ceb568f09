"""``cadena inbox --follow`` and ``cadena sent --follow``: new packets as they come.

The inbox follows the server's event stream (``GET /v1/events``), so a new
packet, reply or share is listed at once; the sent items (only ever added by
the liaison themself) are polled.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from client.cli.common import Connection, err
from client.errors import ClientError
from client.packet_models import BoxName

INBOX_EVENTS = frozenset({"packet", "reply", "share"})
"""The event kinds that add a packet to the recipient's inbox."""


@dataclass(frozen=True)
class Follow:
    """How to follow a listing: the poll interval and bound, the event stream's start."""

    interval: float
    polls: int | None
    after: int | None = None


def stream_start(conn: Connection) -> int | None:
    """Where the event stream may start: the last index of the latest checkpoint.

    Read *before* the listing: every event before it is then in the listing,
    so the stream need not replay the liaison's whole history. None (replay
    all) when there is no checkpoint to read.
    """
    try:
        size = conn.client.ledger.checkpoint_size()
    except ClientError:
        return None
    return size - 1 if size > 0 else None


def follow_listing(conn: Connection, box: BoxName, seen: set[str], follow: Follow,
                   *, print_new: Callable[[], None]) -> None:
    """Call ``print_new`` whenever the listing may have grown, until Ctrl-C (or the bound)."""
    with contextlib.suppress(KeyboardInterrupt):
        if box == "inbox":
            err().print("following the inbox as packets arrive (Ctrl-C to stop)")
            for event in conn.client.events.follow(follow.after, connections=follow.polls):
                if event.kind in INBOX_EVENTS and event.packet_id not in seen:
                    print_new()
                    seen.add(event.packet_id)  # filtered out or off the page: list it once
            return
        err().print(f"following the {box} every {follow.interval:g} s (Ctrl-C to stop)")
        count = 0
        while follow.polls is None or count < follow.polls:
            time.sleep(follow.interval)
            count += 1
            print_new()
