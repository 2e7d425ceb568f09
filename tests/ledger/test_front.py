"""The ledger's public front: what ``import ledger`` brings in, and what it does not."""

from __future__ import annotations

import subprocess
import sys

import pytest

import crypto
import custody
import ledger
import ledger.sql


@pytest.mark.parametrize("front", [ledger, ledger.sql, custody, crypto])
def test_every_public_name_of_a_front_exists(front: object) -> None:
    names = getattr(front, "__all__")  # noqa: B009
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(front, name), name


def test_importing_ledger_imports_neither_sqlalchemy_nor_crypto() -> None:
    """The client and the offline verifier import ``ledger``: no SQL engine, no packet crypto."""
    code = ("import sys, ledger; "
            "print(sorted(m for m in ('sqlalchemy', 'crypto', 'custody') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
