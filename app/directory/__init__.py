"""``/v1/directory``: liaisons' key entries with their proofs (key transparency)."""
