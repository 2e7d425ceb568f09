"""Seed files: the service keys' on-disk form (ledger, seal and witness keys)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import SEED_SIZE, KeyStoreError, SeedFileError, create_seed_key, load_seed_key


def test_created_key_is_private_base64_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.key"
    key = create_seed_key(path, "ledger key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == base64.b64encode(bytes(key)) + b"\n"
    assert bytes(load_seed_key(path)) == bytes(key)


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    first = create_seed_key(path)
    with pytest.raises(SeedFileError, match="a witness key already exists"):
        create_seed_key(path, "witness key")
    assert bytes(load_seed_key(path)) == bytes(first)


def test_raw_seed_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "raw.key"
    path.write_bytes(bytes(range(SEED_SIZE)))
    path.chmod(0o600)
    assert bytes(load_seed_key(path)) == bytes(range(SEED_SIZE))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "ledger.key"
    create_seed_key(path)
    path.chmod(mode)
    with pytest.raises(SeedFileError, match="chmod 600"):
        load_seed_key(path, "ledger key")


def test_missing_key_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SeedFileError, match="no seal key at"):
        load_seed_key(tmp_path / "absent.key", "seal key")


def test_link_is_not_followed_when_creating(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    os.symlink(target, tmp_path / "ledger.key")
    with pytest.raises((SeedFileError, OSError)):
        create_seed_key(tmp_path / "ledger.key")
    assert not target.exists()


@given(st.binary(max_size=80).filter(lambda b: len(b) != SEED_SIZE))
def test_malformed_content_fails_closed(tmp_path_factory: pytest.TempPathFactory,
                                        data: bytes) -> None:
    path = tmp_path_factory.mktemp("seed") / "bad.key"
    path.write_bytes(data)
    path.chmod(0o600)
    try:
        seed = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        seed = b""
    if len(seed) == SEED_SIZE:  # a valid base64 seed is a key, not an error
        assert bytes(load_seed_key(path)) == seed
        return
    with pytest.raises(SeedFileError) as caught:
        load_seed_key(path)
    assert isinstance(caught.value, KeyStoreError)
