"""The local agent: the CLI unlocks once, asks for operations, never sees the keys again.

A real ``cadena-server`` with passphrase-protected profiles (tests.desk.harness).
The command-line tests run the real ``cadena`` in child processes, with no
``CADENA_PASSPHRASE`` and standard input closed: a command that opened the
key file would stop at the passphrase prompt (exit 2). The socket tests run
an :class:`AgentServer` in a thread around a real, unlocked :class:`KeyAgent`;
only the peer-uid read is injected, never the crypto.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import client.agent as agent_module
from client.agent import (
    MAX_MESSAGE,
    AgentConnection,
    AgentFailed,
    AgentKeys,
    AgentUnsafe,
    find_agent,
    socket_path,
    write_message,
)
from client.agent_server import AgentServer
from client.profile import Profile
from client.unlock import KeyAgent
from crypto import (
    AUTH_CHALLENGE_TYPE,
    KEY_ROTATION_TYPE,
    KEY_SHARE_TYPE,
    PACKET_HEADER_TYPE,
    RECEIPT_TYPE,
    STATEMENT_TYPE,
    ContentKey,
    LiaisonKeys,
    uuid7,
    verify_signature,
)
from crypto.wrap import wrap_content_key
from tests.desk.harness import PASSPHRASE, World, enrolled_world
from tests.planted import plant

pytestmark = pytest.mark.timeout(300)
CADENA = str(Path(sys.executable).with_name("cadena"))
WAIT = 60.0
"""Longest wait for a process to exit or a socket to go (a hang, not a speed target)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A real server with ana (CO) and bruno (MX) on a channel they share."""
    with enrolled_world(tmp_path_factory.mktemp("agent")) as built:
        from client.sdk import Client
        from client.session import Credentials

        coord = built.liaisons["coord"]
        with Client(built.server.url, credentials=Credentials("coord", coord.keys)) as client:
            client.channels.create("bilateral", "CO-MX", "bilateral", "RESTRICTED",
                                   members=["ana", "bruno"])
        yield built


def cadena(world: World, *args: str, passphrase: str | None = None,
           check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``cadena``; stdin closed, a passphrase only if given (in ``cwd``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENA_")}
    env |= {"CADENA_HOME": str(world.home), "COLUMNS": "200"}
    if passphrase is not None:
        env["CADENA_PASSPHRASE"] = passphrase
    done = subprocess.run([CADENA, *args], env=env, stdin=subprocess.DEVNULL,  # noqa: S603
                          capture_output=True, text=True, timeout=WAIT * 4, check=False,
                          cwd=cwd)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def wait_until_gone(path: Path) -> None:
    """Wait (bounded) until ``path`` no longer exists."""
    deadline = time.monotonic() + WAIT
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not path.exists(), path


# -- the command line ---------------------------------------------------------------


def test_commands_sign_open_and_log_in_through_the_agent_without_the_passphrase(
        world: World, tmp_path: Path) -> None:
    ana, bruno = world.liaisons["ana"].profile, world.liaisons["bruno"].profile
    # Without an agent, as before: no passphrase, no key, exit 2.
    refused = cadena(world, "inbox", "--profile", "bruno", check=False)
    assert refused.returncode == 2, refused.stderr
    assert "passphrase" in refused.stderr
    for name in ("ana", "bruno"):
        cadena(world, "agent", "start", "--profile", name, passphrase=PASSPHRASE)
    try:
        for profile in (ana, bruno):
            path = socket_path(profile)
            assert path.stat().st_mode & 0o777 == 0o600
            assert path.parent.stat().st_mode & 0o777 == 0o700
        status = json.loads(cadena(world, "agent", "status", "--profile", "ana",
                                   "--json").stdout)
        assert status["running"]
        assert status["liaison"] == "ana"
        sent = json.loads(cadena(world, "send", "--to", "bruno", "--channel", "bilateral",
                                 "--text", "Passenger records BOG-MEX", "--evaluation", "B2",
                                 "--profile", "ana", "--json", "--quiet").stdout)
        inbox = cadena(world, "inbox", "--profile", "bruno", "--json").stdout
        assert sent["id"] in inbox
        out = tmp_path / "fetched"
        cadena(world, "fetch", sent["id"], "--out", str(out), "--profile", "bruno", "--quiet")
        texts = [f.read_bytes() for f in out.rglob("*") if f.is_file()]
        assert b"Passenger records BOG-MEX" in texts
        receipts = cadena(world, "receipts", sent["id"], "--profile", "ana", "--json").stdout
        assert "bruno" in receipts  # signed by bruno's agent, verified by ana
        # The agents' tokens stay in the agents: nothing was written to the profiles.
        assert not ana.session_path.exists()
        assert not bruno.session_path.exists()
        again = cadena(world, "agent", "start", "--profile", "ana", passphrase=PASSPHRASE,
                       check=False)
        assert again.returncode == 2
        assert "already runs" in again.stderr
        socket_path(ana).chmod(0o660)  # as if someone widened it: not used, not bypassed
        unsafe = cadena(world, "inbox", "--profile", "ana", check=False)
        assert unsafe.returncode == 2
        assert "mode 660" in unsafe.stderr
        socket_path(ana).chmod(0o600)
        rotate = cadena(world, "keys", "rotate", "--profile", "ana", check=False)
        assert rotate.returncode == 2
        assert "agent stop" in rotate.stderr
    finally:
        for name in ("ana", "bruno"):
            cadena(world, "agent", "stop", "--profile", name, check=False)
    for profile in (ana, bruno):
        wait_until_gone(socket_path(profile))
    after = cadena(world, "inbox", "--profile", "bruno", check=False)
    assert after.returncode == 2
    assert "passphrase" in after.stderr
    stopped = cadena(world, "agent", "status", "--profile", "bruno", check=False)
    assert stopped.returncode == 2


def test_a_wrong_passphrase_starts_no_agent(world: World) -> None:
    started = cadena(world, "agent", "start", "--profile", "ana", passphrase="not it",
                     check=False)
    assert started.returncode == 2
    assert "passphrase" in started.stderr
    assert not socket_path(world.liaisons["ana"].profile).exists()


def test_the_agent_imports_nothing_from_the_directory_it_is_started_in(
        world: World, tmp_path: Path) -> None:
    # A liaison who starts the agent in a directory of received files must not have
    # a planted ``client`` or ``crypto`` package run with the unlocked keys.
    marker = tmp_path / "imported-from-cwd"
    untrusted = plant(tmp_path / "untrusted", marker, ("client", "crypto", "nacl"))
    cadena(world, "agent", "start", "--profile", "bruno", passphrase=PASSPHRASE, cwd=untrusted)
    try:
        status = json.loads(cadena(world, "agent", "status", "--profile", "bruno",
                                   "--json").stdout)
        assert status["pid"] > 0
    finally:
        cadena(world, "agent", "stop", "--profile", "bruno", check=False)
    assert not marker.exists(), marker.read_text()


def test_an_agent_started_right_after_a_stop_starts(world: World) -> None:
    """``agent stop`` returns once the agent is gone: a start right after it works.

    (It returned as soon as the keys were wiped, while the old agent still listened for
    up to a second: a start then met that agent closing and failed, exit 4.)
    """
    profile = world.liaisons["bruno"].profile
    for _ in range(2):
        cadena(world, "agent", "start", "--profile", "bruno", passphrase=PASSPHRASE)
        cadena(world, "agent", "stop", "--profile", "bruno")
        assert not socket_path(profile).exists()


def test_a_terminated_agent_wipes_and_removes_its_socket(world: World) -> None:
    profile = world.liaisons["bruno"].profile
    cadena(world, "agent", "start", "--profile", "bruno", passphrase=PASSPHRASE)
    pid = json.loads(cadena(world, "agent", "status", "--profile", "bruno", "--json").stdout)
    os.kill(pid["pid"], signal.SIGTERM)
    wait_until_gone(socket_path(profile))


def test_the_agent_locks_and_exits_when_idle(world: World) -> None:
    profile = world.liaisons["ana"].profile
    cadena(world, "agent", "start", "--profile", "ana", "--lock-after", "0.05",
           passphrase=PASSPHRASE)
    wait_until_gone(socket_path(profile))  # three seconds unused: locked, gone
    assert find_agent(profile) is None


# -- the socket, in process -----------------------------------------------------------


@contextmanager
def serving(profile: Profile, path: Path, **options: Any) -> Iterator[AgentServer]:
    """An unlocked agent for ``profile`` served at ``path`` in a thread."""
    agent = KeyAgent(profile, idle=options.pop("idle", 900.0),
                     monotonic=options.pop("monotonic", time.monotonic))
    agent.unlock(PASSPHRASE)
    server = AgentServer(agent, path, **options)
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(WAIT)
        assert not thread.is_alive()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A private directory with a short path (a Unix socket path has ~100 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ag", dir="/tmp") as name:
        yield Path(name)


def test_serving_ends_only_after_the_answers_being_written(world: World,
                                                             short_dir: Path) -> None:
    """The agent's process ends when ``serve`` returns: an answer still being written then
    (``stop``'s own, answered after it set the flag) was cut off, and ``agent stop`` failed
    with "the connection closed in the middle of a message" (CI, once)."""
    path = short_dir / "a.sock"
    agent = KeyAgent(world.liaisons["ana"].profile, idle=900.0)
    agent.unlock(PASSPHRASE)
    server = AgentServer(agent, path)
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(path))
        request = json.dumps({"op": "status"}).encode()
        sock.sendall(struct.pack(">I", len(request)) + request[:3])  # half a request
        time.sleep(0.2)  # its connection is being answered
        server.stop()
        thread.join(2.5)  # longer than the loop takes to see the flag
        assert thread.is_alive(), "serve returned with a connection still being answered"
        sock.sendall(request[3:])
        (size,) = struct.unpack(">I", sock.recv(4))
        assert "ok" in json.loads(sock.recv(size))  # a whole answer, not a cut connection
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not path.exists()


def raw_call(path: Path, body: bytes, *, length: int | None = None) -> bytes:
    """Send ``body`` with a length prefix (``length`` to lie about it); the raw answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(path))
        sock.sendall(struct.pack(">I", len(body) if length is None else length) + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answer(raw: bytes) -> dict[str, Any]:
    """Decode a raw answer."""
    (size,) = struct.unpack(">I", raw[:4])
    decoded: dict[str, Any] = json.loads(raw[4:4 + size])
    return decoded


def test_a_peer_of_another_uid_is_refused(world: World, short_dir: Path) -> None:
    path = short_dir / "agent" / "agent.sock"
    with serving(world.liaisons["ana"].profile, path,
                 read_peer_uid=lambda _conn: os.getuid() + 1):
        with pytest.raises(AgentFailed, match="only its own user") as refused:
            AgentConnection(path).call({"op": "sign", "type": RECEIPT_TYPE, "payload": ""})
        assert refused.value.error == "forbidden"


def test_the_real_peer_uid_is_this_process(world: World, short_dir: Path) -> None:
    path = short_dir / "agent" / "agent.sock"
    with serving(world.liaisons["ana"].profile, path):
        assert AgentConnection(path).status()["liaison"] == "ana"


def test_a_socket_or_directory_others_could_reach_is_not_used(world: World) -> None:
    profile = world.liaisons["bruno"].profile
    path = socket_path(profile)
    with serving(profile, path):
        assert find_agent(profile) is not None
        path.chmod(0o666)
        with pytest.raises(AgentUnsafe, match="mode 666"):
            find_agent(profile)
        path.chmod(0o600)
        path.parent.chmod(0o755)
        with pytest.raises(AgentUnsafe, match="mode 755"):
            find_agent(profile)
        path.parent.chmod(0o700)
        assert find_agent(profile) is not None


def test_stop_wipes_the_keys_and_removes_the_socket(world: World, short_dir: Path) -> None:
    path = short_dir / "agent" / "agent.sock"
    with serving(world.liaisons["ana"].profile, path) as server:
        held = server.agent.keys()
        AgentConnection(path).stop()
        wait_until_gone(path)
        assert not server.agent.unlocked
        assert bytes(held.signing_key) == bytes(32)  # zeroed in place
        assert bytes(held.encryption_key) == bytes(32)


def test_idle_locks_wipes_and_ends_serving(world: World, short_dir: Path) -> None:
    path = short_dir / "agent" / "agent.sock"
    now = [0.0]
    with serving(world.liaisons["ana"].profile, path, idle=60.0,
                 monotonic=lambda: now[0]) as server:
        held = server.agent.keys()
        now[0] = 61.0  # a minute and a second without use
        wait_until_gone(path)
        assert bytes(held.signing_key) == bytes(32)


def test_bad_requests_get_errors_and_change_nothing(world: World, short_dir: Path) -> None:
    path = short_dir / "agent" / "agent.sock"
    with serving(world.liaisons["ana"].profile, path) as server:
        before = server.agent.keys().public.key_id
        cases = [
            raw_call(path, b"x" * 16, length=MAX_MESSAGE + 1),  # announced over the limit
            raw_call(path, b"{not json"),
            raw_call(path, b"[1, 2]"),
            raw_call(path, b'{"op": "export"}'),
            raw_call(path, b'{"op": "sign", "type": "%s", "payload": ""}'
                     % KEY_ROTATION_TYPE.encode()),
            raw_call(path, b'{"op": "sign", "type": "%s", "payload": "***"}'
                     % RECEIPT_TYPE.encode()),
            raw_call(path, b'{"op": "unwrap", "wrapped": "AA==", "packet_id": "x", '
                           b'"recipient_id": "bruno"}'),
            raw_call(path, b'{"op": "unwrap", "wrapped": "AA==", "packet_id": 1}'),
            raw_call(path, b"\x00\x01"),
        ]
        for raw in cases:
            decoded = answer(raw)
            assert decoded["ok"] is False, decoded
            assert decoded["error"], decoded
        assert server.agent.unlocked
        assert server.agent.keys().public.key_id == before


@pytest.fixture(scope="module")
def fuzzed(world: World) -> Iterator[Path]:
    """One agent for every example of the fuzz test (each must leave it as it was)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agf", dir="/tmp") as name, \
            serving(world.liaisons["bruno"].profile, Path(name) / "agent" / "agent.sock") \
            as server:
        yield server.path


@given(body=st.binary(max_size=256))
def test_arbitrary_bytes_never_get_a_signature(fuzzed: Path, body: bytes) -> None:
    decoded = answer(raw_call(fuzzed, body))
    assert decoded["ok"] is False or "signature" not in decoded
    assert "content_key" not in decoded
    assert AgentConnection(fuzzed).status()["unlocked"] is True


def test_more_connections_than_allowed_are_told_busy(world: World, short_dir: Path) -> None:
    path = short_dir / "agent" / "agent.sock"
    with serving(world.liaisons["ana"].profile, path, max_connections=1), \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
        holder.connect(str(path))  # holds the one slot without sending
        with pytest.raises(AgentFailed, match="too many") as busy:
            _call_until_busy(path)
        assert busy.value.error == "busy"


def _call_until_busy(path: Path) -> None:
    # The holder's connection is accepted asynchronously: retry until its slot is taken.
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        AgentConnection(path).status()
        time.sleep(0.05)


def test_no_answer_ever_carries_a_private_key(world: World, short_dir: Path) -> None:
    liaison = world.liaisons["ana"]
    secret = liaison.keys.secret_bytes()
    expanded = secret[:32] + liaison.keys.public.signing  # libsodium's 64-byte secret key
    forms = [form for part in (secret, secret[:32], secret[32:], expanded)
             for form in (part, part.hex().encode(), base64.b64encode(part),
                          base64.urlsafe_b64encode(part).rstrip(b"="))]
    path = short_dir / "agent" / "agent.sock"
    packet_id = uuid7()
    content = ContentKey(os.urandom(32))
    wrapped = wrap_content_key(content, packet_id, "ana", liaison.keys.public)
    requests: list[dict[str, Any]] = [
        {"op": "status"}, {"op": "public"}, {"op": "token"},
        *({"op": "sign", "type": kind, "payload": base64.b64encode(b"payload").decode()}
          for kind in (AUTH_CHALLENGE_TYPE, PACKET_HEADER_TYPE, STATEMENT_TYPE, RECEIPT_TYPE,
                       KEY_SHARE_TYPE, KEY_ROTATION_TYPE)),
        {"op": "unwrap", "wrapped": base64.b64encode(wrapped).decode(), "packet_id": packet_id,
         "recipient_id": "ana"},
        {"op": "export"}, {"op": "keys"}, {"op": "secret"},
    ]
    with serving(liaison.profile, path):
        raws = [raw_call(path, json.dumps(r).encode()) for r in requests]
        holder = AgentKeys(AgentConnection(path))
        assert holder.unwrap(wrapped, packet_id, "ana") == content
        verify_signature(liaison.keys.public.signing, RECEIPT_TYPE, b"r",
                         holder.sign(RECEIPT_TYPE, b"r"))
        raws.append(raw_call(path, b'{"op": "stop"}'))
    assert sum(answer(raw)["ok"] for raw in raws) == 10  # all but the refused ones answered
    for raw in raws:
        for form in forms:
            assert form not in raw
    assert isinstance(liaison.keys, LiaisonKeys)


def test_an_agent_that_answers_busy_before_reading_is_heard(
        short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent answers "busy" and closes without reading the request; a client whose
    request then meets a closed socket (EPIPE) still reads that answer, instead of
    calling the agent unreachable (seen in CI: the race of the test above)."""
    path = short_dir / "busy.sock"
    closed = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)

        def busy_agent() -> None:
            conn, _ = listener.accept()
            with conn:
                write_message(conn, {"ok": False, "error": "busy",
                                     "detail": "too many connections", "exit_code": 4})
            closed.set()

        real_write = agent_module.write_message

        def write_after_the_close(sock: socket.socket, message: dict[str, Any]) -> None:
            assert closed.wait(WAIT)
            real_write(sock, message)

        monkeypatch.setattr(agent_module, "write_message", write_after_the_close)
        thread = threading.Thread(target=busy_agent)
        thread.start()
        try:
            with pytest.raises(AgentFailed, match="too many") as busy:
                AgentConnection(path).status()
        finally:
            thread.join(WAIT)
    assert busy.value.error == "busy"
