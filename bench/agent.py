"""Benchmark a CLI command's key use with and without the local agent (issue 22, ADR 0017).

Not a test. Starts a real ``cadena-server`` (SQLite, temporary directory),
enrols two prosecutors whose key files are protected as ``cadena keys
generate`` protects them (``--kdf``, default ``sensitive``: Argon2id with
1 GiB), and runs the real ``cadena`` in child processes:

* **key file**: ``send`` (signs the statement and the header) and ``fetch``
  (unwraps the content key, signs a receipt) with ``CADENA_PASSPHRASE``
  set: every command runs the KDF to open the key file;
* **agent**: the same after ``cadena agent start`` for both profiles: the
  commands ask the agent for the signatures and the unwrap.

For each command and mode it prints the median and the worst wall time and
the peak resident set size of the ``cadena`` process itself (``wait4``'s
``ru_maxrss``), side by side, and the one-off cost of ``agent start``.

Usage: ``.venv/bin/python bench/agent.py [--runs 3] [--kdf sensitive|moderate|interactive]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client.local_server import bootstrap, local_server
from client.profile import Profile, ProfileConfig
from client.sdk import Client
from client.session import Credentials
from client.transparency import DirectoryAPI, wait_until_proven
from client.trust import TrustRoots, save_trust
from crypto import LiaisonKeys, LiaisonPublicKeys

PASSPHRASE = "bench agent passphrase"  # noqa: S105 - a throwaway profile's
CADENA = str(Path(sys.executable).with_name("cadena"))
KDF = ("sensitive", "moderate", "interactive")


@dataclass
class Run:
    """One ``cadena`` process: wall seconds, peak RSS in MiB, standard output."""

    seconds: float
    rss_mib: float
    stdout: str


def run_cadena(home: Path, *args: str, passphrase: bool) -> Run:
    """Run ``cadena`` and measure that process alone (``wait4``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENA_")}
    env["CADENA_HOME"] = str(home)
    if passphrase:
        env["CADENA_PASSPHRASE"] = PASSPHRASE
    out = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen([CADENA, *args], env=env, stdin=subprocess.DEVNULL,  # noqa: S603
                               stdout=out, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"cadena {' '.join(args)} failed: {stderr}")
    out.seek(0)
    return Run(seconds, usage.ru_maxrss / 1024, out.read().decode())


def _profile(home: Path, name: str, server: str, ledger_key: str,
             kdf: str) -> LiaisonPublicKeys:
    # The key file is made by `cadena keys generate` in its own process: a KDF run in this
    # process would raise its memory high-water mark, which every child forked from it
    # inherits (Linux keeps mm->hiwater_rss across fork and exec), spoiling ru_maxrss.
    made = json.loads(run_cadena(home, "keys", "generate", "--profile", name, "--kdf", kdf,
                                 "--json", passphrase=True).stdout)
    profile = Profile(name, home)
    profile.save_config(ProfileConfig(server, name, ledger_key))
    save_trust(profile, TrustRoots.parse(ledger_key, [], 0))
    return LiaisonPublicKeys.from_json({"sign": made["signing_public"],
                                        "box": made["encryption_public"]})


def world(tmp: Path, server_url: str, ledger_key: str, coord: LiaisonKeys, kdf: str) -> Path:
    """Enrol ana (CO) and bruno (MX) on a shared channel; their profiles in the home."""
    home = tmp / "home"
    now = datetime.now(UTC)
    with Client(server_url, credentials=Credentials("coord", coord)) as client:
        client.states.enrol("MX", "México", "Chapultepec Consensus 2012")
        for liaison_id, state in [("ana", "CO"), ("bruno", "MX")]:
            public = _profile(home, liaison_id, server_url, ledger_key, kdf)
            client.liaisons.enrol(liaison_id, state, liaison_id.title(), "prosecutor",
                                  keys=public)
            client.clearances.grant(liaison_id, "SECRET", now - timedelta(minutes=1),
                                    now + timedelta(days=1))
        client.channels.create("bilateral", "CO-MX", "bilateral", "RESTRICTED",
                               members=["ana", "bruno"])
        for liaison_id in ("ana", "bruno"):
            wait_until_proven(DirectoryAPI(client.session), liaison_id)
    return home


def measure(home: Path, runs: int, *, agent: bool) -> dict[str, list[Run]]:
    """``send`` by ana and ``fetch`` by bruno, ``runs`` times each."""
    found: dict[str, list[Run]] = {"send": [], "fetch": []}
    for index in range(runs):
        sent = run_cadena(home, "send", "--to", "bruno", "--channel", "bilateral", "--text",
                          f"bench {index}", "--evaluation", "B2", "--profile", "ana",
                          "--json", "--quiet", passphrase=not agent)
        found["send"].append(sent)
        packet = json.loads(sent.stdout)["id"]
        found["fetch"].append(run_cadena(home, "fetch", packet, "--out",
                                         str(home.parent / f"out-{agent}-{index}"),
                                         "--profile", "bruno", "--quiet",
                                         passphrase=not agent))
    return found


def main() -> None:
    """Print the figures (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kdf", choices=KDF, default="sensitive")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bag", dir="/tmp") as name:
        tmp = Path(name)
        coord = LiaisonKeys.generate()
        public = tmp / "coord.json"
        data = coord.public.to_json()
        public.write_text(json.dumps({"signing_public": data["sign"],
                                      "encryption_public": data["box"]}))
        ledger_key = bootstrap(tmp / "server", public)
        with local_server(tmp / "server") as server:
            home = world(tmp, server.url, ledger_key, coord, args.kdf)
            without = measure(home, args.runs, agent=False)
            starts = [run_cadena(home, "agent", "start", "--profile", who, passphrase=True)
                      for who in ("ana", "bruno")]
            try:
                with_agent = measure(home, args.runs, agent=True)
                memory = [_agent_memory(home, who) for who in ("ana", "bruno")]
            finally:
                for who in ("ana", "bruno"):
                    run_cadena(home, "agent", "stop", "--profile", who, passphrase=False)
    print(f"cadena commands, key file protected with Argon2id '{args.kdf}', {args.runs} runs "
          "each; time = wall seconds (median / worst), RSS = peak of the cadena process")
    print(f"{'command':8} {'key file: time':>18} {'RSS MiB':>9}   {'agent: time':>15} "
          f"{'RSS MiB':>9}")
    for command in ("send", "fetch"):
        a, b = without[command], with_agent[command]
        print(f"{command:8} {_times(a):>18} {max(r.rss_mib for r in a):>9.0f}   "
              f"{_times(b):>15} {max(r.rss_mib for r in b):>9.0f}")
    print(f"agent start (once per session): {_times(starts)} s, "
          f"RSS of the starting command {max(r.rss_mib for r in starts):.0f} MiB "
          "(the KDF runs in the agent process)")
    print(f"agent process RSS after the commands: peak (the KDF at start) "
          f"{max(m[0] for m in memory):.0f} MiB, now {max(m[1] for m in memory):.0f} MiB")


def _agent_memory(home: Path, who: str) -> tuple[float, float]:
    """The agent process's peak and current RSS in MiB (``/proc/<pid>/status``)."""
    pid = json.loads(run_cadena(home, "agent", "status", "--profile", who, "--json",
                                passphrase=False).stdout)["pid"]
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024)


def _times(runs: list[Run]) -> str:
    seconds = [r.seconds for r in runs]
    return f"{statistics.median(seconds):.2f} / {max(seconds):.2f}"


if __name__ == "__main__":
    main()
