"""The HTTP API, its live push and the operator console: reads through :mod:`storage`, acts
on alerts and recommendations, never writes telemetry."""
