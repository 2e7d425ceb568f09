"""Backup and restore of a real server's data: seconds and archive size (issue 22).

Starts ``cadena-server serve`` on a fresh data directory (SQLite, or a new
PostgreSQL database with ``--postgres ADMIN_URL``), sends ``--packets``
packets of ``--size`` bytes each, then times ``cadena-server backup`` (plain
and encrypted to an operator key) while the server still runs, and
``cadena-server restore`` (which also verifies the ledger) into a fresh one.
Prints figures; asserts nothing about speed.

    python bench/backup.py --packets 200 --size 262144
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._server import (
    Directory,
    Liaison,
    bootstrap,
    create_postgres_database,
    drop_postgres_database,
    run_command,
    serve,
    server_env,
)
from crypto import Classification, HandlingCode, LiaisonKeys, PacketMeta, seal_packet


def _send(http: httpx.Client, sender: Liaison, recipient: Liaison, size: int, n: int) -> None:
    meta = PacketMeta("ops", Classification("CONFIDENTIAL"), HandlingCode("H0"), "B2")
    sealed = seal_packet(sender.keys, sender.id, {recipient.id: recipient.keys.public}, meta,
                         f"packet {n}".encode(), {"a.bin": bytes([n % 256]) * size})
    for stream in sealed.streams:
        digest = hashlib.sha256(stream).hexdigest()
        response = http.put(f"/v1/blobs/{digest}", content=stream, headers=sender.auth)
        response.raise_for_status()
    envelope = base64.b64encode(sealed.envelope.to_bytes()).decode()
    http.post("/v1/packets", headers=sender.auth, json={"envelope": envelope}).raise_for_status()


def _timed(env: dict[str, str], args: list[str]) -> float:
    start = time.perf_counter()
    done = run_command(env, args, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"cadena-server {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    """Run the measurement and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100)
    parser.add_argument("--size", type=int, default=256 * 1024, help="attachment bytes")
    parser.add_argument("--postgres", help="admin URL: measure on fresh PostgreSQL databases")
    options = parser.parse_args()
    made: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)

        def database() -> str | None:
            if not options.postgres:
                return None
            made.append(create_postgres_database(options.postgres))
            return made[-1]

        try:
            env = server_env(base / "live", database())
            coordinator = Liaison("coord", LiaisonKeys.generate())
            bootstrap(env, coordinator)
            with serve(env) as server, httpx.Client(base_url=server.url, timeout=60) as http:
                directory = Directory(http, coordinator)
                directory.state("MX")
                sender = directory.liaison("sender", "CO")
                recipient = directory.liaison("recipient", "MX")
                directory.channel("ops", [sender, recipient])
                for n in range(options.packets):
                    _send(http, sender, recipient, options.size, n)
                operator = LiaisonKeys.generate()
                public = base / "operator.pub.json"
                public.write_text(json.dumps({
                    "signing_public": base64.b64encode(operator.public.signing).decode(),
                    "encryption_public": base64.b64encode(operator.public.encryption).decode()}))
                plain = _timed(env, ["backup", "--out", str(base / "plain.backup")])
                sealed = _timed(env, ["backup", "--out", str(base / "sealed.backup"),
                                      "--recipient", str(public)])
            restored = _timed(server_env(base / "restored", database()),
                              ["restore", str(base / "plain.backup")])
            size = (base / "plain.backup").stat().st_size
            kind = "PostgreSQL" if options.postgres else "SQLite"
            print(f"{kind}: {options.packets} packets of {options.size} bytes; "
                  f"archive {size / 2**20:.1f} MiB")
            print(f"backup (server running):   {plain:6.2f} s  "
                  f"({size / 2**20 / plain:.0f} MiB/s)")
            print(f"backup, encrypted:         {sealed:6.2f} s")
            print(f"restore (+ ledger verify): {restored:6.2f} s")
        finally:
            for url in made:
                drop_postgres_database(options.postgres, url)


if __name__ == "__main__":
    main()
