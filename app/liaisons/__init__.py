"""Liaisons and their keys."""
