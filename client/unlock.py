"""Unlock once: a profile's private keys opened by one passphrase, held in memory, locked again.

:class:`KeyAgent` is the client's one unlock mechanism (ADR "one unlock
mechanism"). Whoever holds an agent asks it for :meth:`KeyAgent.client`, an
SDK :class:`~client.sdk.Client` logged in as the profile's liaison, and never
sees the passphrase again: logins are renewed silently (the session signs a
fresh challenge with the keys in memory when its token nears expiry). The
agent locks itself after ``idle`` without use, or when told to
(:meth:`KeyAgent.lock`); then every call raises :class:`Locked` until the
passphrase is given again.

The desk (:mod:`client.desk`) holds one agent in its process. The command
line reaches the same object through a local agent process
(:mod:`client.agent_server`, ``cadena agent start``), as ssh-agent does,
and asks it for signatures and unwraps rather than for the keys.

At each login the profile's own key entries are checked in the witnessed
ledger (``cadena keys check``); a key the profile does not hold, registered
under its name, is kept in :attr:`KeyAgent.alerts` for every page to show.

Python cannot promise to erase memory: on lock the agent overwrites with
zeros the secret bytes inside the key objects it holds (on CPython, where the
layout of ``bytes`` is known: :func:`scrub`), drops every reference to the
keys, the client and its token, and asks the collector to run. Copies made
elsewhere (the Argon2 output, the decrypted key file in libsodium's buffers,
the passphrase string) are not reached.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from client.contacts import ContactBook
from client.errors import ClientError, ProfileError, UsageError
from client.keychain import KeyNotProven
from client.models import Liaison, Token
from client.profile import Profile, ProfileConfig
from client.sdk import Client
from client.session import Credentials, utc_now
from client.transparency import (
    DirectoryAPI,
    KeyTransparency,
    NoTrustRoots,
    ProfileCheckpoints,
    self_check,
)
from client.trust import load_trust
from crypto import CryptoError, LiaisonKeys, LiaisonPublicKeys
from ledger import LedgerError, NoteVerifier

DEFAULT_IDLE = 15 * 60.0
"""Seconds without use after which the agent locks itself."""


_BYTES_DATA = sys.getsizeof(b"") - 1
"""Offset of a CPython ``bytes`` object's data from its address (header, no NUL)."""


def scrub(data: bytes) -> None:
    """Overwrite ``data`` with zeros in place (CPython only; elsewhere a no-op).

    Only for secret bytes this module owns: a ``bytes`` object is immutable to
    Python, and any other holder sees the zeros too, which is the point.
    """
    if sys.implementation.name == "cpython" and len(data) > 1:  # 0 and 1 bytes are shared
        ctypes.memset(id(data) + _BYTES_DATA, 0, len(data))


def scrub_keys(keys: LiaisonKeys) -> None:
    """Zero the private halves inside a key set's PyNaCl objects (see :func:`scrub`)."""
    signing, box = keys.signing_key, keys.encryption_key
    for secret in (getattr(signing, "_seed", None), getattr(signing, "_signing_key", None),
                   getattr(box, "_private_key", None)):
        if isinstance(secret, bytes):
            scrub(secret)


class Locked(UsageError):
    """The agent holds no keys: the passphrase must be given (again)."""


class WrongPassphrase(ProfileError):
    """The passphrase does not open the profile's key file."""


@dataclass(frozen=True)
class Alert:
    """Something the liaison must see on every page (a key not theirs under their name)."""

    kind: str
    detail: str


@dataclass(frozen=True)
class AgentView:
    """What the agent holds, read at one moment (a page's chrome shows these together)."""

    unlocked: bool
    me: Liaison | None
    """Who the profile is, if read since the last unlock; ``None`` when locked."""
    alerts: tuple[Alert, ...]
    """The last login's alerts; none when locked."""


@dataclass
class _Open:
    keys: LiaisonKeys
    client: Client
    config: ProfileConfig


class KeyAgent:
    """One profile's keys, unlocked once and kept in memory until locked."""

    def __init__(self, profile: Profile, *, idle: float = DEFAULT_IDLE,
                 http: httpx.Client | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], datetime] = utc_now) -> None:
        """An agent for ``profile``, locked; ``idle`` seconds without use lock it again."""
        self.profile = profile
        self.idle = idle
        self._http = http
        self._monotonic = monotonic
        self._clock = clock
        self._lock = threading.RLock()
        self._open: _Open | None = None
        self._last_use = 0.0
        self._me: Liaison | None = None
        self.alerts: list[Alert] = []
        self.notes: list[str] = []

    # -- state -----------------------------------------------------------------

    @property
    def unlocked(self) -> bool:
        """Whether keys are held now (an agent idle for too long locks itself here)."""
        with self._lock:
            self.expire()
            return self._open is not None

    def expire(self) -> None:
        """Lock now if the agent was idle for longer than ``idle`` (a watcher calls this
        every few seconds, so the keys leave memory on time even if nothing uses them)."""
        with self._lock:
            if self._open is not None and self._monotonic() - self._last_use > self.idle:
                self._close()

    def public_keys(self) -> LiaisonPublicKeys:
        """The profile's public keys (no passphrase needed)."""
        return self.profile.public_keys()

    # -- unlock and lock -------------------------------------------------------

    def unlock(self, passphrase: str) -> None:
        """Open the key file with ``passphrase`` and keep the keys in memory.

        Raises :class:`WrongPassphrase` if it does not open, :class:`ProfileError`
        if the profile has no keys, server or liaison id.
        """
        config = self.profile.config()
        if not config.server or not config.liaison:
            raise ProfileError(f"profile {self.profile.name!r} has no server or liaison id")
        if not passphrase and self.profile.is_encrypted():
            raise WrongPassphrase("the passphrase is empty")
        try:
            keys = self.profile.load_keys(lambda: passphrase)
        except ProfileError as exc:
            if self.profile.has_keys():
                raise WrongPassphrase("the passphrase does not open the key file") from exc
            raise
        with self._lock:
            self._close()
            self._open = _Open(keys, self._client(config, keys), config)
            self._last_use = self._monotonic()

    def adopt(self, keys: LiaisonKeys) -> None:
        """Hold ``keys`` just created by this process (first run), as if unlocked."""
        config = self.profile.config()
        with self._lock:
            self._close()
            self._open = _Open(keys, self._client(config, keys), config)
            self._last_use = self._monotonic()

    def lock(self) -> None:
        """Drop the keys, the client and its token: the next use needs the passphrase."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        opened, self._open, self._me = self._open, None, None
        if opened is not None:
            opened.client.session.forget_token()
            opened.client.session.credentials = None
            opened.client.close()
            scrub_keys(opened.keys)
            del opened
            gc.collect()

    # -- use -------------------------------------------------------------------

    def client(self) -> Client:
        """The SDK client of the unlocked profile (raises :class:`Locked`); counts as use."""
        with self._lock:
            if not self.unlocked or self._open is None:
                raise Locked("the desk is locked: give your passphrase")
            self._last_use = self._monotonic()
            return self._open.client

    def keys(self) -> LiaisonKeys:
        """The unlocked key pair (raises :class:`Locked`); counts as use. Never log it."""
        with self._lock:
            self.client()
            if self._open is None:
                raise Locked("the desk is locked: give your passphrase")
            return self._open.keys

    @property
    def known_me(self) -> Liaison | None:
        """Who the profile is, if :meth:`me` read it since the last unlock (no network)."""
        return self.view().me

    def view(self) -> AgentView:
        """Unlocked or not, who the profile is and the alerts, under one hold of the lock.

        Read separately, an idle lock between two reads showed an unlocked desk that
        knew no one (no sections).
        """
        with self._lock:
            self.expire()
            if self._open is None:
                return AgentView(False, None, ())
            return AgentView(True, self._me, tuple(self.alerts))

    def me(self) -> Liaison:
        """Who the profile is on its server (read once per unlock)."""
        client = self.client()
        if self._me is None:
            self._me = client.liaisons.get(str(self.profile.config().liaison))
        return self._me

    def login(self) -> Token:
        """Log in now (checks the profile's own keys in the ledger; see :attr:`alerts`)."""
        return self.client().login()

    # -- wiring ----------------------------------------------------------------

    def _client(self, config: ProfileConfig, keys: LiaisonKeys) -> Client:
        origin = None
        if config.ledger_key:
            try:
                origin = NoteVerifier.from_string(config.ledger_key).name
            except LedgerError as exc:
                raise ProfileError(f"the pinned ledger key is not a verifier key: {exc}") from exc
        pins = ContactBook(self.profile, me=config.liaison, clock=self._clock,
                           on_pin=lambda who, key: self.notes.append(
                               f"{who}: {key.fingerprint}"))
        client = Client(str(config.server), http=self._http, clock=self._clock, pins=pins,
                        credentials=Credentials(str(config.liaison), keys, origin=origin))
        roots = load_trust(self.profile)
        if roots is None:
            client.liaisons.pins = NoTrustRoots(self.profile.name)
            self.alerts = [Alert("no-trust-roots", "no trust roots are set")]
            return client
        kt = KeyTransparency(DirectoryAPI(client.session), roots,
                             ProfileCheckpoints(self.profile), pins=pins)
        client.liaisons.pins = kt
        client.session.on_login = lambda _token: self._self_check(kt, client, config)
        return client

    def _self_check(self, kt: KeyTransparency, client: Client, config: ProfileConfig) -> None:
        liaison = str(config.liaison)
        try:
            served = [LiaisonPublicKeys.from_json({"sign": k.signing_public,
                                                   "box": k.encryption_public})
                      for k in client.liaisons.keys(liaison)]
            self_check(kt, liaison, self.profile.held_public_keys(), served=served)
        except KeyNotProven as exc:
            self.alerts = [Alert("rogue-key", str(exc))]
            return
        except (ClientError, CryptoError) as exc:
            self.alerts = [Alert("unchecked", str(exc))]
            return
        self.alerts = []
