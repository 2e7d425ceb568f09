"""Identity: the queries about states, liaisons, keys, clearances and tokens.

One repository that every feature reads (authentication, liaisons, packets,
certificates, channels...), below all of them: it imports no feature, so
``auth`` and ``liaisons`` no longer lean on each other (docs/architecture.md).
"""
