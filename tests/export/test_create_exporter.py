"""create_exporter picks the exporter the configuration asks for, configured from the env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from otelprof.config import resolve_config
from otelprof.export import (
    FileProfileExporter,
    OTLPGrpcProfileExporter,
    OTLPHttpProfileExporter,
    create_exporter,
)

from .servers import RecordingGrpcServer, RecordingHttpServer, make_request


def test_output_dir_wins_over_protocol(tmp_path: Path) -> None:
    config = resolve_config(
        environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, output_dir=str(tmp_path)
    )
    exporter = create_exporter(config)
    assert isinstance(exporter, FileProfileExporter)
    assert exporter.export(make_request(), 1.0).ok
    (written,) = tmp_path.glob("*.otlp.pb")
    assert ExportProfilesServiceRequest.FromString(written.read_bytes()) == make_request()


def test_defaults_per_protocol() -> None:
    grpc_exporter = create_exporter(resolve_config(environ={}))
    http_exporter = create_exporter(
        resolve_config(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    )
    assert isinstance(grpc_exporter, OTLPGrpcProfileExporter)
    assert grpc_exporter.target == "localhost:4317"
    assert isinstance(http_exporter, OTLPHttpProfileExporter)
    assert http_exporter.url == "http://localhost:4318/v1development/profiles"


def test_grpc_settings_from_the_environment_reach_the_server(
    grpc_server: RecordingGrpcServer,
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT": grpc_server.endpoint,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # the profiles form wins
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20123,tenant=blue",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    exporter = create_exporter(resolve_config(environ=environ))
    try:
        result = exporter.export(make_request(), 10.0)
    finally:
        exporter.shutdown()
    assert result.ok, result.message
    assert grpc_server.headers[0]["api-key"] == "abc 123"
    assert grpc_server.headers[0]["tenant"] == "blue"


def test_http_settings_from_the_environment_reach_the_server(
    http_server: RecordingHttpServer,
) -> None:
    base = http_server.endpoint.rsplit("/v1development/profiles", 1)[0]
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,  # the generic endpoint gets the signal path
        "OTEL_EXPORTER_OTLP_PROFILES_HEADERS": "api-key=xyz",
        "OTEL_EXPORTER_OTLP_PROFILES_COMPRESSION": "gzip",
    }
    exporter = create_exporter(resolve_config(environ=environ))
    try:
        result = exporter.export(make_request(), 10.0)
    finally:
        exporter.shutdown()
    assert result.ok, result.message
    assert http_server.headers[0]["api-key"] == "xyz"
    assert http_server.headers[0]["content-encoding"] == "gzip"
    assert http_server.requests == [make_request()]


def test_importing_the_package_does_not_load_a_transport() -> None:
    code = (
        "import sys, otelprof.export as e\n"
        "print(sorted(m for m in ('grpc', 'requests') if m in sys.modules))\n"
        "e.OTLPHttpProfileExporter\n"
        "print(sorted(m for m in ('grpc', 'requests') if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert output == ["[]", "['requests']"]
