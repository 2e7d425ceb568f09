"""Test databases on a shared PostgreSQL server are named by run, and cleaned up by run.

``tests/conftest.py`` names the databases it makes ``<prefix>_<kind>_<12 hex>``,
the prefix coming from ``CADENA_TEST_DB_PREFIX`` (``cadena`` by default, so
developers see the names they always saw). ``.ci/run`` sets a prefix of its
own and, on exit, ``scripts/drop-test-databases`` drops that run's databases
and no one else's.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine
from tests.conftest import POSTGRES_URL, database_name

SCRIPT = Path(__file__).parents[1] / "scripts" / "drop-test-databases"


def test_developers_keep_the_names_they_know(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CADENA_TEST_DB_PREFIX", raising=False)
    assert re.fullmatch(r"cadena_tpl_[0-9a-f]{12}", database_name("tpl"))
    assert re.fullmatch(r"cadena_t_[0-9a-f]{12}", database_name("t"))


def test_a_run_names_its_databases_with_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENA_TEST_DB_PREFIX", "cadena_ci_1765000000_4242")
    assert re.fullmatch(r"cadena_ci_1765000000_4242_t_[0-9a-f]{12}", database_name("t"))


@pytest.mark.parametrize("prefix", ["", "Cadena", "cadena-ci", 'x"; DROP DATABASE y; --',
                                    "1cadena", "c" * 41])
def test_a_prefix_that_is_not_a_plain_name_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                     prefix: str) -> None:
    monkeypatch.setenv("CADENA_TEST_DB_PREFIX", prefix)
    with pytest.raises(ValueError, match="CADENA_TEST_DB_PREFIX"):
        database_name("t")


def _databases(names: list[str]) -> set[str]:
    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT datname FROM pg_database WHERE datname = ANY(:n)"),
                                {"n": names}).scalars().all()
    finally:
        engine.dispose()
    return set(rows)


def _exec(sql: str) -> None:
    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CADENA_TEST_POSTGRES_URL")
def test_cleanup_drops_this_runs_databases_and_no_one_elses() -> None:
    assert POSTGRES_URL is not None
    ours = f"cadena_cleanup_{uuid.uuid4().hex[:8]}"
    mine = [f"{ours}_{kind}_{uuid.uuid4().hex[:12]}" for kind in ("tpl", "t", "mig")]
    theirs = [f"{ours}9_t_{uuid.uuid4().hex[:12]}",      # a run whose prefix extends ours
              f"cadena_t_{uuid.uuid4().hex[:12]}",        # a developer's, default prefix
              f"{ours}_other_{uuid.uuid4().hex[:12]}"]    # not a test database's shape
    for name in mine + theirs:
        _exec(f'CREATE DATABASE "{name}"')
    try:
        done = subprocess.run(["bash", str(SCRIPT), POSTGRES_URL, ours], capture_output=True,
                              text=True, timeout=120, check=False, env=dict(os.environ))
        assert done.returncode == 0, done.stderr
        assert _databases(mine + theirs) == set(theirs)
    finally:
        for name in mine + theirs:
            _exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_cleanup_refuses_a_prefix_that_is_not_a_plain_name() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "postgresql://nowhere.invalid/x", "cadena_%"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "prefix" in done.stderr
