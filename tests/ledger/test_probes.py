"""The 196 transparency-dev/merkle proof probes (tests/vectors/merkle-probes, Apache-2.0).

Every probe with ``wantErr: false`` must verify; every other one must fail
with a ledger ``VerificationError`` (a ``ProofError`` for broken
preconditions, a ``RootMismatchError`` for a wrong root) — never another
exception, never silently.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger import VerificationError, verify_consistency, verify_inclusion

PROBES = Path(__file__).parents[1] / "vectors" / "merkle-probes"
INCLUSION = sorted((PROBES / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((PROBES / "consistency").rglob("*.json"))


def load(path: Path) -> dict[str, Any]:
    """A probe with its base64 fields decoded."""
    probe: dict[str, Any] = json.loads(path.read_text())
    for key in ("root", "leafHash", "root1", "root2"):
        if key in probe:
            probe[key] = base64.b64decode(probe[key] or "")
    probe["proof"] = [base64.b64decode(item) for item in probe["proof"] or []]
    return probe


def name(path: Path) -> str:
    """A probe's id: its path below the probe directory."""
    return str(path.relative_to(PROBES))


def test_all_196_probes_are_present() -> None:
    assert len(INCLUSION) + len(CONSISTENCY) == 196


@pytest.mark.parametrize("path", INCLUSION, ids=name)
def test_inclusion_probe(path: Path) -> None:
    probe = load(path)
    def run() -> None:
        verify_inclusion(probe["leafHash"], probe["leafIdx"], probe["treeSize"], probe["proof"],
                         root=probe["root"])
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            run()
    else:
        run()


@pytest.mark.parametrize("path", CONSISTENCY, ids=name)
def test_consistency_probe(path: Path) -> None:
    probe = load(path)
    def run() -> None:
        verify_consistency(probe["size1"], probe["size2"], probe["root1"], probe["root2"],
                           proof=probe["proof"])
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            run()
    else:
        run()
