"""The Cadena SDK: one :class:`Client`, with a sub-API per feature.

::

    with Client("https://cadena.example", credentials=Credentials("ana", keys)) as c:
        c.login()                       # optional: any call logs in when needed
        for channel in c.channels.list():
            ...

Sub-APIs: :attr:`Client.states`, :attr:`Client.liaisons`,
:attr:`Client.clearances`, :attr:`Client.channels`, :attr:`Client.ledger` and
:attr:`Client.packets` (blobs, packets, receipts, sharing; the end-to-end
send and fetch with every verification are in :mod:`client.transfer`) and
:attr:`Client.events` (real-time notifications) and :attr:`Client.witnesses`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType

import httpx

from client.events import EventsAPI
from client.ledger_api import LedgerAPI
from client.models import Token
from client.packets import PacketsAPI
from client.resources import ChannelsAPI, ClearancesAPI, KeyPins, LiaisonsAPI, StatesAPI
from client.session import DEFAULT_TIMEOUT, ApiSession, Credentials, utc_now
from client.witnesses import WitnessesAPI


class Client:
    """A Cadena API client for one liaison (or for public reads without credentials)."""

    def __init__(self, base_url: str, *, http: httpx.Client | None = None,
                 credentials: Credentials | None = None, token: Token | None = None,
                 on_login: Callable[[Token], None] | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 timeout: float = DEFAULT_TIMEOUT, pins: KeyPins | None = None) -> None:
        """Talk to ``base_url``; see :class:`~client.session.ApiSession` for the options.

        ``pins`` (e.g. a :class:`~client.contacts.ContactBook`) checks every
        contact key before it is used to encrypt or verify.
        """
        self.session = ApiSession(base_url, http=http, credentials=credentials, token=token,
                                  on_login=on_login, clock=clock, timeout=timeout)
        self.states = StatesAPI(self.session)
        self.liaisons = LiaisonsAPI(self.session, pins)
        self.clearances = ClearancesAPI(self.session)
        self.channels = ChannelsAPI(self.session)
        self.ledger = LedgerAPI(self.session)
        self.packets = PacketsAPI(self.session)
        self.events = EventsAPI(self.session)
        self.witnesses = WitnessesAPI(self.session)

    def login(self) -> Token:
        """Log in now (challenge–response) and return the token with its expiries."""
        return self.session.login()

    @property
    def token(self) -> Token | None:
        """The current bearer token, if logged in."""
        return self.session.token

    def close(self) -> None:
        """Release the HTTP client (unless it was passed in)."""
        self.session.close()

    def __enter__(self) -> Client:
        """Use as a context manager."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close on leaving the block."""
        self.close()
