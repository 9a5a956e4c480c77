"""Exporters: OTLP/gRPC, OTLP/HTTP and the OTLP JSON file writer."""
