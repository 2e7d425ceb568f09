"""The append-only log and its storage engine.

- :mod:`ledger.store.log`: :class:`~ledger.store.log.Ledger`, appends and
  proofs under the trust rule; :mod:`ledger.store.presign` prepares checkpoints;
- :mod:`ledger.store.storage`: the storage protocol, with an in-memory
  implementation (:mod:`ledger.store.memory`) and the SQL engine
  (:mod:`ledger.store.sqlschema`, :mod:`~ledger.store.sqlstore`,
  :mod:`~ledger.store.sqlreads`, :mod:`~ledger.store.sqldriver`,
  :mod:`~ledger.store.sqlpipeline`);
- :mod:`ledger.store.treecache`: the committed tree in memory, for proofs.
"""
