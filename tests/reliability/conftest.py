"""Reliability tests reuse the service fixture of ``tests/app``: a bootstrapped ``world``."""

from tests.app.conftest import world

__all__ = ["world"]
