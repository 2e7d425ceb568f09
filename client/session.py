"""The authenticated HTTP session under every sub-API: tokens, re-login, problems.

:class:`ApiSession` sends each request with a bearer token, logging in first
(challenge–response, :mod:`client.login`) when it has none or the one it has
is about to expire, and logging in once more when the server answers 401 to
a token it believed valid. Every non-2xx answer becomes an exception of
:mod:`client.errors`, carrying the RFC 9457 problem's members.

The ``httpx.Client`` is injectable: tests pass a Starlette ``TestClient``
(an ``httpx.Client`` subclass) to talk to an in-process server. A session
closes only an HTTP client it created itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from client.errors import NetworkError, NotLoggedIn, ProtocolError, Unauthenticated, problem_class
from client.login import sign_challenge
from client.models import Challenge, Token, parse
from crypto import KeyHolder

BodyFactory = Callable[[], Iterable[bytes]]
"""Makes a request body afresh (a new iterator over a file): a retry sends it again."""

REFRESH_MARGIN = timedelta(seconds=30)
"""A token this close to its expiry is replaced before use."""
DEFAULT_TIMEOUT = 30.0


def utc_now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


@dataclass
class Credentials:
    """Who logs in: a liaison id and their private keys (or a function that loads them).

    The keys are a :class:`crypto.KeyHolder`: the key set itself, or the local
    agent that holds it (:mod:`client.agent`), asked for signatures only.

    A loader is called at most once, and only when a login is really needed,
    so a command whose saved token is still valid never asks for a passphrase.
    ``origin``, when known (the pinned ledger's origin), is checked in every
    challenge. The private keys never leave this process: only signatures do.
    """

    liaison_id: str
    keys: KeyHolder | Callable[[], KeyHolder]
    origin: str | None = None
    _loaded: KeyHolder | None = field(default=None, init=False, repr=False)

    def signing_keys(self) -> KeyHolder:
        """The key set, loading it on first use."""
        if self._loaded is None:
            keys = self.keys
            self._loaded = keys() if callable(keys) else keys
        return self._loaded


def _problem(response: httpx.Response) -> Exception:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("title"), str):
        known = {"type", "title", "status", "detail"}
        extensions = {k: v for k, v in body.items() if k not in known}
        return problem_class(status)(str(body.get("type", "about:blank")), body["title"],
                                     status, str(body.get("detail", "")), extensions=extensions)
    text = response.text.strip()[:200]
    return problem_class(status)("about:blank", response.reason_phrase or "HTTP error", status,
                                 text or f"HTTP {status}")


class ApiSession:
    """Sends API requests as one liaison, keeping a fresh bearer token."""

    def __init__(self, base_url: str, *, http: httpx.Client | None = None,
                 credentials: Credentials | None = None, token: Token | None = None,
                 on_login: Callable[[Token], None] | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        """Talk to ``base_url`` (``https://host``) as ``credentials``.

        ``token`` is a token saved from an earlier login; ``on_login`` is told
        of every new token (the CLI saves it in the profile).
        """
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.on_login = on_login
        self.clock = clock
        self._token = token
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(timeout=timeout)

    @property
    def token(self) -> Token | None:
        """The current token, if any."""
        return self._token

    def close(self) -> None:
        """Close the HTTP client if this session created it."""
        if self._own_http:
            self.http.close()

    # -- login -----------------------------------------------------------

    def login(self) -> Token:
        """Log in now with a fresh challenge; return (and keep) the new token."""
        if self.credentials is None:
            raise NotLoggedIn("no credentials: set up a profile with keys and a liaison id")
        creds = self.credentials
        challenge = parse(Challenge, self._json(self._send(
            "POST", "/v1/auth/challenge", None, json={"liaison_id": creds.liaison_id})))
        signed = sign_challenge(challenge, creds.signing_keys(), creds.liaison_id,
                                self.clock(), origin=creds.origin)
        token = parse(Token, self._json(self._send("POST", "/v1/auth/token", None,
                                                   json=signed.to_json())))
        self._token = token
        if self.on_login is not None:
            self.on_login(token)
        return token

    def fresh_token(self) -> Token:
        """The current token, or a new one if it is missing or about to expire."""
        return self._fresh_token()

    def _fresh_token(self) -> Token:
        token = self._token
        if token is not None and (self.credentials is None
                                  or token.expires_at - REFRESH_MARGIN > self.clock()):
            return token
        return self.login()

    # -- requests --------------------------------------------------------

    def request(self, method: str, path: str, *, auth: bool = True,
                json: Any = None, params: Mapping[str, Any] | None = None,
                content: BodyFactory | None = None,
                headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send one request; raise a :mod:`client.errors` exception unless it is 2xx.

        An authenticated request refused with 401 is sent once more after a
        new login (the token may have been revoked or expired early); a
        refused login is not retried. A JSON body is resent unchanged; a
        streamed body is given as ``content``, a factory called once per
        attempt, so the retry streams it again from its start (and a token
        about to expire is replaced *before* a long upload starts).
        """
        token = self._fresh_token() if auth else None
        try:
            return self._send(method, path, token, json=json, params=params, content=content,
                              headers=headers)
        except Unauthenticated:
            if token is None or self.credentials is None:
                raise
        self._token = None
        return self._send(method, path, self._fresh_token(), json=json, params=params,
                          content=content, headers=headers)

    def _headers(self, token: Token | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json, application/problem+json, text/plain"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.token}"
        headers.update(extra or {})
        return headers

    def _send(self, method: str, path: str, token: Token | None, *, json: Any = None,
              params: Mapping[str, Any] | None = None, content: BodyFactory | None = None,
              headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = self.http.request(
                method, self.base_url + path, json=json, params=dict(params or {}),
                content=content() if content is not None else None,
                headers=self._headers(token, headers))
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise NetworkError(f"cannot reach {self.base_url}: {exc}") from exc
        if not response.is_success:
            raise _problem(response)
        return response

    def forget_token(self) -> None:
        """Drop the current token: the next authenticated request logs in again."""
        self._token = None

    @contextmanager
    def stream(self, path: str, *, headers: Mapping[str, str] | None = None,
               read_timeout: float | None = None) -> Iterator[httpx.Response]:
        """GET ``path`` as a streamed response (read it with ``iter_raw``); close on exit.

        A non-2xx answer is read whole (problems are small) and raised as for
        :meth:`request`, after one re-login on 401. ``read_timeout`` replaces
        the client's read timeout for this response (a long-lived stream).
        """
        token = self._fresh_token()
        try:
            response = self._open(path, token, headers, read_timeout)
        except Unauthenticated:
            if self.credentials is None:
                raise
            self._token = None
            response = self._open(path, self._fresh_token(), headers, read_timeout)
        try:
            yield response
        finally:
            response.close()

    def _open(self, path: str, token: Token | None, headers: Mapping[str, str] | None,
              read_timeout: float | None = None) -> httpx.Response:
        timeout = self.http.timeout if read_timeout is None else \
            httpx.Timeout(self.http.timeout.connect, read=read_timeout,
                          write=self.http.timeout.write, pool=self.http.timeout.pool)
        request = self.http.build_request("GET", self.base_url + path,
                                          headers=self._headers(token, headers), timeout=timeout)
        try:
            response = self.http.send(request, stream=True)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise NetworkError(f"cannot reach {self.base_url}: {exc}") from exc
        if not response.is_success:
            try:
                response.read()
            except httpx.TransportError as exc:
                raise NetworkError(f"connection to {self.base_url} broke: {exc}") from exc
            finally:
                response.close()
            raise _problem(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ProtocolError(f"the server's answer to {response.url.path} is not JSON") from exc

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *,
                 auth: bool = True) -> Any:
        """GET ``path`` and return its JSON body."""
        return self._json(self.request("GET", path, params=params, auth=auth))

    def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path`` and return the JSON answer."""
        return self._json(self.request("POST", path, json=body))

    def patch_json(self, path: str, body: Any) -> Any:
        """PATCH ``path`` with ``body`` and return the JSON answer."""
        return self._json(self.request("PATCH", path, json=body))

    def get_text(self, path: str, *, auth: bool = False) -> str:
        """GET a ``text/plain`` resource (the ledger's checkpoint and key are public)."""
        return self.request("GET", path, auth=auth).text
