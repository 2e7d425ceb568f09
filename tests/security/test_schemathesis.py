"""Hostile input, generated: schemathesis against a real server's OpenAPI document.

A real ``cadena-server serve`` (SQLite) on loopback, bootstrapped with a
coordinator, an auditor and two prosecutors. Schemathesis reads
``/openapi.json`` and sends at least 1,000 generated requests (valid and
invalid: coverage, fuzzing and stateful phases, fixed seed, deterministic
generation) to every operation, each with a real bearer token of the right
role (``st_hooks.RoleTokens``). It must find no 5xx, every response must match
the documented schema and media type, and every error must be an RFC 9457
problem (``st_hooks.errors_are_problems``).

``GET /v1/events`` is left out of the generated run: a granted request opens a
server-sent events stream that lasts as long as the token, which a generated
request would wait on until it timed out. ``test_event_stream_by_hand`` covers
its parameters and its opening instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.harness import (
    REPO,
    Cast,
    Server,
    ServerConfig,
    assert_no_secrets,
    enrol_cast,
    new_coordinator,
    secrets_of,
)

MIN_REQUESTS = 1000
MAX_EXAMPLES = 7
CHECKS = ("not_a_server_error,response_schema_conformance,content_type_conformance,"
          "errors_are_problems,count_requests")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Cast]]:
    """A real server on SQLite with a coordinator, an auditor and two prosecutors."""
    root = tmp_path_factory.mktemp("live")
    config = ServerConfig(data_dir=root / "data", checkpoint_interval=0.5)
    coordinator, verifier_key = new_coordinator(config)
    server = Server(config, root / "server.log")
    server.start()
    try:
        yield server, enrol_cast(server.url, coordinator, verifier_key, 1)
    finally:
        server.stop()


def _raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, read the answer until the server closes or the timeout passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < 200:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_declared_oversized_body_is_refused_before_it_is_sent(
        live: tuple[Server, Cast]) -> None:
    server, cast = live
    # Headers only: a server that waited for the announced 100 MB would never answer.
    head = (f"POST /v1/packets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {cast.pairs[0][0].token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n").encode()
    answer = _raw_exchange(server.port, head)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"application/problem+json" in answer
    assert b"/problems/too-large" in answer


def test_event_stream_by_hand(live: tuple[Server, Cast]) -> None:
    server, cast = live
    auth = {"Authorization": f"Bearer {cast.pairs[0][1].token}"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for after in ("-5", "abc", str(2**63), "1e3"):
            response = http.get("/v1/events", params={"after": after}, headers=auth)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
        response = http.get("/v1/events", headers={"Authorization": "Bearer cdn1.x.y"})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        with http.stream("GET", "/v1/events", params={"after": "0"},
                         headers={**auth, "Last-Event-ID": "x" * 5000}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert next(stream.iter_bytes()).startswith(b"retry:")


def test_generated_requests_find_no_5xx_and_match_the_schema(
        live: tuple[Server, Cast], tmp_path: Path) -> None:
    server, cast = live
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"coordinator": cast.coordinator.token,
                                  "auditor": cast.auditor.token,
                                  "prosecutor": cast.pairs[0][0].token}))
    count = tmp_path / "requests.txt"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.security.st_hooks",
           "CADENA_ST_TOKENS": str(tokens), "CADENA_ST_COUNT": str(count),
           "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
         "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "20261122",
         "--generation-deterministic", "--workers", "2", "--no-color",
         "--request-timeout", "20", "--exclude-path", "/v1/events",
         "--report-dir", str(tmp_path / "report")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    lines = count.read_text().splitlines() if count.exists() else []
    statuses = Counter(int(line.rsplit(" ", 1)[1]) for line in lines)
    print(f"\n[schemathesis] requests={len(lines)} statuses={dict(sorted(statuses.items()))}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert len(lines) >= MIN_REQUESTS
    assert not [s for s in statuses if s >= 500]
    operations = {line.rsplit(" ", 1)[0] for line in lines}
    assert len(operations) >= 40, sorted(operations)
    assert_no_secrets(server.log_text(), secrets_of(cast.people(), server.config, []))
