"""The two OTLP transports side by side, so behaviour they share is tested once for both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from otelprof.config import ExporterConfig
from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter
from otelprof.export.otlp_http import OTLPHttpProfileExporter

from .servers import HTTP_PATH, RecordingGrpcServer, RecordingHttpServer, ServerTLS

Exporter = Union[OTLPGrpcProfileExporter, OTLPHttpProfileExporter]
Server = Union[RecordingGrpcServer, RecordingHttpServer]


@dataclass(frozen=True)
class Transport:
    name: str
    protocol: str
    path: str
    make_server: Callable[[Optional[ServerTLS]], Server]
    timeout_word: str  # how the exporter's message names a timeout

    def url(self, scheme: str, port: int) -> str:
        return f"{scheme}://127.0.0.1:{port}{self.path}"

    def exporter(self, endpoint: str, **settings: object) -> Exporter:
        config = ExporterConfig(protocol=self.protocol, endpoint=endpoint, **settings)
        if self.protocol == "grpc":
            return OTLPGrpcProfileExporter(config)
        return OTLPHttpProfileExporter(config)


GRPC = Transport("grpc", "grpc", "", RecordingGrpcServer, "DEADLINE_EXCEEDED")
HTTP = Transport("http", "http/protobuf", HTTP_PATH, RecordingHttpServer, "ReadTimeout")
