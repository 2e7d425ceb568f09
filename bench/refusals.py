"""What refused requests cost PostgreSQL in the requests that follow them (ADR 0043).

Not a test. A server on a fresh PostgreSQL database (one worker) answers
``--requests`` retrieves, one at a time, first alone, then with a refused
retrieve (an id that does not exist) after every ``--every``-th, alternately,
``--rounds`` times each. Printed per run: the database backends' CPU per
retrieve and, when ``pg_stat_statements`` is loaded with ``track_planning``
on, the statements' calls, plans and planning time. A refusal ends its
transaction with a ``ROLLBACK``, after which psycopg forgot every prepared
statement of the connection (and the next executions were planned again)
unless the engine keeps them (``make_engine(..., keep_prepared=True)``).

    python bench/refusals.py --requests 300 --every 10 --rounds 2 [--rev 163072a]

``--rev``: serve that git revision (a temporary worktree) instead of this tree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg

from bench import _serverbound as sb
from bench.compare import _worktree
from bench.sidebyside import _remove_worktrees

MISSING = "01a2523f-61ea-71dc-a168-95b614876aca"
STATEMENTS = """SELECT sum(calls), sum(plans), sum(total_plan_time) FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)"""


def _planner(admin: psycopg.Connection) -> bool:
    """Whether ``pg_stat_statements`` can be read and reset (then reset it)."""
    try:
        admin.execute("SELECT pg_stat_statements_reset()")
    except psycopg.Error:
        return False
    return True


def run(args: argparse.Namespace) -> None:
    """Start the server, run the rounds, print a line per run."""
    config_args = argparse.Namespace(concurrency=1, duration=1.0,
                                     message_bytes=args.message_bytes,
                                     postgres_url=args.postgres_url)
    with ExitStack() as stack:
        extra: dict[str, str] = {}
        tree = None
        if args.rev:
            where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cadena-ref-")))
            stack.callback(_remove_worktrees, where)
            tree = _worktree(args.rev, where)
            extra = {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(tree)}
        config = stack.enter_context(sb.cadena(config_args, "postgresql", 1, extra, cwd=tree))
        admin = stack.enter_context(psycopg.connect(args.postgres_url, autocommit=True))
        http = stack.enter_context(httpx.Client(base_url=config.server.url, timeout=30.0))
        _rounds(args, config, admin, http)


def _rounds(args: argparse.Namespace, config: sb.Config, admin: psycopg.Connection,
            http: httpx.Client) -> None:
    """Alternate runs without and with refusals; a line each."""
    assert config.db is not None
    exchange, reader = config.exchange, config.exchange.recipients[0]
    name = config.db.conn.info.dbname
    planner = _planner(admin)
    if not planner:
        print("pg_stat_statements is not loaded: CPU only (shared_preload_libraries)")
    for run_no in range(2 * args.rounds):
        every = args.every if run_no % 2 else 0
        if planner:
            _planner(admin)
        before = sb.cpu_snapshot(config.db.backends())
        for n in range(args.requests):
            packet = exchange.submitted[n % len(exchange.submitted)]
            answer = http.get(f"/v1/packets/{packet}", headers=reader.auth)
            if answer.status_code != 200:
                raise RuntimeError(f"retrieve: {answer.status_code} {answer.text}")
            if every and n % every == 0:
                refused = http.get(f"/v1/packets/{MISSING}", headers=reader.auth)
                if refused.status_code not in (403, 404):
                    raise RuntimeError(f"refusal: {refused.status_code}")
        db_ms = sb.cpu_seconds(before, sb.cpu_snapshot(config.db.backends())) * 1e3
        line = (f"refusal every {every or '-':>3}: database CPU "
                f"{db_ms / args.requests:.2f} ms a retrieve")
        if planner:
            calls, plans, plan_ms = admin.execute(STATEMENTS, (name,)).fetchone() or (0, 0, 0)
            line += f"; {calls} statements, {plans} plans, planning {plan_ms:.0f} ms"
        print(line, flush=True)


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--message-bytes", type=int, default=4096)
    parser.add_argument("--rev", help="serve this git revision instead of this tree")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a database from which the benchmark may create and drop others")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
