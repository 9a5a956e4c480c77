"""Profile exporters (OTLP/gRPC, OTLP/HTTP, files, memory), the retry policy and a factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otelprof.export.base import SUCCESS, ExportResult, ExportStatus, ProfileExporter
from otelprof.export.file import FileProfileExporter
from otelprof.export.memory import InMemoryProfileExporter
from otelprof.export.retry import RetryPolicy, send_with_retry

if TYPE_CHECKING:
    from otelprof.config import ProfilerConfig
    from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter
    from otelprof.export.otlp_http import OTLPHttpProfileExporter

__all__ = [
    "SUCCESS",
    "ExportResult",
    "ExportStatus",
    "FileProfileExporter",
    "InMemoryProfileExporter",
    "OTLPGrpcProfileExporter",
    "OTLPHttpProfileExporter",
    "ProfileExporter",
    "RetryPolicy",
    "create_exporter",
    "send_with_retry",
]


def create_exporter(config: ProfilerConfig) -> ProfileExporter:
    """The exporter ``config`` asks for: files when ``output_dir`` is set, else OTLP.

    Only the chosen transport is imported: an HTTP or file user never loads grpc.
    """
    if config.output_dir:
        return FileProfileExporter(config.output_dir)
    if config.exporter.protocol == "grpc":
        from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter

        return OTLPGrpcProfileExporter(config.exporter)
    from otelprof.export.otlp_http import OTLPHttpProfileExporter

    return OTLPHttpProfileExporter(config.exporter)


def __getattr__(name: str) -> Any:
    # Lazy so that importing this package does not import grpc or requests.
    if name == "OTLPGrpcProfileExporter":
        from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter

        return OTLPGrpcProfileExporter
    if name == "OTLPHttpProfileExporter":
        from otelprof.export.otlp_http import OTLPHttpProfileExporter

        return OTLPHttpProfileExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
