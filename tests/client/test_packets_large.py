"""A 200 MB attachment through the real CLI and server in constant memory.

Client commands run as child processes so their peak RSS (``VmHWM``, read by
the child itself at exit) is theirs alone; the server's is its ``VmHWM``. Both
must stay far below the attachment's size.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.transfer import MIB, Measured, file_sha256, rig, run_cli, write_file

SIZE = 200 * MIB
PEAK_LIMIT = 300 * MIB


def _send(home: Path, source: Path, workdir: Path) -> Measured:
    sent = run_cli(home, ["send", "--profile", "ana", "--to", "bruno", "--channel", "bench",
                          "--text", "200 MB", "--attach", str(source), "--evaluation", "B2",
                          "--quiet", "--json", "--workdir", str(workdir)])
    assert sent.returncode == 0, sent.stderr
    return sent


def test_200_mb_attachment_round_trip_in_constant_memory(tmp_path: Path) -> None:
    source = tmp_path / "intercepts.bin"
    want = write_file(source, SIZE)
    with rig(tmp_path) as r:
        sent = _send(r.home, source, tmp_path)
        packet = json.loads(sent.stdout)["id"]
        got = run_cli(r.home, ["fetch", packet, "--profile", "bruno", "--out",
                               str(tmp_path / "got"), "--quiet", "--json"])
        assert got.returncode == 0, got.stderr
        server_peak = r.server.peak_rss()
    assert file_sha256(tmp_path / "got" / "attachments" / source.name) == want
    assert not list(tmp_path.glob("cadena-send-*")), "sealing left ciphertext behind"
    assert 0 < sent.peak_rss < PEAK_LIMIT, sent.peak_rss
    assert 0 < got.peak_rss < PEAK_LIMIT, got.peak_rss
    assert 0 < server_peak < PEAK_LIMIT, server_peak
