"""Certificate settings (``CADENA_`` prefix), read beside :class:`app.settings.Settings`.

Kept apart only so that this feature did not edit the shared settings class;
the fields belong in ``app.settings.Settings`` and can move there unchanged.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CertificateSettings(BaseSettings):
    """How certificates are sealed and which witness quorum their policy states."""

    model_config = SettingsConfigDict(env_prefix="CADENA_", extra="ignore")

    witness_quorum: int = Field(
        default=0, ge=0, le=32,
        description="Cosignatures a certificate's checkpoint needs (of the active witnesses)")
    certificate_seal_key_path: Path | None = Field(
        default=None, description="Seal key; default: <data_dir>/certificate-seal.key")
