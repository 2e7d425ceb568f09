"""A lying server, seen from the client: every lie is caught, reported, and leaves nothing.

The server is real (``cadena-server serve``); the lies are made by an httpx
transport between the client and it, which rewrites chosen answers the way a
compromised server or a man in the middle would. Each ``cadena`` command must
exit 1 with a clear message, and ``fetch`` must leave no file behind.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from bench.transfer import Rig, rig
from client.cli import app
from client.cli.common import CliDeps
from client.transfer import Outgoing, send_packet
from crypto import Classification, HandlingCode, LiaisonKeys, PacketMeta

Rewrite = Callable[[httpx.Request, httpx.Response], bytes | None]


class _Body(httpx.SyncByteStream):
    """A response body served in pieces, as from a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), 65536):
            yield self._data[start:start + 65536]


class LyingTransport(httpx.BaseTransport):
    """Passes requests to the real server; ``rewrite`` may replace an answer's body."""

    def __init__(self, rewrite: Rewrite) -> None:
        self._inner = httpx.HTTPTransport()
        self._rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.read()
        body = self._rewrite(request, response)
        if body is None:
            body = response.content
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}
        return httpx.Response(response.status_code, headers=headers, stream=_Body(body))

    def close(self) -> None:
        self._inner.close()


@dataclass
class Scene:
    """A server with two packets from ana to bruno."""

    rig: Rig
    packet: str
    other: str


def _send(r: Rig, text: bytes, attachment: Path) -> str:
    meta = PacketMeta("bench", Classification.CONFIDENTIAL, HandlingCode.H0, "B2")
    with r.client("ana") as ana:
        sent = send_packet(ana, r.keys["ana"], "ana",
                           Outgoing(["bruno"], meta, io.BytesIO(text), [attachment]))
    return sent.created.id


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("tamper")
    attachment = root / "evidence.bin"
    attachment.write_bytes(bytes(range(256)) * 9000)
    with rig(root) as r:
        scene = Scene(r, _send(r, b"first", attachment), _send(r, b"second", attachment))
        _await_first_checkpoint(r)
        yield scene


def _await_first_checkpoint(r: Rig, timeout_s: float = 30.0) -> None:
    """The audit tests lie about a checkpoint: one must be signed (once a second) first."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{r.server.url}/v1/ledger/checkpoint").status_code != 200:
        if time.monotonic() > deadline:
            pytest.fail("the server signed no checkpoint in time")
        time.sleep(0.1)


def _cadena(scene: Scene, rewrite: Rewrite, *args: str) -> Result:
    with httpx.Client(transport=LyingTransport(rewrite)) as http:
        return CliRunner().invoke(app, list(args), obj=CliDeps(http=http, home=scene.rig.home),
                                  env={"CADENA_PASSPHRASE": "", "CADENA_PROFILE": ""})


def _fetch_lied(scene: Scene, tmp_path: Path, rewrite: Rewrite) -> Result:
    out = tmp_path / "out"
    result = _cadena(scene, rewrite, "fetch", scene.packet, "--profile", "bruno",
                     "--out", str(out), "--no-receipt")
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "verification failed" in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "a staging directory was left behind"
    return result


def _is(request: httpx.Request, suffix: str) -> bool:
    return request.method == "GET" and request.url.path.endswith(suffix)


def _json_edit(edit: Callable[[dict[str, Any]], None], suffix: str) -> Rewrite:
    def rewrite(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if not _is(request, suffix) or response.status_code != 200:
            return None
        body = response.json()
        edit(body)
        return json.dumps(body).encode()

    return rewrite


def test_modified_ciphertext_is_caught(scene: Scene, tmp_path: Path) -> None:
    def flip(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if not _is(request, "/streams/2"):
            return None
        data = bytearray(response.content)
        data[len(data) // 2] ^= 0x01
        return bytes(data)

    result = _fetch_lied(scene, tmp_path, flip)
    assert "stream 2" in result.stderr
    assert "TamperedChunk" in result.stderr


def test_truncated_ciphertext_is_caught(scene: Scene, tmp_path: Path) -> None:
    def cut(request: httpx.Request, response: httpx.Response) -> bytes | None:
        return response.content[:1000] if _is(request, "/streams/2") else None

    assert "TruncatedStream" in _fetch_lied(scene, tmp_path, cut).stderr


def test_swapped_wrapped_key_is_caught(scene: Scene, tmp_path: Path) -> None:
    with scene.rig.client("bruno") as bruno:
        other = bruno.session.get_json(f"/v1/packets/{scene.other}")

    def swap(body: dict[str, Any]) -> None:
        body["wrapped_key"] = other["wrapped_key"]

    result = _fetch_lied(scene, tmp_path, _json_edit(swap, f"/v1/packets/{scene.packet}"))
    assert "BadWrappedKey" in result.stderr


def test_misstated_metadata_is_caught(scene: Scene, tmp_path: Path) -> None:
    def lie(body: dict[str, Any]) -> None:
        body["classification"] = "RESTRICTED"

    result = _fetch_lied(scene, tmp_path, _json_edit(lie, f"/v1/packets/{scene.packet}"))
    assert "classification" in result.stderr


def test_substituted_sender_key_is_caught(scene: Scene, tmp_path: Path) -> None:
    forged = LiaisonKeys.generate().public.to_json()

    def substitute(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if not _is(request, "/v1/liaisons/ana/keys"):
            return None
        keys = response.json()
        for key in keys:
            key["signing_public"], key["encryption_public"] = forged["sign"], forged["box"]
        return json.dumps(keys).encode()

    result = _fetch_lied(scene, tmp_path, substitute)
    assert "directory serves keys" in result.stderr


def test_forged_header_signature_is_caught(scene: Scene, tmp_path: Path) -> None:
    def forge(body: dict[str, Any]) -> None:
        signature = bytearray(base64.b64decode(body["signature"]))
        signature[0] ^= 0x80
        body["signature"] = base64.b64encode(bytes(signature)).decode()

    result = _fetch_lied(scene, tmp_path, _json_edit(forge, f"/v1/packets/{scene.packet}"))
    assert "signature over the header does not verify" in result.stderr


def _audit(scene: Scene, rewrite: Rewrite) -> Result:
    result = _cadena(scene, rewrite, "audit", "verify", "--profile", "audra", "--reset",
                     "--quiet", "--json")
    assert result.exit_code == 1, result.output
    return result


def test_forged_checkpoint_is_caught(scene: Scene) -> None:
    def forge(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if not _is(request, "/v1/ledger/checkpoint"):
            return None
        lines = response.text.split("\n")
        lines[1] = str(int(lines[1]) + 1)
        return "\n".join(lines).encode()

    assert json.loads(_audit(scene, forge).stdout)["fault"] == "bad_checkpoint_signature"


def test_inconsistent_ledger_is_caught(scene: Scene) -> None:
    def rewrite_entry(request: httpx.Request, response: httpx.Response) -> bytes | None:
        if not _is(request, "/v1/ledger/entries"):
            return None
        page = response.json()
        entry = json.loads(base64.b64decode(page["entries"][3]["entry"]))
        entry["outcome"] = "granted" if entry["outcome"] != "granted" else "denied"
        raw = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        page["entries"][3]["entry"] = base64.b64encode(raw).decode()
        return json.dumps(page).encode()

    report = json.loads(_audit(scene, rewrite_entry).stdout)
    assert report["fault"] in ("modified_entry", "root_mismatch", "malformed_entry")
    assert report["first_bad_index"] == 3


def test_honest_server_passes_through_the_same_proxy(scene: Scene, tmp_path: Path) -> None:
    result = _cadena(scene, lambda _q, _r: None, "fetch", scene.packet, "--profile", "bruno",
                     "--out", str(tmp_path / "out"), "--no-receipt")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "message.txt").read_bytes() == b"first"


class _Breaking(httpx.SyncByteStream):
    """Serves the first ``cut`` bytes of a body, then the connection breaks."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._data, self._cut = data, cut

    def __iter__(self) -> Iterator[bytes]:
        yield self._data[:self._cut]
        raise httpx.ReadError("connection reset by peer")


class BreakingTransport(LyingTransport):
    """Breaks the first download of stream 2 midway; later (Range) requests go through."""

    def __init__(self) -> None:
        super().__init__(lambda _q, _r: None)
        self.ranges: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not _is(request, "/streams/2"):
            return response
        if "range" in request.headers:
            self.ranges.append(request.headers["range"])
            return response
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_Breaking(response.read(), 100_000))


def test_broken_download_resumes_with_a_range_request(scene: Scene, tmp_path: Path) -> None:
    transport = BreakingTransport()
    with httpx.Client(transport=transport) as http:
        result = CliRunner().invoke(
            app, ["fetch", scene.packet, "--profile", "bruno", "--out", str(tmp_path / "out"),
                  "--no-receipt"], obj=CliDeps(http=http, home=scene.rig.home),
            env={"CADENA_PASSPHRASE": "", "CADENA_PROFILE": ""})
    assert result.exit_code == 0, result.output
    assert transport.ranges == ["bytes=100000-"]
    assert (tmp_path / "out" / "attachments" / "evidence.bin").read_bytes() == \
        bytes(range(256)) * 9000
