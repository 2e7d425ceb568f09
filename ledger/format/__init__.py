"""The ledger's formats: canonical entries, RFC 9162 Merkle trees and proofs, signed notes.

Pure code over bytes, no storage and no I/O:

- :mod:`ledger.format.field`: the one definition of an entry (its fields,
  their order and types, the canonical JSON rules);
- :mod:`ledger.format.entry` (the strict parser), :mod:`ledger.format.encoder`
  (the fast encoder) and :mod:`ledger.format.checker` (the verifier's batch
  check of stored bytes), all three built on that definition;
- :mod:`ledger.format.canonical`: strict, canonical JSON for every format;
- :mod:`ledger.format.merkle` and :mod:`ledger.format.proof`: RFC 9162 trees,
  inclusion and consistency proofs, C2SP ``tlog-proof``;
- :mod:`ledger.format.note`: C2SP signed notes, checkpoints and cosignatures;
- :mod:`ledger.format.refusal`: refusal details bound to their entry.
"""
