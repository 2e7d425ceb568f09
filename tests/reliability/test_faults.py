"""Disk and database faults: clean 503/507 problems, nothing partial, recovery.

- PostgreSQL becomes unreachable mid-load (a TCP proxy on loopback between a
  real server process and PostgreSQL is cut, then restored): requests fail
  with 503 problems, nothing acknowledged is lost, no half-done action is
  left, and the service recovers by itself when the database returns.
- SQLite is locked by another connection (``BEGIN EXCLUSIVE``): 503 problems,
  refusals included, nothing written, and recovery once the lock is released.
- The blob store's disk fills up (a 1 MiB tmpfs mounted on the blob store, or
  ``ENOSPC`` injected at the blob store's ``os`` boundary when mounting is not
  permitted): a clean 507, no temporary file left, no ledger entry, and a
  submission that names the missing stream stores nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, make_url

from tests.app.conftest import World
from tests.app.test_packets_support import (
    assert_problem,
    exchange,
    ledger_size,
    packet_id,
    submit,
    upload,
)
from tests.conftest import fresh_database_url
from tests.reliability.harness import (
    Server,
    ServerConfig,
    assert_no_secrets,
    enrol_cast,
    new_coordinator,
    run_cli,
    secrets_of,
)
from tests.reliability.proxy import TcpProxy
from tests.reliability.traffic import Traffic, audit

PROBLEM = "application/problem+json"


def _is_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/unavailable")


# -- PostgreSQL out of reach -------------------------------------------------------------


@pytest.mark.postgres
def test_unreachable_postgres_gives_503_and_the_service_recovers(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = make_url(fresh_database_url("postgresql", request, tmp_path))
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    config = ServerConfig(data_dir=tmp_path / "data", database_url=proxied)
    coordinator, verifier_key = new_coordinator(config)
    server = Server(config, tmp_path / "server.log")
    server.start()
    try:
        cast = enrol_cast(server.url, coordinator, verifier_key, 3)
        traffic = Traffic(server.url, cast.pairs, cast.channel, packets_per_pair=12,
                          deadline=time.monotonic() + 60)
        traffic.start()
        time.sleep(1.5)
        proxy.cut()
        time.sleep(0.5)
        _is_unavailable(httpx.get(server.url + "/readyz", timeout=10))
        _is_unavailable(httpx.get(server.url + "/v1/packets", headers=cast.pairs[0][1].auth,
                                  timeout=10))
        time.sleep(1.5)
        proxy.restore()
        traffic.join(timeout=90)
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
        after = httpx.get(server.url + "/v1/packets", headers=cast.pairs[0][1].auth, timeout=10)
        assert after.status_code == 200, after.text
    finally:
        server.stop()
        proxy.stop()
    stats = traffic.stats
    errors = {s for s in stats.statuses if s >= 400}
    assert errors <= {503}, stats.statuses
    assert stats.statuses[503] > 0, "the cut was not seen"
    assert stats.errors == 0, "the server stopped answering"
    result = audit(url.render_as_string(False), config.data_dir / "blobs", stats.acks)
    assert "ok: every entry" in run_cli(ServerConfig(config.data_dir, url.render_as_string(False)),
                                        "ledger", "verify")
    assert_no_secrets(server.log_text(), secrets_of(cast.people(), config, ["PLAINTEXT-MARKER"]))
    print(f"\n[postgres cut] requests={stats.requests} 2xx={stats.ok} "
          f"503={stats.statuses[503]} entries={result.entries} packets={result.packets}")


# -- SQLite locked -----------------------------------------------------------------------


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=200")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_locked_sqlite_gives_503_changes_nothing_and_recovers(world: World) -> None:
    ex = exchange(world)
    sealed = ex.seal()
    for stream in sealed.streams:
        assert upload(world, ex.alice, stream).status_code == 201
    before = ledger_size(world)
    engine = world.client.app.state.engine  # type: ignore[attr-defined]
    event.listen(engine, "connect", _short_busy_timeout)
    engine.dispose()
    path = make_url(world.settings.resolved_database_url()).database
    lock = sqlite3.connect(str(path), isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        _is_unavailable(submit(world, ex.alice, sealed, upload_streams=False))
        _is_unavailable(world.client.get("/v1/packets", headers=ex.bob.auth))
        _is_unavailable(world.client.post("/v1/auth/challenge", json={"liaison_id": "bob"}))
        # A refusal that cannot be recorded is not served either.
        _is_unavailable(world.client.get("/v1/packets",
                                         headers={"Authorization": "Bearer cdn1.bad.token"}))
        _is_unavailable(world.client.get("/readyz"))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert ledger_size(world) == before
    response = submit(world, ex.alice, sealed, upload_streams=False)
    assert response.status_code == 201, response.text
    assert ledger_size(world) == before + 1


# -- the blob store's disk is full -------------------------------------------------------


class _BlobOs:
    """``os`` as the blob store sees it, with some functions replaced (nothing else patched)."""

    def __init__(self, **replaced: Any) -> None:
        self._replaced = replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name, getattr(os, name))


@contextlib.contextmanager
def _small_disk(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A 1 MiB tmpfs on ``directory``, or ENOSPC injected past 1 MiB if mounting is refused."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                                  str(directory)], capture_output=True, check=False,
                                 timeout=30).returncode == 0
    except OSError:  # no mount(8) here
        mounted = False
    if not mounted:
        def full_write(fd: int, data: Any) -> int:
            if os.fstat(fd).st_size + len(data) > 1024 * 1024:
                raise OSError(errno.ENOSPC, "No space left on device")
            return os.write(fd, data)

        monkeypatch.setattr("app.blobs.os", _BlobOs(write=full_write))
    try:
        yield "tmpfs" if mounted else "injected ENOSPC"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(directory)], check=False)


def test_full_blob_disk_gives_507_and_leaves_nothing(world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ex = exchange(world)
    blobs = world.settings.data_dir / "blobs"
    with _small_disk(blobs, monkeypatch) as how:
        before = ledger_size(world)
        sealed = ex.seal(attachments={"evidence.bin": os.urandom(1536 * 1024)})
        big = max(sealed.streams, key=len)
        response = upload(world, ex.alice, big)
        assert_problem(response, 507, "insufficient-storage")
        assert not [p for p in blobs.rglob("*") if p.is_file()], f"{how}: a file was left"
        assert ledger_size(world) == before
        for stream in sealed.streams:
            if stream is not big:
                assert upload(world, ex.alice, stream).status_code == 201
        response = submit(world, ex.alice, sealed, upload_streams=False)
        assert_problem(response, 422, "missing-stream")
        assert ledger_size(world) == before + len(sealed.streams) - 1
        small = ex.seal()
        response = submit(world, ex.alice, small)
        assert response.status_code == 201, f"{how}: {response.text}"
        assert response.json()["id"] == packet_id(small)


def test_full_disk_at_fsync_gives_507_and_leaves_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = world.liaison("alice", "CO")
    before = ledger_size(world)

    def full_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("app.blobs.os", _BlobOs(fsync=full_fsync))
    response = upload(world, alice, b"ciphertext that will not fit")
    assert_problem(response, 507, "insufficient-storage")
    blobs = world.settings.data_dir / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file()]
    assert ledger_size(world) == before
