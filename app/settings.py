"""Service settings: one pydantic-settings class, every variable prefixed ``CADENA_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REQUEST_THREADS = 2
"""A process's request threads unless ``CADENA_REQUEST_THREADS`` says otherwise (ADR 0037).

Not per core: a process runs Python on one core at a time whatever the
machine, and its cores are used by more worker processes. Two keep one
request's Python running while the other waits for the database.
"""


class Settings(BaseSettings):
    """Configuration of a Cadena server process, read from the environment."""

    model_config = SettingsConfigDict(env_prefix="CADENA_", extra="ignore")

    data_dir: Path = Field(default=Path(".cadena"),
                           description="Data directory (SQLite, blobs, keys)")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data directory"
    )
    blob_store: Literal["directory", "database"] = Field(
        default="directory",
        description="Where ciphertext blobs live: 'directory' (<data_dir>/blobs) or 'database' "
                    "(chunked rows in PostgreSQL, shared by several API hosts; refused on "
                    "SQLite)")
    ledger_origin: str = Field(
        default="",
        description="Checkpoint origin line, chosen once at bootstrap and recorded beside the "
                    "ledger key (<key>.origin); when unset, the recorded one; empty before "
                    "bootstrap")
    ledger_key_path: Path | None = Field(
        default=None, description="Ledger checkpoint signing key; default: <data_dir>/ledger.key"
    )
    ledger_cache_mb: int = Field(
        default=64, ge=0,
        description="Memory for the committed tree, per process, so proofs need no query "
                    "(64 bytes a ledger entry; 0: off)")
    checkpoint_interval: float = Field(default=1.0, gt=0, description="Seconds between checkpoints")
    gil_switch_interval_ms: float = Field(
        default=0.5, gt=0, le=100,
        description="Python's thread switch interval in a serving process (default 5 ms), "
                    "so a request thread back from the database waits less for the GIL")
    token_ttl_seconds: int = Field(default=600, gt=0, le=86400)
    challenge_ttl_seconds: int = Field(default=60, gt=0, le=3600)
    max_upload_bytes: int = Field(default=10 * 1024**3, gt=0)
    max_json_bytes: int = Field(default=1024 * 1024, gt=0)
    rate_login_per_minute: int = Field(default=60, gt=0, description="Per address and liaison")
    rate_submit_per_minute: int = Field(default=120, gt=0, description="Per liaison and process")
    ops_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Operations port: /healthz and the public checkpoint on a loop of their "
                    "own, answered during any burst (app/ops.py); off when unset")
    ops_host: str = Field(default="127.0.0.1", description="Address of the operations port")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Prometheus metrics port (app/metrics.py, no token, nothing in the "
                    "ledger); off when unset")
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics port")
    group_commit: bool = Field(
        default=False,
        description="Requests' transactions committed in groups, as savepoints of one "
                    "(docs/adr/0023-group-commit.md: off until a quiet machine shows its "
                    "open-loop p99 no worse)")
    kernel_timing_dir: Path | None = Field(
        default=None,
        description="Benchmarks only: the group committer writes its wait counters to "
                    "<dir>/<pid> after each group (bench/api.py --server-bound)")
    request_threads: int | None = Field(
        default=None, ge=1, le=256,
        description="Worker threads serving requests in one process; default 2, whatever "
                    "the cores (anyio's own default is 40): a process runs Python on one core "
                    "at a time, so more threads only contend for the interpreter lock, and a "
                    "request back from the database waits for it, on PostgreSQL holding the "
                    "ledger head; use --workers for more cores (docs/adr/0001, 0037)")
    max_requests_in_flight: int = Field(
        default=256, gt=0,
        description="Requests served at once by one process; past it, 503 at once")
    max_requests_per_liaison: int = Field(
        default=16, gt=0, description="Requests of one liaison in flight at once, per process")
    max_requests_per_address: int = Field(
        default=64, gt=0,
        description="Requests in flight at once from one address whose token is not yet "
                    "known to the process (or that has none), per process")
    max_streams_per_liaison: int = Field(
        default=4, gt=0, description="Open event streams of one liaison, per process")
    max_streams_in_flight: int = Field(
        default=512, gt=0, description="Open event streams, per process")
    max_uploads_per_liaison: int = Field(
        default=4, gt=0, description="Blob uploads of one liaison at once, per process")
    body_idle_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request body that sends nothing for this long: 408")
    upload_min_bytes_per_second: int = Field(
        default=1024, ge=0,
        description="A request body slower than this on average, past the grace time: 408")
    upload_rate_grace_seconds: float = Field(
        default=30.0, gt=0, description="Seconds before the minimum body rate applies")
    refusal_summary_seconds: float = Field(
        default=10.0, gt=0,
        description="Interval of the ledger's refusal summaries (one entry per caller each)")
    refusals_logged_per_interval: int = Field(
        default=10, ge=0,
        description="Refusals of unauthenticated callers logged one by one per address and "
                    "interval; past it they are counted into the summary")
    refusals_logged_per_liaison: int = Field(
        default=100, ge=0,
        description="An authenticated liaison's refusals logged one by one per interval; "
                    "past it they are counted into the summary")
    witness_quorum: int = Field(
        default=0, ge=0, le=32,
        description="Cosignatures a certificate's checkpoint needs (of the active witnesses)")
    certificate_seal_key_path: Path | None = Field(
        default=None, description="Certificate seal key; default: <data_dir>/certificate-seal.key")
    log_json: bool | None = Field(default=None, description="JSON logs; default: when not a TTY")
    log_level: str = "info"

    @model_validator(mode="after")
    def _recorded_origin(self) -> Settings:
        # A bootstrapped data directory names its own origin: serve never falls back
        # to an example default, which would sign checkpoints no witness recognises.
        if not self.ledger_origin:
            recorded = self.recorded_ledger_origin()
            if recorded is not None:
                self.ledger_origin = recorded
        return self

    def resolved_ledger_origin_path(self) -> Path:
        """Where bootstrap records the ledger's origin: beside the ledger key
        (``app.bootstrap.origin_path``, which this mirrors without importing the services)."""
        key = self.resolved_ledger_key_path()
        return key.with_name(key.name + ".origin")

    def recorded_ledger_origin(self) -> str | None:
        """The origin bootstrap recorded, or ``None`` (not bootstrapped, or before 0.1)."""
        try:
            return self.resolved_ledger_origin_path().read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None

    def origin_conflict(self) -> str | None:
        """Why this process must not sign with its origin, or ``None`` when it may.

        The origin is fixed at bootstrap: a different ``CADENA_LEDGER_ORIGIN`` would sign
        checkpoints that no pinned key verifies, and a bootstrapped data directory
        without a recorded origin (made before the origin was recorded) needs it named.
        """
        recorded = self.recorded_ledger_origin()
        if recorded is not None and self.ledger_origin != recorded:
            return (f"CADENA_LEDGER_ORIGIN={self.ledger_origin} differs from the origin fixed "
                    f"at bootstrap, {recorded} ({self.resolved_ledger_origin_path()}); "
                    "the origin never changes: unset CADENA_LEDGER_ORIGIN")
        if (recorded is None and not self.ledger_origin
                and self.resolved_ledger_key_path().exists()):
            return ("this data directory has a ledger key but records no ledger origin: set "
                    "CADENA_LEDGER_ORIGIN to the origin chosen at bootstrap (the part before "
                    "the first '+' of the ledger verifier key)")
        return None

    def resolved_request_threads(self) -> int:
        """The request threads of one process: the setting, else :data:`REQUEST_THREADS`."""
        return self.request_threads or REQUEST_THREADS

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<data_dir>/cadena.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cadena.db').resolve()}"

    def resolved_ledger_key_path(self) -> Path:
        """Where the ledger's checkpoint signing key lives."""
        return self.ledger_key_path or self.data_dir / "ledger.key"

    def resolved_seal_key_path(self) -> Path:
        """Where the certificate seal key lives."""
        return self.certificate_seal_key_path or self.data_dir / "certificate-seal.key"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
