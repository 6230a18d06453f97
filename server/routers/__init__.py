"""One router per resource: sessions, telemetry, health, metrics."""
