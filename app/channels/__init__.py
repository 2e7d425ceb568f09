"""Channels: bilateral, multilateral, specialized by crime type."""
