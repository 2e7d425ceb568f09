"""Benchmark the prosecutor's desk: the inbox of 1,000 packets, and one large attachment.

Not a test. Starts ``cadena-server serve`` (SQLite, a temporary directory)
with a coordinator and two prosecutors (``tests/desk/harness.py``), and a
channel of the two. Then:

1. **Inbox**: Ana sends Bruno 1,000 small packets through the SDK; Bruno's
   desk (a ``cadena desk`` child process) renders ``/prosecutor/`` (the
   newest page, names, links to older pages) ``--renders`` times; prints
   p50 and p95 in ms. Target: p95 <= 200 ms.
2. **Large attachment**: Ana's desk (another child) takes a ``--size-mib``
   attachment as one raw request body (as the browser sends it), encrypting
   it as it arrives; the packet is sealed and sent from that; Bruno's desk
   saves it into his folder (verified, staged, renamed). Prints the time of
   each step and each desk's peak RSS (VmHWM, read from /proc while it runs,
   so it is the desk's own). Target: each desk under 150 MB.

Usage: ``.venv/bin/python bench/desk.py [--size-mib 1024] [--packets 1000] [--renders 40]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.local_server import free_port  # noqa: E402
from client.sdk import Client  # noqa: E402
from client.session import Credentials  # noqa: E402
from client.transfer import Outgoing, send_packet  # noqa: E402
from crypto import Classification, HandlingCode, PacketMeta  # noqa: E402
from tests.desk.harness import PASSPHRASE, World, enrolled_world  # noqa: E402

CHANNEL = "co-mx-bench"
BLOCK = 1 << 20
UNLIMITED = {"CADENA_RATE_SUBMIT_PER_MINUTE": "1000000",
             "CADENA_MAX_REQUESTS_PER_LIAISON": "1000", "CADENA_MAX_UPLOADS_PER_LIAISON": "1000"}
"""The benchmark's own sender must not be throttled (as bench/api.py)."""
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/launch/\S+)")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def desk_process(world: World, profile: str) -> Iterator[tuple[httpx.Client, int]]:
    """``cadena desk`` for ``profile`` as a child process, unlocked; (HTTP client, pid)."""
    port = free_port()
    env = {**os.environ, "CADENA_HOME": str(world.home), "COLUMNS": "400"}
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "cadena"), "desk", "--profile", profile, "--port",
         str(port), "--no-browser"], env=env, stdin=subprocess.PIPE,
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert process.stderr is not None
        link = None
        while link is None:
            line = process.stderr.readline()
            if not line:
                raise RuntimeError("the desk ended before printing its link")
            found = LINK.search(line)
            link = found.group(1) if found else None
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=900) as http:
            assert http.get(link.removeprefix(base)).status_code == 303
            token = _csrf(http, "/unlock")
            answer = http.post("/unlock", data={"csrf_token": token, "passphrase": PASSPHRASE,
                                                "next": "/prosecutor/"})
            assert answer.status_code == 303, answer.text
            http.headers["X-CSRF-Token"] = token
            yield http, process.pid
    finally:
        process.terminate()
        process.wait(30)


def _csrf(http: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', http.get(path).text)
    assert found, path
    return found.group(1)


def _channel(world: World) -> None:
    coord = world.liaisons["coord"]
    with Client(world.server.url, credentials=Credentials("coord", coord.keys)) as client:
        client.channels.create(CHANNEL, "Colombia - México", "bilateral", "RESTRICTED",
                               members=["ana", "bruno"])


def _fill_inbox(world: World, count: int) -> float:
    ana = world.liaisons["ana"]
    started = time.perf_counter()
    with Client(world.server.url, credentials=Credentials("ana", ana.keys)) as client:
        for n in range(count):
            meta = PacketMeta(channel_id=CHANNEL, classification=Classification.RESTRICTED,
                              handling=HandlingCode.H0,
                              evaluation="B2", case_reference=f"BENCH-{n:04d}")
            message = f"bench packet {n}".encode()
            send_packet(client, ana.keys, "ana", Outgoing(["bruno"], meta, io.BytesIO(message),
                                                          message_size=len(message)))
    return time.perf_counter() - started


def _body(size: int, digest: hashlib._Hash) -> Iterator[bytes]:
    block = bytearray(os.urandom(BLOCK))
    sent = 0
    while sent < size:
        piece = min(BLOCK, size - sent)
        block[:8] = sent.to_bytes(8, "big")  # every block differs
        chunk = bytes(block[:piece])
        digest.update(chunk)
        sent += piece
        yield chunk


def _peak(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--packets", type=int, default=1000)
    parser.add_argument("--renders", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadena-bench-desk-") as tmp, \
            enrolled_world(Path(tmp), extra=UNLIMITED) as world:
        _channel(world)
        filled = _fill_inbox(world, args.packets)
        print(f"inbox: {args.packets} packets sent through the SDK in {filled:.1f} s")
        with desk_process(world, "bruno") as (bruno, bruno_pid):
            times = []
            for _ in range(args.renders):
                started = time.perf_counter()
                page = bruno.get("/prosecutor/")
                times.append((time.perf_counter() - started) * 1000)
                assert page.status_code == 200
                assert "BENCH-" in page.text
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(f"inbox render (/prosecutor/, {args.packets} packets in the box, newest 50 "
                  f"shown): p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms over "
                  f"{args.renders} renders (target p95 <= 200 ms)")

            size = args.size_mib << 20
            folder = Path(tmp) / "saved"
            with desk_process(world, "ana") as (ana, ana_pid):
                base_ana = _status_mb(ana_pid, "VmRSS")
                digest = hashlib.sha256()
                started = time.perf_counter()
                answer = ana.post(f"/prosecutor/attachments?name=big-{args.size_mib}.bin",
                                  content=_body(size, digest),
                                  headers={"Content-Type": "application/octet-stream"})
                assert answer.status_code == 200, answer.text
                file_id = answer.json()["id"]
                received = time.perf_counter() - started
                started = time.perf_counter()
                answer = ana.post("/prosecutor/compose", data={
                    "channel": CHANNEL, "recipients": "bruno", "classification": "RESTRICTED",
                    "handling": "H0", "evaluation": "A1", "message": "the large one",
                    "attachment": file_id})
                assert answer.status_code == 303, answer.text
                packet_id = answer.headers["location"].rsplit("/", 1)[1]
                sent = time.perf_counter() - started
                ana_peak = _peak(ana_pid)
            base_bruno = _status_mb(bruno_pid, "VmRSS")
            assert bruno.post("/prosecutor/folder", data={"folder": str(folder)}
                              ).status_code == 303
            started = time.perf_counter()
            answer = bruno.post(f"/prosecutor/packets/{packet_id}/save")
            assert answer.status_code == 303, answer.text
            saved = time.perf_counter() - started
            bruno_peak = _peak(bruno_pid)
        path = next(folder.rglob(f"big-{args.size_mib}.bin"))
        check = hashlib.sha256()
        with path.open("rb") as source:
            for block in iter(lambda: source.read(BLOCK), b""):
                check.update(block)
        assert check.hexdigest() == digest.hexdigest(), "the saved file differs"
        mib = args.size_mib
        print(f"attachment {mib} MiB: received and encrypted by the desk in {received:.1f} s "
              f"({mib / received:.0f} MiB/s); sealed, uploaded and sent in {sent:.1f} s "
              f"({mib / sent:.0f} MiB/s); fetched, verified and saved in {saved:.1f} s "
              f"({mib / saved:.0f} MiB/s); the saved file is identical")
        print(f"desk peak RSS (VmHWM): sender {ana_peak:.1f} MB (after unlock "
              f"{base_ana:.1f} MB), recipient {bruno_peak:.1f} MB (before the save "
              f"{base_bruno:.1f} MB) (target < 150 MB)")


if __name__ == "__main__":
    main()
