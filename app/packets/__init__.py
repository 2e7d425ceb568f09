"""Packets: ciphertext blobs, signed envelopes, key delivery, receipts, sharing, withdrawal."""
