"""Shared fixtures: hypothesis profiles and real, migrated databases.

Database-facing tests take the ``db_url`` fixture, which is parametrized over
SQLite and PostgreSQL. Each test gets a fresh database cloned from one that
was migrated once per session (a file copy on SQLite, ``CREATE DATABASE ...
TEMPLATE`` on PostgreSQL). PostgreSQL tests need ``CADENA_TEST_POSTGRES_URL``
(a database the tests may use to create and drop others); without it they are
skipped with that reason, and ``.ci/run`` fails on any such skip.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import make_url, text
from sqlalchemy.pool import NullPool

from app.ledger.engine import make_engine, normalize_url
from app.migrate import upgrade_to_head

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("soak", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

POSTGRES_URL = os.environ.get("CADENA_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]


_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,39}")


def database_name(kind: str) -> str:
    """A fresh PostgreSQL database name: ``<prefix>_<kind>_<12 hex>``.

    The prefix is ``CADENA_TEST_DB_PREFIX`` (default ``cadena``): ``.ci/run``
    gives each run its own, so that its clean-up after a killed run
    (``scripts/drop-test-databases``) drops that run's databases only.
    """
    prefix = os.environ.get("CADENA_TEST_DB_PREFIX", "cadena")
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"CADENA_TEST_DB_PREFIX must match {_PREFIX.pattern}, not {prefix!r}")
    return f"{prefix}_{kind}_{uuid.uuid4().hex[:12]}"


def _pg_admin_url() -> str:
    assert POSTGRES_URL is not None
    return normalize_url(POSTGRES_URL)


def _pg_exec(sql: str) -> None:
    engine = make_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _umask_kept() -> Iterator[None]:
    """Each test ends with the umask it began with (``cadena-server`` commands run
    in-process set the server's own, 077)."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file migrated to head, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a PostgreSQL database migrated to head, cloned for each test."""
    if not POSTGRES_URL:
        reason = "PostgreSQL tests need CADENA_TEST_POSTGRES_URL (set by .ci/run)"
        if os.environ.get("CADENA_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    name = database_name("tpl")
    _pg_exec(f'CREATE DATABASE "{name}"')
    upgrade_to_head(make_url(_pg_admin_url()).set(database=name).render_as_string(False))
    yield name
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Make a fresh migrated database on ``backend`` for one test; dropped afterwards."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "cadena.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    template_name: str = request.getfixturevalue("postgres_template")
    name = database_name("t")
    _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    request.addfinalizer(lambda: _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return make_url(_pg_admin_url()).set(database=name).render_as_string(False)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
    return fresh_database_url(request.param, request, tmp_path)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated PostgreSQL database URL (for multi-process tests)."""
    return fresh_database_url("postgresql", request, tmp_path)
