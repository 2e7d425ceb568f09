"""Benchmark one large packet through the real CLI against a local server.

Not a test. Starts ``cadena-server serve`` (SQLite in a temporary directory),
enrols two prosecutors, then times ``cadena send --attach FILE`` and
``cadena fetch`` as child processes, and reports MB/s end to end and the peak
RSS (VmHWM) of the client processes and of the server process (and the
server's before the transfer), and the CPU seconds each side spent: on a busy
machine wall-clock figures are noise, CPU time much less so.
Targets: >= 150 MB/s on loopback, <= 100 MB RSS per process.

Usage: ``.venv/bin/python bench/transfer.py [--size-mib 1024] [--json out.json]``

``--blob-store database --postgres-url postgresql://postgres@127.0.0.1/postgres``:
the same on PostgreSQL (a database made for the run and dropped after it)
with the blobs in it (``CADENA_BLOB_STORE=database``, ``app.blob_db``), and
served by two hosts: sent through one, fetched through the other (the server
RSS figure is the larger of the two). Target there: >= 100 MB/s, <= 120 MB
server RSS.

:class:`Rig` (a bootstrapped server with two liaisons and their profiles) and
:func:`run_cli` (a measured ``cadena`` child process) are reused by the
large-file test in ``tests/client``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._server import create_postgres_database, drop_postgres_database  # noqa: E402
from client.local_server import LocalServer, bootstrap, local_server  # noqa: E402
from client.profile import Profile, ProfileConfig  # noqa: E402
from client.sdk import Client  # noqa: E402
from client.session import Credentials  # noqa: E402
from client.transparency import DirectoryAPI, wait_until_proven  # noqa: E402
from client.trust import TrustRoots, save_trust  # noqa: E402
from crypto import LiaisonKeys, save_keys  # noqa: E402

MIB = 1 << 20
# VmHWM of the process's own address space, read at exit. Not ru_maxrss: Linux
# carries the pre-exec high-water mark into it, so a child spawned (vfork) by a
# large parent, such as a pytest worker, would report the parent's size.
_MEASURED = ("import sys\n"
             "from client.cli import main\n"
             "try:\n    main()\n"
             "finally:\n"
             "    with open('/proc/self/status') as status:\n"
             "        peak = next(int(line.split()[1]) for line in status\n"
             "                    if line.startswith('VmHWM:'))\n"
             "    print(f'CADENA_PEAK_RSS_KB={peak}', file=sys.stderr)\n")


@dataclass
class Rig:
    """A bootstrapped local server, a channel, and liaisons with profiles under ``home``.

    ``other``: a second host on its own data directory and the same database
    (``rig(..., two_hosts=True)``); bruno's and carla's profiles point at it.
    """

    server: LocalServer
    home: Path
    channel: str
    keys: dict[str, LiaisonKeys]
    verifier_key: str
    other: LocalServer | None = None

    def client(self, liaison: str) -> Client:
        """An SDK client logged in as ``liaison``."""
        return Client(self.server.url, credentials=Credentials(liaison, self.keys[liaison]))


def _profile(home: Path, name: str, keys: LiaisonKeys, url: str, ledger_key: str) -> None:
    profile = Profile(name, home)
    profile.save_key_file(save_keys(keys, None, allow_plaintext=True))
    profile.save_config(ProfileConfig(server=url, liaison=name, ledger_key=ledger_key))
    save_trust(profile, TrustRoots.parse(ledger_key, [], 0))  # no witness in the rig


def _enrol(coord: Client, keys: dict[str, LiaisonKeys], channel: str) -> None:
    coord.states.enrol("MX", "Mexico", "note MX/2026")
    now = datetime.now(UTC)
    for name, state in (("ana", "MX"), ("bruno", "CO"), ("carla", "CO")):
        coord.liaisons.enrol(name, state, name.title(), "prosecutor", keys=keys[name].public)
        coord.clearances.grant(name, "SECRET", now - timedelta(minutes=1),
                               now + timedelta(days=1))
    coord.liaisons.enrol("audra", "CO", "Audra", "auditor", keys=keys["audra"].public)
    coord.clearances.grant("audra", "RESTRICTED", now - timedelta(minutes=1),
                           now + timedelta(days=1))
    coord.channels.create(channel, "Bench channel", "bilateral", "RESTRICTED",
                          members=["ana", "bruno", "carla"])


def second_host(first: Path, second: Path) -> None:
    """Make ``second`` a data directory for another API host of ``first``'s database:
    a copy of its keys and recorded origin (everything else is in the database)."""
    second.mkdir(mode=0o700)
    for path in first.iterdir():
        if path.is_file() and (path.suffix in (".key", ".origin")):
            shutil.copy2(path, second / path.name)  # keeps 0600


@contextmanager
def rig(root: Path, *, database_url: str | None = None, extra: dict[str, str] | None = None,
        two_hosts: bool = False) -> Iterator[Rig]:
    """Bootstrap and serve ``root/server``; enrol ana, bruno, carla (prosecutors) and audra.

    ``extra``: more server settings; ``two_hosts``: also serve ``root/server2`` (needs
    ``database_url``), the host bruno and carla use.
    """
    names = ("coord", "ana", "bruno", "carla", "audra")
    keys = {name: LiaisonKeys.generate() for name in names}
    public = root / "coord-public.json"
    data = keys["coord"].public.to_json()
    public.write_text(json.dumps({"signing_public": data["sign"],
                                  "encryption_public": data["box"]}), encoding="utf-8")
    verifier = bootstrap(root / "server", public, database_url=database_url, extra=extra)
    with local_server(root / "server", database_url=database_url, extra=extra) as server:
        with Client(server.url, credentials=Credentials("coord", keys["coord"])) as coord:
            _enrol(coord, keys, "bench")
            wait_until_proven(DirectoryAPI(coord.session), "audra")  # the last one enrolled
        home = root / "home"
        with contextlib.ExitStack() as stack:
            other = None
            if two_hosts:
                second_host(root / "server", root / "server2")
                other = stack.enter_context(local_server(root / "server2",
                                                         database_url=database_url, extra=extra))
            for name in names:
                host = other if other is not None and name in ("bruno", "carla") else server
                _profile(home, name, keys[name], host.url, verifier)
            yield Rig(server, home, "bench", keys, verifier, other)


@dataclass
class Measured:
    """A finished ``cadena`` child process: its result, wall time, peak RSS and CPU time."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int
    cpu_seconds: float = 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(database_url: str | None) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to ``database_url``'s
    database (0 on SQLite, or when the backends are not processes of this machine)."""
    if database_url is None:
        return 0.0
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()")]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += process_cpu(pid)
    return total


def run_cli(home: Path, args: Sequence[str], *, timeout: float = 1800,
            env: dict[str, str] | None = None) -> Measured:
    """Run ``cadena args...`` in a child process; measure its wall time and peak RSS."""
    full_env = {**os.environ, "CADENA_HOME": str(home), "CADENA_PASSPHRASE": "",
                "PYTHONPATH": str(ROOT), **(env or {})}
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    peak = 0
    for line in done.stderr.splitlines():
        if line.startswith("CADENA_PEAK_RSS_KB="):
            peak = int(line.split("=", 1)[1]) * 1024
    return Measured(done.returncode, done.stdout, done.stderr, seconds, peak, cpu)


def write_file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path`` (a random 1 MiB block, varied); sha256."""
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for i in range(0, size, MIB):
            block[:8] = i.to_bytes(8, "big")
            piece = bytes(block[:min(MIB, size - i)])
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _check(step: str, result: Measured) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{step} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def measure(size: int, root: Path, *, database_url: str | None = None,
            blob_store: str = "directory") -> dict[str, Any]:
    """Send and fetch one attachment of ``size`` bytes; return the figures.

    ``blob_store="database"``: two hosts, sent through one and fetched through the other.
    """
    source = root / "evidence.bin"
    want = write_file(source, size)
    two = blob_store == "database"
    with rig(root, database_url=database_url, extra={"CADENA_BLOB_STORE": blob_store},
             two_hosts=two) as r:
        hosts = [r.server] if r.other is None else [r.server, r.other]
        idle_server = max(h.peak_rss() for h in hosts)
        server_cpu = [sum(process_cpu(h.pid) for h in hosts)]
        database_cpu = [backends_cpu(database_url)]
        sent = run_cli(r.home, ["send", "--profile", "ana", "--to", "bruno", "--channel",
                                "bench", "--text", "bench", "--attach", str(source),
                                "--evaluation", "B2", "--quiet", "--json",
                                "--workdir", str(root)])
        _check("send", sent)
        server_cpu.append(sum(process_cpu(h.pid) for h in hosts))
        database_cpu.append(backends_cpu(database_url))
        packet = json.loads(sent.stdout)["id"]
        got = run_cli(r.home, ["fetch", packet, "--profile", "bruno", "--out",
                               str(root / "got"), "--quiet", "--json"])
        _check("fetch", got)
        server_cpu.append(sum(process_cpu(h.pid) for h in hosts))
        database_cpu.append(backends_cpu(database_url))
        server_peak = max(h.peak_rss() for h in hosts)
    if file_sha256(root / "got" / "attachments" / source.name) != want:
        raise SystemExit("the fetched file differs from the original")
    mb = size / 1e6
    return {"size_bytes": size, "blob_store": blob_store,
            "send_seconds": sent.seconds, "fetch_seconds": got.seconds,
            "send_mb_s": mb / sent.seconds, "fetch_mb_s": mb / got.seconds,
            "round_trip_mb_s": mb / (sent.seconds + got.seconds),
            "send_client_peak_rss_mb": sent.peak_rss / MIB,
            "fetch_client_peak_rss_mb": got.peak_rss / MIB,
            "server_peak_rss_mb": server_peak / MIB,
            "server_idle_peak_rss_mb": idle_server / MIB,
            "send_client_cpu_s": sent.cpu_seconds, "fetch_client_cpu_s": got.cpu_seconds,
            "send_server_cpu_s": server_cpu[1] - server_cpu[0],
            "fetch_server_cpu_s": server_cpu[2] - server_cpu[1],
            "send_database_cpu_s": database_cpu[1] - database_cpu[0],
            "fetch_database_cpu_s": database_cpu[2] - database_cpu[1]}


def _table(figures: dict[str, Any]) -> None:
    rows = [("size", f"{figures['size_bytes'] / MIB:.0f} MiB"),
            ("blob store", figures["blob_store"]),
            ("send (seal + upload + submit)", f"{figures['send_seconds']:.2f} s, "
                                              f"{figures['send_mb_s']:.0f} MB/s"),
            ("fetch (download + verify + decrypt + receipt)",
             f"{figures['fetch_seconds']:.2f} s, {figures['fetch_mb_s']:.0f} MB/s"),
            ("peak RSS, cadena send", f"{figures['send_client_peak_rss_mb']:.0f} MiB"),
            ("peak RSS, cadena fetch", f"{figures['fetch_client_peak_rss_mb']:.0f} MiB"),
            ("peak RSS, server", f"{figures['server_peak_rss_mb']:.0f} MiB"),
            ("peak RSS, server before the transfer (idle, after set-up)",
             f"{figures['server_idle_peak_rss_mb']:.0f} MiB"),
            ("CPU, send: client / server", f"{figures['send_client_cpu_s']:.2f} s / "
                                           f"{figures['send_server_cpu_s']:.2f} s"),
            ("CPU, fetch: client / server", f"{figures['fetch_client_cpu_s']:.2f} s / "
                                            f"{figures['fetch_server_cpu_s']:.2f} s"),
            ("CPU, database backends: send / fetch", f"{figures['send_database_cpu_s']:.2f} s / "
                                                     f"{figures['fetch_database_cpu_s']:.2f} s")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    """Parse arguments, run the benchmark, print the table (and write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="attachment size in MiB")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--blob-store", choices=("directory", "database"), default="directory",
                        help="database: PostgreSQL (--postgres-url), two hosts")
    parser.add_argument("--postgres-url", help="PostgreSQL admin URL (a database is made and "
                                               "dropped); needed by --blob-store database")
    args = parser.parse_args()
    if args.blob_store == "database" and not args.postgres_url:
        parser.error("--blob-store database needs --postgres-url")
    database_url = (create_postgres_database(args.postgres_url, "cadena_bench_transfer")
                    if args.postgres_url else None)
    try:
        with tempfile.TemporaryDirectory(prefix="cadena-bench-", dir=args.dir) as tmp:
            figures = measure(args.size_mib * MIB, Path(tmp), database_url=database_url,
                              blob_store=args.blob_store)
    finally:
        if database_url is not None:
            drop_postgres_database(args.postgres_url, database_url)
    _table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
