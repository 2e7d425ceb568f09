"""Prometheus metrics on their own loopback port, scraped from a real ``cadena-server serve``."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench._server import Liaison, bootstrap, free_port, login, run_command, serve, server_env
from crypto import LiaisonKeys

pytestmark = pytest.mark.timeout(300)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample the metrics port shows now, keyed by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what  # a hang, not a speed target
        time.sleep(0.2)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if int(hexport, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def _server(tmp_path: Path, database_url: str | None = None) -> tuple[dict[str, str], Liaison,
                                                                     int]:
    metrics_port = free_port()
    env = server_env(tmp_path / "data", database_url,
                     extra={"CADENA_METRICS_PORT": str(metrics_port)})
    coordinator = Liaison("coord", LiaisonKeys.generate())
    bootstrap(env, coordinator)
    return env, coordinator, metrics_port


def test_one_worker_counts_requests_by_route_template_and_reads_the_ledger(
        tmp_path: Path) -> None:
    env, coordinator, port = _server(tmp_path)
    with serve(env) as server, httpx.Client(base_url=server.url) as http:
        token = login(http, coordinator)
        for _ in range(3):
            assert http.get("/v1/states", headers={"Authorization": f"Bearer {token}"}
                            ).status_code == 200
        assert http.get("/v1/liaisons/nobody-1234").status_code == 401
        assert http.get("/no/such/path/secret-looking-4242").status_code == 404
        assert http.get("/metrics").status_code == 404  # not on the API's port
        wait_for(lambda: (value(scrape(port), "cadena_ledger_checkpoint_size") or 0) > 0,
                 "a checkpoint")
        samples = scrape(port)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    assert value(samples, "cadena_http_requests_total", method="GET", route="/v1/states",
                 status="200") == 3
    assert value(samples, "cadena_http_requests_total", method="GET",
                 route="/v1/liaisons/{liaison_id}", status="401") == 1
    assert value(samples, "cadena_http_requests_total", method="GET", route="unmatched",
                 status="404") == 2  # the made-up path and /metrics on the API's port
    assert not any("secret-looking" in v or "nobody-1234" in v
                   for _, labels in samples for _, v in labels)  # no raw path as a label
    assert value(samples, "cadena_http_request_duration_seconds_count", method="GET",
                 route="/v1/states") == 3
    assert value(samples, "cadena_http_request_duration_seconds_bucket", method="GET",
                 route="/v1/states", le="+Inf") == 3
    entries = value(samples, "cadena_ledger_entries")
    assert entries is not None
    assert entries >= 5  # bootstrap's entries, the login, three listings
    age = value(samples, "cadena_ledger_checkpoint_age_seconds")
    assert age is not None
    assert age >= 0
    assert value(samples, "cadena_certificates_pending") == 0
    assert value(samples, "cadena_metrics_database_up") == 1
    assert value(samples, "cadena_certificate_issue_seconds_count") == 0


def test_two_workers_add_up_in_the_supervisors_scrape(
        tmp_path: Path, postgres_url: str) -> None:
    env, _, port = _server(tmp_path, postgres_url)
    with serve(env, workers=2) as server:
        for _ in range(20):  # a connection each: the kernel spreads them over both workers
            with httpx.Client(base_url=server.url) as http:
                assert http.get("/healthz").status_code == 200
        samples = scrape(port)
        directory = next((tmp_path / "data").glob("metrics-*"))
        assert len(list(directory.glob("*.db"))) >= 2  # both workers wrote their counts
    assert value(samples, "cadena_http_requests_total", method="GET", route="/healthz",
                 status="200") == 20
    assert (value(samples, "cadena_ledger_entries") or 0) > 0
    assert not directory.exists()  # removed when the supervisor stops


def test_a_busy_metrics_port_stops_serve_before_it_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = run_command(server_env(tmp_path / "data"),
                           ["serve", "--port", str(free_port()), "--metrics-port", str(busy)],
                           timeout=60)
    assert done.returncode == 1
    assert f"127.0.0.1:{busy} is already in use" in done.stderr
    assert "serving on" not in done.stderr


def test_without_a_metrics_port_nothing_listens_and_no_metrics_are_kept(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data")
    with serve(env) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        assert not list((tmp_path / "data").glob("metrics-*"))
