"""Participating states."""
