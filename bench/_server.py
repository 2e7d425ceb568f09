"""A real ``cadena-server`` in a child process, for benchmarks and multi-process tests.

Not a test and not part of the service: it drives the server the way an
operator does (``docs/operations.md``), through its command line and its
HTTP API, and never imports the server's code into the calling process.

- :func:`serve` starts ``cadena-server serve`` on a free loopback port with
  the given data directory, database and extra ``CADENA_*`` variables, waits
  until ``/readyz`` answers (and, with several workers, until every worker
  process is up), and always stops it: ``SIGTERM`` to the process group it
  created, then ``SIGKILL`` after a grace period. Server output goes to
  ``<data dir>/server.log``.
- :func:`bootstrap` runs ``cadena-server bootstrap`` with a coordinator's
  *public* keys and returns the ledger's note verifier key;
  :func:`ledger_verify` runs ``cadena-server ledger verify``.
- :func:`create_postgres_database` / :func:`drop_postgres_database` make a
  fresh, empty PostgreSQL database next to an administrative URL (``serve``
  migrates it).
- :class:`Liaison`, :func:`login` and :class:`Directory` log liaisons in with
  real Ed25519 challenge signatures and let the coordinator enrol states,
  liaisons (with clearances) and channels over the API.

Typical use (see ``bench/api.py`` and ``tests/app/test_multiworker.py``)::

    coordinator = Liaison("coord", LiaisonKeys.generate())
    env = server_env(data_dir, database_url)
    verifier_key = bootstrap(env, coordinator)
    with serve(env, workers=2) as server, httpx.Client(base_url=server.url) as http:
        directory = Directory(http, coordinator)
        directory.state("MX")
        alice = directory.liaison("alice", "CO")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import make_url

from crypto import AUTH_CHALLENGE_TYPE, LiaisonKeys, sign

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_GRACE = 15.0
_PROC = Path("/proc")
BENCH_TOKEN_TTL = 86_400
"""The longest token lifetime the settings accept: a long run never re-logs in."""
BENCH_ORIGIN = "bench.cadena.example/ledger"
"""The ledger origin of every benchmark server (bootstrap needs one chosen explicitly)."""


class ServerError(RuntimeError):
    """The server did not start, stopped unexpectedly, or a command failed."""


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command() -> list[str]:
    """``cadena-server`` as installed beside this interpreter (the venv), else on the PATH."""
    beside = Path(sys.executable).parent / "cadena-server"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cadena-server")
    if found is not None:
        return [found]
    return [sys.executable, "-c", "from app.cli import main; main()"]


def server_env(data_dir: Path, database_url: str | None = None, *, log_level: str = "warning",
               token_ttl: int = BENCH_TOKEN_TTL,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for server commands on ``data_dir`` (SQLite there unless ``database_url``).

    Every inherited ``CADENA_*`` variable is dropped so that the caller's own
    configuration cannot leak in; ``extra`` adds or overrides variables.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENA_")}
    env |= {"CADENA_DATA_DIR": str(data_dir), "CADENA_LOG_LEVEL": log_level,
            "CADENA_TOKEN_TTL_SECONDS": str(token_ttl), "CADENA_LEDGER_ORIGIN": BENCH_ORIGIN}
    if database_url:
        env["CADENA_DATABASE_URL"] = database_url
    env |= dict(extra or {})
    return env


def run_command(env: Mapping[str, str], args: Sequence[str],
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``cadena-server ARGS`` to completion with ``env``; output captured as text."""
    return subprocess.run([*server_command(), *args], env=dict(env), capture_output=True,
                          text=True, timeout=timeout, check=False)


@dataclass
class Liaison:
    """A liaison as a client drives them: id, private keys, and a token once logged in."""

    id: str
    keys: LiaisonKeys
    token: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header carrying this liaison's token."""
        if self.token is None:
            raise ServerError(f"{self.id} is not logged in")
        return {"Authorization": f"Bearer {self.token}"}


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode("ascii")


def bootstrap(env: Mapping[str, str], coordinator: Liaison, *, state: str = "CO",
              state_name: str = "Colombia") -> str:
    """Run ``cadena-server bootstrap`` for ``coordinator``; return the ledger verifier key."""
    data_dir = Path(env["CADENA_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    public = coordinator.keys.public
    keys_file = data_dir / "coordinator.pub.json"
    keys_file.write_text(json.dumps({"signing_public": b64(public.signing),
                                     "encryption_public": b64(public.encryption)}))
    done = run_command(env, ["bootstrap", "--state", state, "--state-name", state_name,
                             "--joining-note", "Chapultepec/2012", "--liaison", coordinator.id,
                             "--name", "First Coordinator", "--public-keys", str(keys_file)])
    if done.returncode != 0:
        raise ServerError(f"bootstrap failed ({done.returncode}): {done.stderr or done.stdout}")
    # The verifier key is the last line printed: <origin>+<hex key id>+<base64 key>.
    return done.stdout.strip().splitlines()[-1]


def ledger_verify(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cadena-server ledger verify`` against the database of ``env``."""
    return run_command(env, ["ledger", "verify"])


# -- the server process ----------------------------------------------------------------


@dataclass
class RunningServer:
    """A ``cadena-server serve`` child process and where to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    workers: int
    log_path: Path

    @property
    def pid(self) -> int:
        """The pid of the ``cadena-server`` process (the supervisor when ``workers > 1``)."""
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The pids of the processes serving requests (Linux ``/proc``).

        With one worker uvicorn serves in the main process; with several, the
        main process supervises children started by ``multiprocessing`` spawn.
        """
        if self.workers == 1:
            return [self.pid]
        pids: list[int] = []
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        for text in children.read_text().split() if children.exists() else []:
            try:
                cmdline = Path(f"/proc/{text}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(int(text))
        return pids

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the server wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Stop gracefully (``SIGTERM``), then kill the process group; return the exit code."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        # Workers are in the group the server leads; make sure none outlives it.
        _signal_group(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=STOP_GRACE)
        return self.process.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_ready(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerError(f"the server exited with {server.process.returncode}:\n"
                                  f"{server.log_tail()}")
            try:
                ready = http.get("/readyz").status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and (not _PROC.is_dir() or len(server.worker_pids()) >= server.workers):
                return
            time.sleep(0.1)
    raise ServerError(f"the server was not ready within {timeout:.0f} s:\n{server.log_tail()}")


@contextmanager
def serve(env: Mapping[str, str], *, workers: int = 1, start_timeout: float = START_TIMEOUT,
          cwd: Path | None = None) -> Iterator[RunningServer]:
    """Run ``cadena-server serve --workers N`` on a free loopback port until the block ends.

    The server is stopped on the way out whatever happens (its whole process
    group: workers included). ``cwd``: its working directory (default: ours).
    """
    data_dir = Path(env["CADENA_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    port = free_port()
    log_path = data_dir / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*server_command(), "serve", "--host", LOOPBACK, "--port", str(port),
             "--workers", str(workers)],
            env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
            start_new_session=True,  # its own process group, so stop() reaches every worker
        )
    server = RunningServer(process, f"http://{LOOPBACK}:{port}", workers, log_path)
    try:
        _wait_ready(server, start_timeout)
        yield server
    finally:
        server.stop()


# -- PostgreSQL ------------------------------------------------------------------------


def _libpq(url: str) -> str:
    # psycopg takes libpq URLs; SQLAlchemy's driver suffix is not part of one.
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_postgres_database(admin_url: str, prefix: str = "cadena_bench") -> str:
    """Create an empty database beside ``admin_url``; return its URL (``serve`` migrates it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _libpq(make_url(admin_url).set(database=name).render_as_string(hide_password=False))


def drop_postgres_database(admin_url: str, database_url: str) -> None:
    """Drop the database of ``database_url`` (its connections are ended first)."""
    name = make_url(database_url).database
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(str(name))))


# -- liaisons over the API -------------------------------------------------------------


def login(http: httpx.Client, person: Liaison) -> str:
    """Log ``person`` in with a real Ed25519 challenge signature; store and return the token."""
    challenge = _created(http.post("/v1/auth/challenge", json={"liaison_id": person.id}))
    signature = sign(person.keys.signing_key, AUTH_CHALLENGE_TYPE,
                     base64.b64decode(challenge["payload"]))
    token = _created(http.post("/v1/auth/token", json={
        "challenge_id": challenge["challenge_id"], "key_id": person.keys.public.key_id,
        "signature": b64(signature)}))
    person.token = str(token["token"])
    return person.token


def _created(response: httpx.Response) -> dict[str, Any]:
    if response.status_code not in (200, 201):
        raise ServerError(f"{response.request.method} {response.request.url.path}: "
                          f"{response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


class Directory:
    """The coordinator enrolling states, liaisons and channels over the API."""

    def __init__(self, http: httpx.Client, coordinator: Liaison) -> None:
        """Act as ``coordinator`` (logged in now if it has no token) through ``http``."""
        self.http = http
        self.coordinator = coordinator
        if coordinator.token is None:
            login(http, coordinator)

    def state(self, code: str) -> None:
        """Enrol a participating state."""
        _created(self.http.post("/v1/states", headers=self.coordinator.auth, json={
            "code": code, "name": f"State {code}", "joining_note": f"note {code}/2026"}))

    def liaison(self, liaison_id: str, state: str, *, role: str = "prosecutor",
                level: str = "SECRET", days: int = 30) -> Liaison:
        """Enrol a liaison with fresh keys, grant a clearance for ``days``, log them in."""
        person = Liaison(liaison_id, LiaisonKeys.generate())
        public = person.keys.public
        _created(self.http.post("/v1/liaisons", headers=self.coordinator.auth, json={
            "id": liaison_id, "state_code": state, "name": liaison_id.title(), "role": role,
            "signing_public": b64(public.signing), "encryption_public": b64(public.encryption)}))
        start = datetime.now(UTC) - timedelta(minutes=1)
        _created(self.http.post("/v1/clearances", headers=self.coordinator.auth, json={
            "liaison_id": liaison_id, "level": level, "valid_from": start.isoformat(),
            "valid_until": (start + timedelta(days=days)).isoformat()}))
        login(self.http, person)
        return person

    def channel(self, channel_id: str, members: Sequence[Liaison],
                min_clearance: str = "RESTRICTED") -> None:
        """Create a multilateral channel with ``members``."""
        _created(self.http.post("/v1/channels", headers=self.coordinator.auth, json={
            "id": channel_id, "name": f"Channel {channel_id}", "kind": "multilateral",
            "min_clearance": min_clearance, "members": [m.id for m in members]}))
