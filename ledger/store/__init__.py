"""The append-only log over its storage protocol.

- :mod:`ledger.store.log`: :class:`~ledger.store.log.Ledger`, appends and
  proofs under the trust rule; :mod:`ledger.store.presign` prepares checkpoints;
- :mod:`ledger.store.storage`: the storage protocol, with an in-memory
  implementation (:mod:`ledger.store.memory`); the SQL one is :mod:`ledger.sql`;
- :mod:`ledger.store.treecache`: the committed tree in memory, for proofs.
"""
