"""Witnesses: coordinators register the witness nodes the ledger's checkpoints go to."""
