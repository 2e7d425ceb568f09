"""``/v1/ledger``: checkpoint, key, entries and proofs (formats fixed by DESIGN.md)."""
