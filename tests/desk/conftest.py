"""Fixtures of the desk's tests: Chromium, a real server with liaisons, screens on desks.

See :mod:`tests.desk.harness`. Chromium is Debian's (``/usr/bin/chromium``,
installed by ``.ci/run``); Playwright never downloads a browser here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from client.desk.server import RunningDesk
from tests.desk.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Screen,
    World,
    enrolled_world,
    screenshot_dir,
)

ScreenFactory = Callable[..., Screen]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright, for one test module.

    Not for the session: while Playwright's sync API runs, its event loop is the
    thread's running loop, and a later test of another folder on the same xdist
    worker could not call ``asyncio.run``. pytest tears a module fixture down
    before the next module's test runs.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A real server process (SQLite) with a coordinator and prosecutors of CO and MX."""
    with enrolled_world(tmp_path_factory.mktemp("world")) as built:
        yield built


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this test's screenshots go (CADENA_DESK_SCREENSHOTS to keep them)."""
    return screenshot_dir(tmp_path / "shots")


@pytest.fixture
def screen(browser: Browser, shots: Path) -> Iterator[ScreenFactory]:
    """Makes browser screens on desks; each is closed (and checked) after the test."""
    made: list[Screen] = []

    def make(desk: RunningDesk, language: str = "en") -> Screen:
        opened = Screen(browser, desk, shots, language=language)
        made.append(opened)
        return opened

    yield make
    for opened in made:
        opened.close()
