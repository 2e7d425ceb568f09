"""Cadena's audit ledger core.

NOTE FOR ENGINEERS A AND B: the API contract for this package is in
/work/main/LEDGER_CONTRACT.md (also docs/ledger-contract.md). Read it first.
"""
