"""The Cadena client: a typed SDK over the HTTP API, and the ``cadena`` command line.

Runs on a liaison's workstation: it imports ``crypto`` and ``ledger``, never
``app``, and private keys never leave the machine (only signatures do).

Public surface::

    Client, Credentials                 client.sdk, client.session
    Profile, ProfileConfig              client.profile
    audit_ledger, AuditState            client.audit
    verify_export, ExportWriter         client.export
    errors                              client.errors (the exception tree)
    models                              client.models (typed API values)
"""

from client.audit import AuditResult, AuditState, audit_ledger
from client.errors import (
    AuditFailure,
    AuditFault,
    BadChallenge,
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NetworkError,
    NotFound,
    NotLoggedIn,
    ProblemError,
    ProfileError,
    ProtocolError,
    RefusedError,
    ServerError,
    Unauthenticated,
    UsageError,
)
from client.export import ExportWriter, verify_export
from client.models import Channel, Clearance, KeyInfo, Liaison, State, Token
from client.profile import Profile, ProfileConfig
from client.sdk import Client
from client.session import Credentials

__all__ = [
    "AuditFailure",
    "AuditFault",
    "AuditResult",
    "AuditState",
    "BadChallenge",
    "Channel",
    "Clearance",
    "Client",
    "ClientError",
    "Conflict",
    "Credentials",
    "ExportWriter",
    "Forbidden",
    "InvalidRequest",
    "KeyInfo",
    "Liaison",
    "NetworkError",
    "NotFound",
    "NotLoggedIn",
    "ProblemError",
    "Profile",
    "ProfileConfig",
    "ProfileError",
    "ProtocolError",
    "RefusedError",
    "ServerError",
    "State",
    "Token",
    "Unauthenticated",
    "UsageError",
    "audit_ledger",
    "verify_export",
]
