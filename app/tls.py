"""TLS for ``cadena-server serve --tls-cert FILE --tls-key FILE`` (uvicorn's ssl options).

The files are checked before the server starts, so that a wrong file is one
error line and exit status 2, not a worker that dies at start-up: the key
must be the server user's alone (no permission for group or others, as
every key in the data directory), and the certificate and key must load and
match.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path


def tls_refusal(cert: Path | None, key: Path | None) -> str | None:
    """Why ``cert`` and ``key`` cannot serve TLS, or ``None`` when they can (or both are unset)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        return "give both --tls-cert and --tls-key (or neither, for plain HTTP behind a proxy)"
    try:
        mode = os.stat(key).st_mode
    except OSError as exc:
        return f"cannot read the TLS key {key}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"the TLS key {key} is not a regular file"
    if mode & 0o077:
        return (f"the TLS key {key} is open to other users (mode {stat.S_IMODE(mode):04o}); "
                f"make it private with: chmod 600 {key}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        return f"the TLS certificate {cert} and key {key} do not load as a pair: {exc}"
    return None
