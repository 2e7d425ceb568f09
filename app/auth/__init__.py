"""Authentication: Ed25519 challenge–response, then short-lived bearer tokens."""
