"""Metrics (Prometheus), tracing (OpenTelemetry, optional) for every role."""
