"""Fixtures for certificate tests: the service of ``tests.app`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.app.conftest import world  # noqa: F401 - the fixture, re-exported
