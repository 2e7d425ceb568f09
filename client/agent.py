"""The command line's local agent: its socket, its wire format, and the CLI's side of it.

``cadena agent start`` runs one :class:`client.unlock.KeyAgent` per profile in
a background process (:mod:`client.agent_server`), as ssh-agent does for ssh:
the passphrase is asked once, the strong KDF runs once, and the keys stay in
that process until it locks (idle time, ``cadena agent stop``). Commands ask
it for *operations*, never for keys: sign these bytes under one of the payload
types it lists, open a content key wrapped to us for a packet, give the
current login token. See ``docs/cli.md`` ("The local agent") for the protocol.

Where it listens: ``<profile>/agent/agent.sock``, the directory 0700 and the
socket 0600, both owned by this user. Before connecting, :func:`find_agent`
checks those modes and owners and refuses a socket anyone else could have
put there (a planted socket would see what we sign); the agent checks its
peer's uid (``SO_PEERCRED``) on every connection.

Wire format: each message is a 4-byte big-endian length then that many bytes
of a UTF-8 JSON object, at most :data:`MAX_MESSAGE`; one request and one
answer per connection. Answers carry ``"ok": true`` and the result, or
``"ok": false`` with ``error`` (a short code), ``detail`` and ``exit_code``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
import stat
import struct
import time
from pathlib import Path
from typing import Any

from client.errors import ClientError, ProfileError
from client.models import Token, parse
from client.profile import Profile
from crypto import ContentKey, CryptoError, LiaisonPublicKeys

MAX_MESSAGE = 1 << 20
"""Largest message either side accepts (a header with many attachments fits easily)."""
TIMEOUT = 30.0
"""Seconds a call may take (a token may need a login over the network)."""
DIR_MODE = 0o700
SOCKET_MODE = 0o600
_LENGTH = struct.Struct(">I")


class AgentProtocolError(ClientError):
    """A message on the agent's socket is malformed, too large or cut short."""


class AgentUnsafe(ProfileError):
    """The agent's socket or directory could be someone else's: it is not used."""


class AgentFailed(ClientError):
    """The agent answered with an error (the exit code is the one it gives)."""

    def __init__(self, error: str, detail: str, exit_code: int) -> None:
        super().__init__(f"the local agent: {detail}")
        self.error = error
        self.exit_code = exit_code  # type: ignore[misc]  # per instance: the agent's


def agent_dir(profile: Profile) -> Path:
    """The directory of the profile's agent socket (0700)."""
    return profile.path / "agent"


def socket_path(profile: Profile) -> Path:
    """The profile's agent socket (0600)."""
    return agent_dir(profile) / "agent.sock"


def check_private(path: Path, mode: int, *, uid: int | None = None, kind: str) -> None:
    """Raise :class:`AgentUnsafe` unless ``path`` is this user's, with exactly ``mode``."""
    info = path.lstat()
    owner = os.getuid() if uid is None else uid
    is_kind = stat.S_ISDIR(info.st_mode) if kind == "directory" else stat.S_ISSOCK(info.st_mode)
    if not is_kind:
        raise AgentUnsafe(f"{path} is not a {kind}")
    if info.st_uid != owner:
        raise AgentUnsafe(f"{path} belongs to uid {info.st_uid}, not to this user")
    if stat.S_IMODE(info.st_mode) != mode:
        raise AgentUnsafe(f"{path} has mode {stat.S_IMODE(info.st_mode):o}, not {mode:o}: "
                          "not used (run `cadena agent stop`, then start it again)")


# -- wire format ------------------------------------------------------------------


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise AgentProtocolError("the connection closed in the middle of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> dict[str, Any]:
    """Read one length-prefixed JSON object (at most :data:`MAX_MESSAGE` bytes)."""
    (size,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size))
    if size > MAX_MESSAGE:
        raise AgentProtocolError(f"a message of {size} bytes is over the limit")
    try:
        message = json.loads(_read_exactly(sock, size).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AgentProtocolError("the message is not UTF-8 JSON") from exc
    if not isinstance(message, dict):
        raise AgentProtocolError("the message is not a JSON object")
    return message


def write_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one length-prefixed JSON object."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise AgentProtocolError(f"a message of {len(data)} bytes is over the limit")
    sock.sendall(_LENGTH.pack(len(data)) + data)


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    """Decode a base64 member, or raise :class:`AgentProtocolError` naming it."""
    if not isinstance(text, str):
        raise AgentProtocolError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise AgentProtocolError(f"{what} is not valid base64") from exc


# -- the CLI's side ---------------------------------------------------------------


STOP_WAIT = 10.0
"""Seconds ``stop`` waits for the agent to leave (it checks every second)."""


class AgentConnection:
    """Calls to the agent at ``path`` (one connection per call)."""

    def __init__(self, path: Path, *, timeout: float = TIMEOUT) -> None:
        """An agent listening at ``path`` (checked by :func:`find_agent`)."""
        self.path = path
        self.timeout = timeout
        self.alerts: list[dict[str, Any]] = []
        """What the agent's last logins found (``status``): a key not ours under our name."""

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request``; return the answer, or raise :class:`AgentFailed`."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            unsent: OSError | None = None
            try:
                sock.connect(str(self.path))
                try:
                    write_message(sock, request)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    # An agent with every connection slot taken answers "busy" without
                    # reading and closes: its answer may be here though ours was not sent.
                    unsent = exc
                answer = read_message(sock)
            except (OSError, AgentProtocolError) as exc:
                if isinstance(exc, AgentProtocolError) and unsent is None:
                    raise
                raise AgentFailed("unreachable",
                                  f"no answer at {self.path}: {unsent or exc}", 2) from exc
        if answer.get("ok") is not True:
            code = answer.get("exit_code")
            raise AgentFailed(str(answer.get("error", "error")), str(answer.get("detail", "")),
                              code if isinstance(code, int) and 1 <= code <= 4 else 4)
        return answer

    def status(self) -> dict[str, Any]:
        """The agent's state: profile, liaison, key id, seconds before it locks, alerts."""
        state = self.call({"op": "status"})
        alerts = state.get("alerts")
        self.alerts = [a for a in alerts if isinstance(a, dict)] if isinstance(alerts, list) else []
        return state

    def token(self) -> Token:
        """The agent's current login token (it logs in again when it nears expiry)."""
        return parse(Token, self.call({"op": "token"}).get("token"))

    def stop(self) -> None:
        """Tell the agent to lock (wiping its keys) and exit; return once it is gone.

        It wipes its keys before it answers, and leaves its socket within a second;
        a start right after a stop must not meet the old agent on its way out.
        """
        self.call({"op": "stop"})
        deadline = time.monotonic() + STOP_WAIT
        while self.path.exists():
            if time.monotonic() > deadline:
                raise AgentFailed("stopping", f"the agent wiped its keys but still listens at "
                                  f"{self.path} after {STOP_WAIT:g} s", 4)
            time.sleep(0.02)


class AgentKeys:
    """A :class:`crypto.KeyHolder` whose keys stay in the agent: it asks for each operation."""

    def __init__(self, agent: AgentConnection) -> None:
        """Operations of the keys held by ``agent``."""
        self.agent = agent
        self._public: LiaisonPublicKeys | None = None

    @property
    def public(self) -> LiaisonPublicKeys:
        """The public key set the agent holds (asked once)."""
        if self._public is None:
            answer = self.agent.call({"op": "public"})
            try:
                self._public = LiaisonPublicKeys.from_json(answer.get("keys") or {})
            except (CryptoError, KeyError, TypeError) as exc:
                raise AgentProtocolError("the agent's public keys are malformed") from exc
        return self._public

    def sign(self, payload_type: str, payload: bytes) -> bytes:
        """Ask the agent to sign ``payload`` under ``payload_type``."""
        answer = self.agent.call({"op": "sign", "type": payload_type, "payload": b64(payload)})
        return unb64(answer.get("signature"), "signature")

    def unwrap(self, wrapped: bytes, packet_id: str, recipient_id: str) -> ContentKey:
        """Ask the agent to open a content key wrapped to its keys for this packet."""
        answer = self.agent.call({"op": "unwrap", "wrapped": b64(wrapped),
                                  "packet_id": packet_id, "recipient_id": recipient_id})
        return ContentKey(unb64(answer.get("content_key"), "content key"))

    def __repr__(self) -> str:
        return f"AgentKeys({self.agent.path})"


def find_agent(profile: Profile) -> AgentConnection | None:
    """The profile's running agent, or ``None`` if none listens.

    Raises :class:`AgentUnsafe` if the socket or its directory is not this
    user's alone: a request is never sent there.
    """
    path = socket_path(profile)
    if not path.exists():
        return None
    check_private(agent_dir(profile), DIR_MODE, kind="directory")
    check_private(path, SOCKET_MODE, kind="socket")
    agent = AgentConnection(path)
    try:
        agent.status()
    except AgentFailed as exc:
        if exc.error == "unreachable":  # a socket left by an agent that was killed
            return None
        raise
    return agent
