"""Benchmark crypto/: streaming seal/open of large files, and small-packet throughput.

Not a test. Prints a table; ``--json PATH`` also writes the figures.

* streaming encrypt / decrypt of one attachment, file to file, in a child
  process (so its peak RSS, VmHWM, is measured alone); decryption is timed
  without and with the fsync that ``decrypt_to_path`` does by default (the
  reference does no I/O at all, so the ratio uses the run without fsync);
* the reference: the same cryptographic work done by the library primitives
  directly on one in-memory buffer (ChaCha20-Poly1305 over the whole content,
  SHA-256 of plaintext and of ciphertext) and the ratio streaming / reference;
* seal + open of a 4 KB packet for 1 and 10 recipients, packets per second.

Usage: ``.venv/bin/python bench/crypto.py [--sizes 100 1024] [--chunk-size N] [--json out.json]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402

from crypto import (  # noqa: E402
    DEFAULT_CHUNK_SIZE,
    Classification,
    Envelope,
    HandlingCode,
    LiaisonKeys,
    PacketMeta,
    open_envelope,
    open_packet,
    seal_packet,
    seal_stream,
)
from streamio import ThreadedSha256, decrypt_to_path  # noqa: E402

MIB = 1 << 20
META = PacketMeta("bench", Classification.RESTRICTED, HandlingCode.H0, "A1")
SENDER = LiaisonKeys.from_secret_bytes(bytes(range(64)))
RECIPIENT = LiaisonKeys.from_secret_bytes(bytes(range(64, 128)))


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_encrypt(src: Path, work: Path, chunk_size: int) -> dict[str, float]:
    manifest, message = io.BytesIO(), io.BytesIO()
    start = time.perf_counter()
    with src.open("rb") as reader, (work / "attachment.ct").open("wb") as attachment:
        envelope = seal_stream(SENDER, "sender", {"recipient": RECIPIENT.public}, META,
                               io.BytesIO(b""), [("evidence.bin", reader)],
                               [manifest, message, attachment], chunk_size=chunk_size,
                               hasher=ThreadedSha256)  # as client.transfer seals
    elapsed = time.perf_counter() - start
    (work / "envelope.json").write_bytes(envelope.to_bytes())
    (work / "manifest.ct").write_bytes(manifest.getvalue())
    return {"seconds": elapsed, "peak_rss_mib": peak_rss_mib()}


def child_decrypt(work: Path, fsync: bool) -> dict[str, float]:
    envelope = Envelope.from_bytes((work / "envelope.json").read_bytes())
    start = time.perf_counter()
    with (work / "manifest.ct").open("rb") as manifest:
        opened = open_envelope(envelope, SENDER.public, "recipient", RECIPIENT, manifest)
    with (work / "attachment.ct").open("rb") as reader:
        decrypt_to_path(opened, 2, reader, work / "attachment.out", fsync=fsync)
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "peak_rss_mib": peak_rss_mib()}


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def reference(src: Path) -> tuple[float, float]:
    """Seconds for the same work on one buffer by the primitives: (encrypt, decrypt)."""
    data = src.read_bytes()
    aead = ChaCha20Poly1305(bytes(32))
    start = time.perf_counter()
    sealed = aead.encrypt(bytes(12), data, None)
    hashlib.sha256(data).digest()
    hashlib.sha256(sealed).digest()
    enc = time.perf_counter() - start
    del data
    start = time.perf_counter()
    plain = aead.decrypt(bytes(12), sealed, None)
    hashlib.sha256(sealed).digest()
    hashlib.sha256(plain).digest()
    return enc, time.perf_counter() - start


def make_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MIB)
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(block[:min(left, len(block))])
            left -= len(block)


def bench_size(size_mib: int, chunk_size: int, tmp_dir: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cadena-bench-", dir=tmp_dir) as tmp:
        work = Path(tmp)
        src = work / "evidence.bin"
        make_file(src, size_mib * MIB)
        enc = run_child("encrypt", str(src), tmp, str(chunk_size))
        dec = run_child("decrypt", tmp, "nofsync")
        synced = run_child("decrypt", tmp, "fsync")
        if hashlib.sha256(src.read_bytes()).digest() != hashlib.sha256(
                (work / "attachment.out").read_bytes()).digest():
            raise SystemExit("decrypted file differs")
        (work / "attachment.out").unlink()
        ref_enc, ref_dec = reference(src)
    mb = size_mib * MIB / 1e6
    return {
        "size_mib": size_mib, "chunk_size": chunk_size,
        "encrypt_mb_s": mb / enc["seconds"], "decrypt_mb_s": mb / dec["seconds"],
        "reference_encrypt_mb_s": mb / ref_enc, "reference_decrypt_mb_s": mb / ref_dec,
        "encrypt_ratio": ref_enc / enc["seconds"], "decrypt_ratio": ref_dec / dec["seconds"],
        "decrypt_fsync_mb_s": mb / synced["seconds"],
        "encrypt_peak_rss_mib": enc["peak_rss_mib"], "decrypt_peak_rss_mib": dec["peak_rss_mib"],
    }


def bench_packets(recipients: int, seconds: float = 2.0) -> float:
    keys = {f"r{i}": LiaisonKeys.from_secret_bytes(bytes([i]) * 64) for i in range(recipients)}
    publics = {rid: k.public for rid, k in keys.items()}
    body = os.urandom(4096)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sealed = seal_packet(SENDER, "sender", publics, META, body)
        open_packet(sealed, SENDER.public, "r0", keys["r0"])
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1024], help="MiB")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--json", type=Path, help="also write results here")
    parser.add_argument("--tmp-dir", type=Path, help="where temporary files go (e.g. /dev/shm)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = (child_encrypt(Path(rest[0]), Path(rest[1]), int(rest[2]))
                  if kind == "encrypt" else child_decrypt(Path(rest[0]), rest[1] == "fsync"))
        print(json.dumps(result))
        return
    rows = [bench_size(size, args.chunk_size, args.tmp_dir) for size in args.sizes]
    packets = {str(n): bench_packets(n) for n in (1, 10)}
    print(f"chunk size {args.chunk_size} bytes; files in {args.tmp_dir or tempfile.gettempdir()};"
          " reference = one-buffer primitives")
    print(f"{'size':>8} {'op':>7} {'MB/s':>8} {'ref MB/s':>9} {'ratio':>6} {'peak RSS':>9}")
    for row in rows:
        for op in ("encrypt", "decrypt"):
            print(f"{row['size_mib']:>5}MiB {op:>7} {row[op + '_mb_s']:>8.0f} "
                  f"{row['reference_' + op + '_mb_s']:>9.0f} {row[op + '_ratio']:>6.0%} "
                  f"{row[op + '_peak_rss_mib']:>6.1f}MiB")
    for row in rows:
        print(f"{row['size_mib']:>5}MiB decrypt to a durable file (fsync before rename): "
              f"{row['decrypt_fsync_mb_s']:.0f} MB/s")
    for n, rate in packets.items():
        print(f"4 KB packet seal+open, {n:>2} recipient(s): {rate:8.0f} packets/s")
    if args.json:
        args.json.write_text(json.dumps({"streaming": rows, "packets_per_s": packets}, indent=2))


if __name__ == "__main__":
    main()
