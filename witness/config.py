"""The witness's configuration file and its signing key file.

Configuration (TOML, written by ``cadena witness init``)::

    name = "witness.mx.example/w1"     # the cosigner key name (C2SP tlog-cosignature)
    key_file = "witness.key"           # relative paths are relative to this file
    state_file = "witness.db"

    [[logs]]
    key = "cadena.example/ledger+1a2b3c4d+AQ..."   # the log's note verifier key

Each ``[[logs]]`` entry trusts one log key; the key name is the checkpoint
origin. Several entries may share an origin (a log rotating its key): a
checkpoint is accepted when any one of them verifies it.

The key file is a seed file of :mod:`crypto.seedfile`: the Ed25519 seed in
standard base64, mode 0600, refused when group or others may read it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from crypto import SEED_SIZE, SeedFileError, create_seed_key, load_seed_key
from ledger import ALG_ED25519, CosignatureSigner, NoteFormatError, NoteVerifier

CONFIG_NAME = "witness.toml"


class WitnessConfigError(Exception):
    """The configuration or the key file is missing, malformed or unsafe."""


@dataclass(frozen=True)
class WitnessConfig:
    """A parsed witness configuration, paths resolved."""

    name: str
    key_file: Path
    state_file: Path
    logs: Mapping[str, tuple[NoteVerifier, ...]]

    def signer(self) -> CosignatureSigner:
        """The cosigner, with the key read from :attr:`key_file`."""
        return CosignatureSigner(self.name, load_key(self.key_file))


def _str(table: Mapping[str, Any], field: str) -> str:
    value = table.get(field)
    if not isinstance(value, str) or not value:
        raise WitnessConfigError(f"{field!r} must be a non-empty string")
    return value


def _log_keys(entries: Any) -> dict[str, tuple[NoteVerifier, ...]]:
    if not isinstance(entries, list):
        raise WitnessConfigError("'logs' must be an array of tables ([[logs]])")
    logs: dict[str, list[NoteVerifier]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise WitnessConfigError("each [[logs]] entry must be a table")
        try:
            verifier = NoteVerifier.from_string(_str(entry, "key"))
        except NoteFormatError as exc:
            raise WitnessConfigError(f"bad log key: {exc}") from exc
        if verifier.alg != ALG_ED25519:
            raise WitnessConfigError(f"log key {verifier.name} is not a note key (type 0x01)")
        logs.setdefault(verifier.name, []).append(verifier)
    return {origin: tuple(keys) for origin, keys in logs.items()}


def parse_config(text: str, base: Path) -> WitnessConfig:
    """Parse a configuration's TOML text; relative paths are taken from ``base``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WitnessConfigError(f"configuration is not TOML: {exc}") from exc
    name = _str(data, "name")
    try:
        CosignatureSigner(name, SigningKey(bytes(SEED_SIZE)))
    except NoteFormatError as exc:
        raise WitnessConfigError(f"bad witness name: {exc}") from exc
    return WitnessConfig(
        name=name,
        key_file=base / _str(data, "key_file"),
        state_file=base / _str(data, "state_file"),
        logs=_log_keys(data.get("logs", [])),
    )


def load_config(path: Path) -> WitnessConfig:
    """Read and parse the configuration file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WitnessConfigError(f"cannot read {path}: {exc}") from exc
    return parse_config(text, path.parent)


def render_config(name: str, log_keys: Sequence[str], key_file: str = "witness.key",
                  state_file: str = "witness.db") -> str:
    """The TOML text of a configuration (strings quoted as JSON, which TOML accepts)."""
    lines = ["# Cadena witness (C2SP tlog-witness); see docs/witness.md",
             f"name = {json.dumps(name)}",
             f"key_file = {json.dumps(key_file)}",
             f"state_file = {json.dumps(state_file)}"]
    for key in log_keys:
        lines += ["", "[[logs]]", f"key = {json.dumps(key)}"]
    return "\n".join(lines) + "\n"


def load_key(path: Path) -> SigningKey:
    """Read the witness's Ed25519 key; refuse a file that group or others can access."""
    try:
        return load_seed_key(path, "witness key")
    except SeedFileError as exc:
        raise WitnessConfigError(str(exc)) from exc


def create_key(path: Path) -> SigningKey:
    """Generate a key and write it to ``path`` with mode 0600; never overwrite one."""
    try:
        return create_seed_key(path, "witness key")
    except SeedFileError as exc:
        raise WitnessConfigError(str(exc)) from exc
