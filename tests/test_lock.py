"""The hash-pinned lock (``requirements/``, written by ``scripts/lock``) agrees with pyproject.toml.

A pin changed in pyproject.toml without running ``scripts/lock`` would leave
the README's install and CI on the old version: this fails until the lock is
regenerated (CONTRIBUTING.md, "The lock").
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A locked requirement: "name==version \" (markers after ';'), then its hash lines.
LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        pins[_name(name.split("[")[0])] = version.strip()
    return pins


def _locked(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {_name(name): version for name, version in LOCKED.findall(text)}


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = _pins(PROJECT["dependencies"])
EXTRAS = _pins([r for extra in ("dev", "bench")
                for r in PROJECT["optional-dependencies"][extra]])


@pytest.mark.parametrize(("lock", "pins"), [("runtime.txt", RUNTIME),
                                              ("dev.txt", RUNTIME | EXTRAS)])
def test_every_pin_of_pyproject_is_locked_at_its_version(lock: str, pins: dict[str, str]) -> None:
    locked = _locked(lock)
    assert {name: locked.get(name) for name in pins} == pins


def test_the_runtime_lock_holds_no_development_tool() -> None:
    assert not set(EXTRAS) & set(_locked("runtime.txt"))


@pytest.mark.parametrize("lock", ["runtime.txt", "dev.txt"])
def test_every_locked_package_is_pinned_and_hashed(lock: str) -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements" / lock).read_text())
    packages = [block for block in blocks if not block.startswith("#")]
    assert len(packages) == len(_locked(lock)) > 0
    for block in packages:
        assert LOCKED.match(block), block.splitlines()[0]
        assert "--hash=sha256:" in block, block.splitlines()[0]
