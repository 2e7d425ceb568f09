"""The listing's cursor: the (``submitted_at``, id) of a page's last packet, opaque to clients."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from app.packets.errors import InvalidCursor


def encode_cursor(submitted_at: datetime, packet_id: str) -> str:
    """The cursor that continues a listing after this packet."""
    raw = f"{submitted_at.isoformat()}|{packet_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (``submitted_at``, id) a cursor continues after, or :class:`InvalidCursor`."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, packet_id = text.split("|")
        moment = datetime.fromisoformat(at)
        # A forged cursor may hold a time with no UTC form (OverflowError when bound).
        utc = moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidCursor("the cursor is not one this server issued") from None
    if utc is None:
        raise InvalidCursor("the cursor is not one this server issued")
    return utc, packet_id
