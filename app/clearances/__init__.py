"""Security clearances."""
