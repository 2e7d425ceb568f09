"""Cadena exchange service (FastAPI)."""
