"""Local profiles: one directory per identity, holding keys, settings and audit state.

Layout (``CADENA_HOME``, else ``$XDG_CONFIG_HOME/cadena``, else ``~/.config/cadena``)::

    <home>/<profile>/           0700
        config.json             {"server": URL, "liaison": ID, "ledger_key": VKEY}
        keys.json               the private key file (crypto.keyfile), 0600, never replaced
        session.json            the last bearer token and its expiries, 0600
        audit-state.json        the last verified checkpoint and tree frontier, 0600

Every file is written with ``os.open(..., 0o600)`` (then renamed into place),
so no file is ever world-readable, not even for an instant; a key file that
group or others can read is refused, as ssh does.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from client.errors import ProfileError
from client.models import Token
from crypto import CryptoError, LiaisonKeys, LiaisonPublicKeys, load_keys

DEFAULT_PROFILE = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DIR_MODE = 0o700
FILE_MODE = 0o600


def cadena_home(env: Mapping[str, str] | None = None) -> Path:
    """Where profiles live: ``CADENA_HOME``, else the XDG config directory."""
    env = os.environ if env is None else env
    if env.get("CADENA_HOME"):
        return Path(env["CADENA_HOME"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "cadena"


def profile_name(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """The profile to use: ``explicit``, else ``CADENA_PROFILE``, else ``default``."""
    env = os.environ if env is None else env
    name = explicit or env.get("CADENA_PROFILE") or DEFAULT_PROFILE
    if not _NAME.fullmatch(name):
        raise ProfileError(f"profile name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def write_private(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` as a 0600 file, atomically (never a partial file).

    With ``replace=False`` an existing file is an error (keys are never overwritten).
    """
    if not replace and path.exists():
        raise ProfileError(f"{path} exists already; it will not be overwritten")
    # A name of its own for every write: two threads (the desk's requests) may save one
    # file at once, and a write killed midway leaves its temporary file behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # whatever the umask did
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if ``path`` appeared meanwhile
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The new name on disk too: a key file said to be saved must survive a power cut.
    sync_directory(path.parent)


def sync_directory(folder: Path, *, required: bool = True) -> None:
    """Make a rename into ``folder`` survive a power cut.

    ``required=False`` (an export to a folder the user chose): a file system that refuses
    a directory's fsync (some network or FAT ones) is let be; the file itself is synced.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if required:
            raise


@dataclass
class ProfileConfig:
    """A profile's settings: the server, who we are there, the pinned ledger key, the language.

    ``language`` is the desk's language for this profile (es, pt, fr, en).
    """

    server: str | None = None
    liaison: str | None = None
    ledger_key: str | None = None
    language: str | None = None


class Profile:
    """One profile directory."""

    def __init__(self, name: str, home: Path | None = None) -> None:
        """The profile ``name`` under ``home`` (default :func:`cadena_home`); nothing is read."""
        self.name = profile_name(name)
        self.path = (home or cadena_home()) / self.name
        self.config_path = self.path / "config.json"
        self.key_path = self.path / "keys.json"
        self.session_path = self.path / "session.json"
        self.audit_path = self.path / "audit-state.json"


    def ensure_dir(self) -> None:
        """Create the directory (0700) if needed, and tighten it if it is looser."""
        self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if stat.S_IMODE(self.path.stat().st_mode) != DIR_MODE:
            self.path.chmod(DIR_MODE)

    # -- JSON files --------------------------------------------------------

    def read_json(self, path: Path) -> dict[str, Any] | None:
        """A JSON object file of this profile, or ``None`` if it does not exist."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ProfileError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ProfileError(f"{path} does not hold a JSON object")
        return data

    def write_json(self, path: Path, data: Mapping[str, Any]) -> None:
        """Write a JSON object file of this profile (0600, atomically)."""
        self.ensure_dir()
        write_private(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    # -- config ------------------------------------------------------------

    def config(self) -> ProfileConfig:
        """The profile's settings (empty if none were set)."""
        data = self.read_json(self.config_path) or {}
        known = {k: v for k, v in data.items() if k in ProfileConfig.__dataclass_fields__}
        if not all(v is None or isinstance(v, str) for v in known.values()):
            raise ProfileError(f"{self.config_path}: settings must be strings")
        return ProfileConfig(**known)

    def save_config(self, config: ProfileConfig) -> None:
        """Store the profile's settings."""
        self.write_json(self.config_path, {k: v for k, v in asdict(config).items() if v})

    # -- keys --------------------------------------------------------------

    def has_keys(self) -> bool:
        """Whether the profile holds a key file."""
        return self.key_path.exists()

    def save_key_file(self, data: bytes) -> None:
        """Store a new key file (refused if one exists: keys are never overwritten)."""
        self.ensure_dir()
        write_private(self.key_path, data, replace=False)

    # -- key rotation --------------------------------------------------------
    # The new key file is written *before* the server is asked to rotate, and
    # the old one is kept after: a crash at any point leaves every key set the
    # server may hold on disk (``cadena keys rotate`` settles a staged file).

    @property
    def staged_key_path(self) -> Path:
        """Where a new key set waits while its rotation is sent to the server."""
        return self.path / "keys.next.json"

    def retired_key_path(self, key_id: str) -> Path:
        """Where a rotated-out key set is kept (only it opens packets wrapped to it)."""
        return self.path / f"keys.{key_id}.retired.json"

    def stage_key_file(self, data: bytes) -> None:
        """Store the next key set beside the current one (refused if one is staged)."""
        self.ensure_dir()
        write_private(self.staged_key_path, data, replace=False)

    def load_staged_keys(self, passphrase: Callable[[], str]) -> LiaisonKeys:
        """Open the staged key set (as :meth:`load_keys` opens the current one)."""
        return Profile._open_key_file(self.staged_key_path, self.staged_key_path.read_bytes(),
                                      passphrase)

    def promote_staged_keys(self, old_key_id: str) -> Path:
        """Make the staged key set the profile's; keep the old file as retired (returned)."""
        retired = self.retired_key_path(old_key_id)
        os.link(self.key_path, retired)  # keep the old key first: a key is never lost
        os.replace(self.staged_key_path, self.key_path)
        self.forget_token()
        return retired

    def discard_staged_keys(self) -> None:
        """Delete the staged key set (the server refused its rotation)."""
        self.staged_key_path.unlink(missing_ok=True)

    def _key_file(self) -> tuple[bytes, dict[str, Any]]:
        try:
            mode = self.key_path.stat().st_mode
            data = self.key_path.read_bytes()
        except FileNotFoundError as exc:
            raise ProfileError(f"profile {self.name!r} has no keys "
                               f"(run: cadena keys generate --profile {self.name})") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ProfileError(f"{self.key_path} is accessible by others; chmod 600 it")
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ProfileError(f"{self.key_path} is not a key file") from exc
        if not isinstance(obj, dict):
            raise ProfileError(f"{self.key_path} is not a key file")
        return data, obj

    def public_keys(self) -> LiaisonPublicKeys:
        """The public half, read without the passphrase (for display and enrolment)."""
        _, obj = self._key_file()
        try:
            return LiaisonPublicKeys.from_json(obj["public"])
        except (KeyError, TypeError, CryptoError) as exc:
            raise ProfileError(f"{self.key_path} has no valid public keys") from exc

    def held_public_keys(self) -> list[LiaisonPublicKeys]:
        """Every key set this profile holds: current, staged and retired (public halves)."""
        held = [self.public_keys()] if self.has_keys() else []
        for path in [self.staged_key_path, *sorted(self.path.glob("keys.*.retired.json"))]:
            try:
                obj = json.loads(path.read_bytes())
                held.append(LiaisonPublicKeys.from_json(obj["public"]))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError, CryptoError) as exc:
                raise ProfileError(f"{path} has no valid public keys") from exc
        return held

    def is_encrypted(self) -> bool:
        """Whether the key file is protected by a passphrase."""
        return self._key_file()[1].get("protection") != "none"

    def load_keys(self, passphrase: Callable[[], str]) -> LiaisonKeys:
        """Open the private keys, asking ``passphrase()`` only if the file is encrypted."""
        data, _ = self._key_file()
        return Profile._open_key_file(self.key_path, data, passphrase)

    @staticmethod
    def _open_key_file(path: Path, data: bytes, passphrase: Callable[[], str]) -> LiaisonKeys:
        try:
            plain = json.loads(data).get("protection") == "none"
            return load_keys(data, None if plain else passphrase(), allow_plaintext=plain)
        except (CryptoError, ValueError, AttributeError) as exc:
            raise ProfileError(f"cannot open {path}: {exc}") from exc

    # -- session token -----------------------------------------------------

    def saved_token(self, config: ProfileConfig) -> Token | None:
        """The saved token, if it was issued by this server to this liaison."""
        data = self.read_json(self.session_path)
        if not data or data.get("server") != config.server or \
                data.get("liaison") != config.liaison:
            return None
        try:
            return Token.model_validate(data.get("token"))
        except ValueError:
            return None

    def save_token(self, config: ProfileConfig, token: Token) -> None:
        """Keep ``token`` for the next commands (0600: it is a bearer secret)."""
        self.write_json(self.session_path, {"server": config.server, "liaison": config.liaison,
                                            "token": token.model_dump(mode="json")})

    def forget_token(self) -> None:
        """Delete the saved token."""
        self.session_path.unlink(missing_ok=True)
