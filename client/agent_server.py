"""The local agent's process: one unlocked :class:`~client.unlock.KeyAgent` behind a Unix socket.

:class:`AgentServer` answers the requests of :mod:`client.agent` (its module
doc has the wire format). What it refuses: a peer of another uid
(``SO_PEERCRED``), a message over the size limit or not JSON, an unknown
operation, a signature under a payload type it does not list (key rotation
statements are signed from the key file, never here), more than
:data:`MAX_CONNECTIONS` at once. A refusal changes nothing. No request
returns a private key: only signatures, a content key opened for a packet,
the public keys and the login token.

The process (``python -m client.agent_server``, started by ``cadena agent
start``) reads the passphrase from standard input, unlocks, binds the
socket, prints ``ready`` and serves until it locks: idle for ``lock_after``,
or told to stop. Locking wipes the keys (:meth:`KeyAgent.lock`) and removes
the socket.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from client.agent import (
    DIR_MODE,
    MAX_MESSAGE,
    SOCKET_MODE,
    AgentProtocolError,
    b64,
    check_private,
    read_message,
    socket_path,
    unb64,
    write_message,
)
from client.errors import ClientError, ProfileError
from client.profile import Profile
from client.unlock import KeyAgent, Locked
from crypto import (
    AUTH_CHALLENGE_TYPE,
    KEY_SHARE_TYPE,
    PACKET_HEADER_TYPE,
    RECEIPT_TYPE,
    STATEMENT_TYPE,
    CryptoError,
)

MAX_CONNECTIONS = 8
"""Connections served at once; one more is answered ``busy`` and closed."""
CONNECTION_TIMEOUT = 10.0
"""Seconds a peer has to send its request (a stalled peer does not hold a slot)."""
WATCH_INTERVAL = 1.0
"""How often the idle lock is checked."""
SIGNABLE = frozenset({AUTH_CHALLENGE_TYPE, PACKET_HEADER_TYPE, STATEMENT_TYPE, RECEIPT_TYPE,
                      KEY_SHARE_TYPE})
"""Payload types the agent signs: what send, fetch, share and login need, nothing more."""
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (Linux)


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    _pid, uid, _gid = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return int(uid)


class _Refused(Exception):
    def __init__(self, error: str, detail: str, exit_code: int = 2) -> None:
        super().__init__(detail)
        self.error, self.detail, self.exit_code = error, detail, exit_code


class AgentServer:
    """Serves one unlocked :class:`KeyAgent` on a Unix socket until it locks."""

    def __init__(self, agent: KeyAgent, path: Path, *,
                 read_peer_uid: Callable[[socket.socket], int] = peer_uid,
                 uid: int | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        """Serve ``agent`` at ``path``; only peers whose uid ``read_peer_uid`` gives as
        ``uid`` (this process's, by default) are answered."""
        self.agent = agent
        self.path = path
        self.uid = os.getuid() if uid is None else uid
        self._read_peer_uid = read_peer_uid
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_connections = max_connections
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    # -- life ------------------------------------------------------------------

    def bind(self) -> None:
        """Create the 0700 directory and the 0600 socket (a dead agent's socket is replaced)."""
        directory = self.path.parent
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        directory.chmod(DIR_MODE)
        check_private(directory, DIR_MODE, kind="directory")
        if self.path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.path))
                except OSError:
                    self.path.unlink()
                else:
                    raise ProfileError(f"an agent already listens at {self.path}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        self.path.chmod(SOCKET_MODE)
        listener.listen(MAX_CONNECTIONS * 2)
        listener.settimeout(WATCH_INTERVAL)
        self._listener = listener

    def serve(self) -> None:
        """Answer connections until stopped or locked; then wipe the keys and remove the socket."""
        if self._listener is None:
            self.bind()
        listener = self._listener
        if listener is None:
            raise ProfileError("the agent's socket is not bound")
        try:
            while not self._stop.is_set() and self.agent.unlocked:  # unlocked checks idle
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                if not self._slots.acquire(blocking=False):
                    self._answer_busy(conn)
                    continue
                threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()
        finally:
            self.close()
            self._drain()

    def _drain(self) -> None:
        """Wait, at most a connection's timeout, for the answers being written.

        The process ends when :meth:`serve` returns, and its connection threads
        with it: ``stop``'s own answer, written after it set the flag, was cut off.
        """
        deadline = time.monotonic() + CONNECTION_TIMEOUT
        taken = 0
        while taken < self._max_connections and self._slots.acquire(
                timeout=max(0.0, deadline - time.monotonic())):
            taken += 1
        for _ in range(taken):
            self._slots.release()

    def stop(self) -> None:
        """Stop serving (the loop notices within :data:`WATCH_INTERVAL`)."""
        self._stop.set()

    def close(self) -> None:
        """Lock the agent (wiping its keys), close and remove the socket."""
        self._stop.set()
        self.agent.lock()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with suppress(FileNotFoundError):
                self.path.unlink()

    # -- one connection --------------------------------------------------------

    def _answer_busy(self, conn: socket.socket) -> None:
        with conn, suppress(OSError):
            conn.settimeout(1.0)
            write_message(conn, _error(_Refused("busy", "too many connections", 4)))

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            with conn, suppress(OSError):
                conn.settimeout(CONNECTION_TIMEOUT)
                write_message(conn, self.answer_connection(conn))
                _finish(conn)
        finally:
            self._slots.release()

    def answer_connection(self, conn: socket.socket) -> dict[str, Any]:
        """The answer to the one request on ``conn`` (refused if the peer is another uid)."""
        try:
            if self._read_peer_uid(conn) != self.uid:
                raise _Refused("forbidden", "this agent answers only its own user")
            return self.handle(read_message(conn))
        except AgentProtocolError as exc:
            return _error(_Refused("malformed", str(exc)))
        except _Refused as exc:
            return _error(exc)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one decoded request; errors come back as ``ok: false`` answers."""
        op = request.get("op")
        handlers: dict[Any, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "status": self._status, "public": self._public, "sign": self._sign,
            "unwrap": self._unwrap, "token": self._token, "stop": self._stop_op}
        handler = handlers.get(op)
        if handler is None:
            return _error(_Refused("unknown-op", f"unknown operation {str(op)[:40]!r}"))
        try:
            return {"ok": True, **handler(request)}
        except _Refused as exc:
            return _error(exc)
        except AgentProtocolError as exc:
            return _error(_Refused("malformed", str(exc)))
        except Locked:
            return _error(_Refused("locked", "the agent is locked; start it again"))
        except CryptoError as exc:
            return _error(_Refused("crypto", str(exc), 1))
        except ClientError as exc:
            return _error(_Refused(type(exc).__name__, str(exc), exc.exit_code))

    # -- operations ------------------------------------------------------------

    def _status(self, _request: dict[str, Any]) -> dict[str, Any]:
        keys = self.agent.public_keys()
        config = self.agent.profile.config()
        return {"profile": self.agent.profile.name, "liaison": config.liaison,
                "unlocked": self.agent.unlocked, "key_id": keys.key_id,
                "lock_after": self.agent.idle, "pid": os.getpid(),
                "alerts": [{"kind": a.kind, "detail": a.detail} for a in self.agent.alerts]}

    def _public(self, _request: dict[str, Any]) -> dict[str, Any]:
        return {"keys": self.agent.keys().public.to_json()}

    def _sign(self, request: dict[str, Any]) -> dict[str, Any]:
        payload_type = request.get("type")
        if payload_type not in SIGNABLE:
            raise _Refused("not-signable", f"the agent does not sign {str(payload_type)[:80]!r}")
        payload = unb64(request.get("payload"), "payload")
        return {"signature": b64(self.agent.keys().sign(str(payload_type), payload))}

    def _unwrap(self, request: dict[str, Any]) -> dict[str, Any]:
        packet_id, recipient_id = request.get("packet_id"), request.get("recipient_id")
        if not isinstance(packet_id, str) or not isinstance(recipient_id, str):
            raise _Refused("malformed", "packet_id and recipient_id must be strings")
        if recipient_id != self.agent.profile.config().liaison:
            raise _Refused("forbidden", "the agent opens keys wrapped to its own liaison only")
        wrapped = unb64(request.get("wrapped"), "wrapped")
        key = self.agent.keys().unwrap(wrapped, packet_id, recipient_id)
        return {"content_key": b64(key.secret)}

    def _token(self, _request: dict[str, Any]) -> dict[str, Any]:
        token = self.agent.client().session.fresh_token()
        return {"token": token.model_dump(mode="json")}

    def _stop_op(self, _request: dict[str, Any]) -> dict[str, Any]:
        self.agent.lock()
        self.stop()
        return {"stopped": True}


def _finish(conn: socket.socket) -> None:
    # Closing with unread bytes (the rest of a refused, oversized request) would reset
    # the connection and lose the answer: read what is left first, within a bound.
    conn.shutdown(socket.SHUT_WR)
    left = MAX_MESSAGE
    while left > 0 and (chunk := conn.recv(65536)):
        left -= len(chunk)


def _error(refused: _Refused) -> dict[str, Any]:
    return {"ok": False, "error": refused.error, "detail": refused.detail,
            "exit_code": refused.exit_code}


# -- the process -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m client.agent_server --profile P --home H --lock-after SECONDS``."""
    parser = argparse.ArgumentParser(prog="cadena-agent")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--lock-after", type=float, required=True)
    args = parser.parse_args(argv)
    profile = Profile(args.profile, Path(args.home))
    passphrase = sys.stdin.readline().rstrip("\n")
    agent = KeyAgent(profile, idle=args.lock_after)
    try:
        agent.unlock(passphrase)
        del passphrase
        server = AgentServer(agent, socket_path(profile))
        server.bind()
    except ClientError as exc:
        agent.lock()
        print(f"error: {exc}", flush=True)
        return exc.exit_code
    except OSError as exc:  # e.g. a socket path over the ~100 bytes Unix allows
        agent.lock()
        print(f"error: cannot listen at {socket_path(profile)}: {exc}", flush=True)
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT):  # a plain kill still wipes and unlinks
        signal.signal(signum, lambda _signum, _frame: server.stop())
    print("ready", flush=True)
    sys.stdout.close()  # the starter stops reading here
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
