"""The OTLP receiver: gRPC and HTTP servers in front of the pipelines."""
