"""Request and response bodies for witnesses."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.auth.schemas import ID_PATTERN
from app.text import DisplayText


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, or a number that is not written as an address
        return False


def check_witness_url(url: str) -> str:
    """``url`` if the service may POST checkpoints under it, else ``ValueError``.

    The service sends requests there on its own, so the prefix must be
    ``https``; plain ``http`` only to a loopback host (127.0.0.0/8, ``::1``,
    ``localhost``), for tests and a witness on the same machine. No user name
    or password (they would be sent, and logged with the URL), no query and no
    fragment (the service appends ``/add-checkpoint`` to the prefix).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise ValueError("a witness URL starts with https://")
    if "@" in parts.netloc:
        raise ValueError("a witness URL carries no user name or password")
    if "?" in url or "#" in url:
        raise ValueError("a witness URL has no query or fragment")
    host = parts.hostname
    if not host:
        raise ValueError("a witness URL names a host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the witness URL's port is not a number of 1 to 65535")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError("plain http is only for a loopback witness; use https")
    return url


WitnessUrl = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=500),
                       AfterValidator(check_witness_url)]


class WitnessCreate(BaseModel):
    """Register a witness: a local name, its submission prefix and its verifier key."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ID_PATTERN, max_length=128)
    url: WitnessUrl = Field(description="Submission prefix (https; http only to loopback); "
                                        "the service POSTs to <url>/add-checkpoint")
    verifier_key: DisplayText = Field(min_length=1, max_length=600,
                              description="<key name>+<hex key id>+<base64(0x04 || key)>")


class WitnessRead(BaseModel):
    """A registered witness and the size it last cosigned (as the service knows it)."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    url: str
    verifier_key: str
    key_name: str
    last_size: int
    registered_by: str
    registered_at: datetime
