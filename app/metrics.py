"""Prometheus metrics on a port of their own (``serve --metrics-port``), off unless set.

What a request costs is measured where it happens: :class:`RequestMetrics`, an
ASGI middleware, counts requests by method, **route template** and status and
observes their latency (two clock reads, one counter and one histogram bucket).
The label is the route's template (``/v1/packets/{packet_id}``) or
``unmatched``, never the raw path: a client sending random paths must not grow
the series without bound. What the ledger looks like is read from the database
when Prometheus scrapes (:class:`LedgerCollector`): ledger size, checkpoint
age, witness lag and pending certificates are facts of the database, not of a
process, and reading them at scrape time costs the request path nothing.

With one worker the serving process answers scrapes on a thread. With
``--workers N`` the supervisor (``app/serving.py``) does: the workers write
their counters to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode, a private directory in the data directory) and the
supervisor adds them up. The port is bound to loopback unless
``CADENA_METRICS_HOST`` says otherwise; it has no token and writes nothing to
the ledger (docs/operations.md, "Metrics", lists every series).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.models.certificate import CustodyCertificate
from app.models.ledger import LEDGER_TABLES
from app.models.witness import Witness

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CERTIFICATE_ROUTES = frozenset({"certificate.issue", "certificate.reissue"})
# Latency buckets from a cached answer (~1 ms) to a large transfer.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
           60.0, 300.0)

REQUESTS = Counter("cadena_http_requests", "HTTP requests answered, by route template",
                   ["method", "route", "status"])
LATENCY = Histogram("cadena_http_request_duration_seconds",
                    "Time from a request's arrival to its last response byte",
                    ["method", "route"], buckets=BUCKETS)
CERTIFICATE_ISSUE = Histogram(
    "cadena_certificate_issue_seconds",
    "Time to answer a certificate issue or reissue request (recorded, 202)",
    buckets=BUCKETS)


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app`` (add it outermost, so admission's refusals are counted too)."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then record it (also when the app raised: status 500)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")  # set by the router on the shared scope once matched
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(elapsed)
            if getattr(route, "name", None) in CERTIFICATE_ROUTES:
                CERTIFICATE_ISSUE.observe(elapsed)


class LedgerCollector(Collector):
    """Gauges read from the database at scrape time: the ledger, its witnesses, certificates."""

    def __init__(self, engine: Engine) -> None:
        """Read through ``engine`` (one short read transaction a scrape)."""
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges; ``cadena_metrics_database_up`` is 0 when the reads failed."""
        up = GaugeMetricFamily("cadena_metrics_database_up",
                               "1 when the scrape could read the database")
        try:
            gauges = list(self._read())
        except Exception:  # any driver error: say so, never fail the scrape
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges

    def _read(self) -> Iterator[Metric]:
        head, checkpoints = LEDGER_TABLES.head, LEDGER_TABLES.checkpoints
        with self.engine.connect() as conn:
            size = conn.execute(select(head.c.size)).scalar() or 0
            latest = conn.execute(select(checkpoints.c.size, checkpoints.c.signed_at)
                                  .order_by(checkpoints.c.seq.desc()).limit(1)).first()
            witnesses = conn.execute(select(Witness.name, Witness.last_size)
                                     .where(Witness.removed_at.is_(None))).all()
            pending, oldest = conn.execute(
                select(func.count(), func.min(CustodyCertificate.issued_at))
                .where(CustodyCertificate.sealed_at.is_(None))).one()
        now = datetime.now(UTC)
        yield _gauge("cadena_ledger_entries", "Entries in the audit ledger", size)
        signed = latest.size if latest is not None else 0
        yield _gauge("cadena_ledger_checkpoint_size", "Entries covered by the latest checkpoint",
                     signed)
        age = (now - _utc(latest.signed_at)).total_seconds() if latest is not None else None
        yield _gauge("cadena_ledger_checkpoint_age_seconds",
                     "Seconds since the latest checkpoint was signed (absent: none yet)", age)
        lag = GaugeMetricFamily("cadena_witness_lag_entries",
                                "Entries the latest checkpoint has beyond what the witness "
                                "cosigned", labels=["witness"])
        for name, last_size in witnesses:
            lag.add_metric([name], max(0, signed - last_size))
        yield lag
        yield _gauge("cadena_certificates_pending",
                     "Certificates recorded and not yet sealed (awaiting cosignatures)", pending)
        waited = (now - _utc(oldest)).total_seconds() if oldest is not None else 0
        yield _gauge("cadena_certificate_oldest_pending_seconds",
                     "How long the oldest unsealed certificate has waited", waited)


def _gauge(name: str, documentation: str, value: float | None) -> Metric:
    gauge = GaugeMetricFamily(name, documentation)
    if value is not None:
        gauge.add_metric([], value)
    return gauge


def _utc(moment: datetime) -> datetime:
    # SQLite hands naive datetimes back; the service stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class MetricsServer:
    """The scrape endpoint on its own thread; :meth:`stop` closes it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        """Listen on ``host:port`` now (``GET /metrics``, any path answers the same)."""
        self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve_in_process(engine: Engine, host: str, port: int) -> MetricsServer | None:
    """One serving process: scrapes on a thread of this process (``None`` under a supervisor)."""
    if os.environ.get(MULTIPROC_ENV):
        return None  # the supervisor answers scrapes for every worker
    REGISTRY.register(LedgerCollector(engine))
    return MetricsServer(host, port, REGISTRY)


class Supervision:
    """The supervisor's side of multiprocess mode: the shared directory and the scrapes."""

    def __init__(self, data_dir: Path, database_url: str, host: str, port: int) -> None:
        """Make the private directory (before any worker starts) and answer scrapes."""
        from sqlalchemy.pool import NullPool

        from app.ledger import make_engine

        self.directory = Path(tempfile.mkdtemp(prefix="metrics-", dir=data_dir))
        os.environ[MULTIPROC_ENV] = str(self.directory)  # inherited by every spawned worker
        self._engine = make_engine(database_url, poolclass=NullPool)  # a connection a scrape
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        registry.register(LedgerCollector(self._engine))
        self._server = MetricsServer(host, port, registry)

    @staticmethod
    def worker_exited(pid: int) -> None:
        """Forget a dead worker's live gauges (its counters stay in the totals)."""
        mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Stop answering scrapes and remove the directory."""
        self._server.stop()
        self._engine.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)

