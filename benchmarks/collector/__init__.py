"""Throughput benchmark of collector_processor against the real OpenTelemetry Collector."""
