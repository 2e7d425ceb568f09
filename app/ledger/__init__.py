"""The ledger kernel: the one room of DESIGN invariant 2 (docs/adr/0006-the-ledger-kernel.md)."""
