"""The serving process's set-up (``app.worker``): the GIL switch interval it runs with."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import get_settings
from app.worker import worker_app


@pytest.fixture
def switch_interval(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A worker set-up that builds no app and leaves logging alone; the interval restored."""
    monkeypatch.setattr("app.logging.configure_logging", lambda **_: None)
    monkeypatch.setattr("app.main.create_app", lambda settings: None)
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)
    get_settings.cache_clear()


def test_a_worker_switches_threads_every_half_millisecond_by_default(
        switch_interval: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENA_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    worker_app()
    assert sys.getswitchinterval() == pytest.approx(0.0005)


def test_the_switch_interval_is_a_setting(
        switch_interval: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CADENA_GIL_SWITCH_INTERVAL_MS", "2")
    get_settings.cache_clear()
    worker_app()
    assert sys.getswitchinterval() == pytest.approx(0.002)
