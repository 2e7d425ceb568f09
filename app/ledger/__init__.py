"""The ledger kernel: the one room of DESIGN invariant 2 ("every access is in the ledger").

Features (``app/<feature>/``) touch the ledger only through this front; the
modules behind it are the kernel's own (docs/adr/0006-the-ledger-kernel.md):

- ``unit_of_work``: :class:`UnitOfWork`, the session of a request or a job,
  with the rows written at COMMIT and :meth:`UnitOfWork.commit`, the one
  place a transaction commits; :func:`transaction` for background jobs;
- ``route``: :class:`UnitOfWorkRoute` and :data:`SessionDep`, which give an
  endpoint its unit of work and settle it (commit, or roll back and record
  the refusal in a transaction of its own);
- ``recording``: :func:`record` (the one place an access is appended),
  :func:`deny` and the refusals; ``refusal``: the reason codes;
  ``summaries``: refusals past a rate limit counted into summary entries;
- ``subjects``: the subject index written with each entry; ``queries``:
  exact entries, stored checkpoints and inclusion proofs under the trust rule;
- ``engine``: engines with Cadena's durability settings; ``checkpointer``,
  ``key``, ``reader``: signing checkpoints, the ledger key, verification readers;
  ``keylog``: the key log each checkpoint carries.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.ledger.checkpointer import Checkpointer, sign_once
    from app.ledger.engine import make_engine, normalize_url, wal_flush_of
    from app.ledger.key import (
        LedgerKeyError,
        create_signing_key,
        load_note_signer,
        load_note_verifier,
        load_signing_key,
    )
    from app.ledger.keylog import key_log_for
    from app.ledger.lean import HotRoutes, as_included
    from app.ledger.queries import (
        SignedCheckpoint,
        checkpoints_after,
        inclusion_proofs,
        is_signed_size,
        raw_entries,
    )
    from app.ledger.reader import LedgerReaderOpener
    from app.ledger.recording import (
        AccessDenied,
        Hidden,
        NoClearance,
        Unauthenticated,
        deny,
        draft,
        ledger_for,
        now,
        record,
        record_many,
        record_refusal,
        storage_for,
    )
    from app.ledger.refusal import PrivateDetail, Reason, public_reason
    from app.ledger.route import (
        Deferred,
        SessionDep,
        UnitOfWorkRoute,
        get_session,
        record_refusal_entry,
        settle,
    )
    from app.ledger.sqlread import DriverQuery
    from app.ledger.subjects import enrolment_indices, indices_about, key_entry_indices
    from app.ledger.summaries import SUMMARY_ACTION, RefusalSummaries, SummaryWriter, write_entries
    from app.ledger.unit_of_work import (
        RequestContext,
        UnitOfWork,
        as_unit_of_work,
        insert_at_commit,
        make_session_factory,
        named_insert,
        transaction,
        tree_cache_of,
    )

# Loaded on first use (PEP 562): a command that needs one module of the kernel
# (``cadena-server ledger verify`` needs the engine and the reader) does not
# load FastAPI with the route class. What each name comes from:
_LAZY = {
    "AccessDenied": "app.ledger.recording",
    "Checkpointer": "app.ledger.checkpointer",
    "Deferred": "app.ledger.route",
    "DriverQuery": "app.ledger.sqlread",
    "Hidden": "app.ledger.recording",
    "HotRoutes": "app.ledger.lean",
    "as_included": "app.ledger.lean",
    "LedgerKeyError": "app.ledger.key",
    "LedgerReaderOpener": "app.ledger.reader",
    "NoClearance": "app.ledger.recording",
    "PrivateDetail": "app.ledger.refusal",
    "Reason": "app.ledger.refusal",
    "RefusalSummaries": "app.ledger.summaries",
    "RequestContext": "app.ledger.unit_of_work",
    "SUMMARY_ACTION": "app.ledger.summaries",
    "SessionDep": "app.ledger.route",
    "SignedCheckpoint": "app.ledger.queries",
    "SummaryWriter": "app.ledger.summaries",
    "Unauthenticated": "app.ledger.recording",
    "UnitOfWork": "app.ledger.unit_of_work",
    "UnitOfWorkRoute": "app.ledger.route",
    "as_unit_of_work": "app.ledger.unit_of_work",
    "checkpoints_after": "app.ledger.queries",
    "create_signing_key": "app.ledger.key",
    "deny": "app.ledger.recording",
    "draft": "app.ledger.recording",
    "enrolment_indices": "app.ledger.subjects",
    "get_session": "app.ledger.route",
    "inclusion_proofs": "app.ledger.queries",
    "indices_about": "app.ledger.subjects",
    "insert_at_commit": "app.ledger.unit_of_work",
    "is_signed_size": "app.ledger.queries",
    "key_entry_indices": "app.ledger.subjects",
    "key_log_for": "app.ledger.keylog",
    "ledger_for": "app.ledger.recording",
    "load_note_signer": "app.ledger.key",
    "load_note_verifier": "app.ledger.key",
    "load_signing_key": "app.ledger.key",
    "make_engine": "app.ledger.engine",
    "make_session_factory": "app.ledger.unit_of_work",
    "named_insert": "app.ledger.unit_of_work",
    "normalize_url": "app.ledger.engine",
    "wal_flush_of": "app.ledger.engine",
    "now": "app.ledger.recording",
    "public_reason": "app.ledger.refusal",
    "raw_entries": "app.ledger.queries",
    "record": "app.ledger.recording",
    "record_many": "app.ledger.recording",
    "record_refusal": "app.ledger.recording",
    "record_refusal_entry": "app.ledger.route",
    "settle": "app.ledger.route",
    "sign_once": "app.ledger.checkpointer",
    "storage_for": "app.ledger.recording",
    "transaction": "app.ledger.unit_of_work",
    "tree_cache_of": "app.ledger.unit_of_work",
    "write_entries": "app.ledger.summaries",
}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use; keep the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "SUMMARY_ACTION",
    "AccessDenied",
    "Checkpointer",
    "Deferred",
    "DriverQuery",
    "Hidden",
    "HotRoutes",
    "as_included",
    "LedgerKeyError",
    "LedgerReaderOpener",
    "NoClearance",
    "PrivateDetail",
    "Reason",
    "RefusalSummaries",
    "RequestContext",
    "SessionDep",
    "SignedCheckpoint",
    "SummaryWriter",
    "Unauthenticated",
    "UnitOfWork",
    "UnitOfWorkRoute",
    "checkpoints_after",
    "create_signing_key",
    "deny",
    "draft",
    "enrolment_indices",
    "get_session",
    "inclusion_proofs",
    "indices_about",
    "insert_at_commit",
    "is_signed_size",
    "key_entry_indices",
    "key_log_for",
    "ledger_for",
    "load_note_signer",
    "load_note_verifier",
    "load_signing_key",
    "make_engine",
    "make_session_factory",
    "named_insert",
    "normalize_url",
    "now",
    "public_reason",
    "raw_entries",
    "record",
    "record_many",
    "record_refusal",
    "record_refusal_entry",
    "settle",
    "sign_once",
    "storage_for",
    "transaction",
    "wal_flush_of",
    "tree_cache_of",
    "as_unit_of_work",
    "write_entries",
]
