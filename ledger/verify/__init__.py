"""The auditor's verifier: a whole stored ledger, every entry, node and checkpoint.

:mod:`ledger.verify.verifier` is the entry point; it runs the exact streaming
walk (:mod:`ledger.verify.walk`) or the chunked pass
(:mod:`ledger.verify.chunk`, :mod:`ledger.verify.parallel`), both ending with
the checks of what entries alone do not prove (:mod:`ledger.verify.storecheck`),
and reports the first fault (:mod:`ledger.verify.report`).
"""
