"""Real-time notifications: ``GET /v1/events`` (server-sent events)."""
