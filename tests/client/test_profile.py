"""Profiles on disk: where they live, private files, and the import boundary of ``client``."""

from __future__ import annotations

import ast
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.audit import AuditState
from client.errors import ProfileError
from client.profile import Profile, ProfileConfig, cadena_home, profile_name, write_private

CLIENT = Path(__file__).resolve().parents[2] / "client"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would make ordinary files world-readable and writable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_home_comes_from_cadena_home_then_xdg() -> None:
    assert cadena_home({"CADENA_HOME": "/srv/c"}) == Path("/srv/c")
    assert cadena_home({"XDG_CONFIG_HOME": "/x"}) == Path("/x/cadena")
    assert cadena_home({}) == Path.home() / ".config" / "cadena"


def test_profile_name_from_option_then_environment() -> None:
    assert profile_name(None, {}) == "default"
    assert profile_name(None, {"CADENA_PROFILE": "mx"}) == "mx"
    assert profile_name("co", {"CADENA_PROFILE": "mx"}) == "co"
    for bad in ("../up", ".hidden", "a/b", "x" * 65):
        with pytest.raises(ProfileError):
            profile_name(bad, {})


@pytest.mark.usefixtures("loose_umask")
def test_files_are_private_even_with_a_loose_umask(tmp_path: Path) -> None:
    profile = Profile("p", tmp_path)
    profile.save_config(ProfileConfig(server="https://cadena.example", liaison="ana"))
    profile.save_key_file(b"{}")
    assert stat.S_IMODE(profile.path.stat().st_mode) == 0o700
    for path in (profile.config_path, profile.key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert profile.config().liaison == "ana"
    assert sorted(p.name for p in profile.path.iterdir()) == ["config.json", "keys.json"]


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "keys.json"
    write_private(target, b"first", replace=False)
    with pytest.raises(ProfileError, match="will not be overwritten"):
        write_private(target, b"second", replace=False)
    assert target.read_bytes() == b"first"


def test_a_temporary_file_left_by_a_killed_write_does_not_block_the_next(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    (tmp_path / f".config.json.{os.getpid()}.tmp").write_bytes(b"half")  # killed mid-write
    write_private(target, b"whole")
    assert target.read_bytes() == b"whole"


def test_two_threads_saving_one_file_both_succeed(tmp_path: Path) -> None:
    """The desk saves a settings file from two requests at once (a double click): no 500."""
    target = tmp_path / "desk-settings.json"
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def save(n: int) -> None:
        start.wait(10)
        try:
            for _ in range(20):
                write_private(target, f"{n}".encode())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    assert target.read_bytes() in {f"{n}".encode() for n in range(8)}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_damaged_audit_state_is_refused() -> None:
    with pytest.raises(ProfileError, match="--reset"):
        AuditState.from_json({"v": 1, "size": 3, "root": "zz"})


def test_client_never_imports_the_server() -> None:
    for path in sorted(CLIENT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("app", "migrations"), (path.name, name)
