"""The OTLP/gRPC exporter against a real in-process ProfilesService on loopback."""

from __future__ import annotations

from typing import Iterator, Optional

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from otelprof.config import ExporterConfig
from otelprof.export.base import ExportStatus
from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter, retry_delay_seconds

from .proxy import ByteCountingProxy
from .servers import (
    GrpcFailure,
    RecordingGrpcServer,
    make_request,
)

TIMEOUT = 10.0


def exporter_for(endpoint: str, **settings: object) -> OTLPGrpcProfileExporter:
    return OTLPGrpcProfileExporter(ExporterConfig(endpoint=endpoint, **settings))


@pytest.fixture
def exporter(grpc_server: RecordingGrpcServer) -> Iterator[OTLPGrpcProfileExporter]:
    exporter = exporter_for(grpc_server.endpoint)
    yield exporter
    exporter.shutdown()


def test_gzip_compresses_on_the_wire(grpc_server: RecordingGrpcServer) -> None:
    request = make_request(padding_bytes=200_000)
    size = request.ByteSize()
    sent = {}
    for compression in ("gzip", "none"):
        with ByteCountingProxy(grpc_server.port) as proxy:
            exporter = exporter_for(f"http://127.0.0.1:{proxy.port}", compression=compression)
            result = exporter.export(request, TIMEOUT)
            exporter.shutdown()
            assert result.ok, result.message
            sent[compression] = proxy.bytes_from_clients

    assert grpc_server.requests == [request, request]
    assert sent["none"] > size
    assert sent["gzip"] < size / 20


@pytest.mark.parametrize(
    ("code", "retry_delay", "expected_status", "expected_delay"),
    [
        (grpc.StatusCode.UNAVAILABLE, None, ExportStatus.RETRYABLE, None),
        (grpc.StatusCode.UNAVAILABLE, 2.5, ExportStatus.RETRYABLE, 2.5),
        (grpc.StatusCode.CANCELLED, None, ExportStatus.RETRYABLE, None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, ExportStatus.RETRYABLE, None),
        (grpc.StatusCode.ABORTED, None, ExportStatus.RETRYABLE, None),
        (grpc.StatusCode.OUT_OF_RANGE, None, ExportStatus.RETRYABLE, None),
        (grpc.StatusCode.DATA_LOSS, None, ExportStatus.RETRYABLE, None),
        # RESOURCE_EXHAUSTED is retried only when the server says when (RetryInfo).
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 7.0, ExportStatus.RETRYABLE, 7.0),
        (grpc.StatusCode.INVALID_ARGUMENT, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.INVALID_ARGUMENT, 3.0, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.UNAUTHENTICATED, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.PERMISSION_DENIED, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.UNIMPLEMENTED, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.INTERNAL, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.UNKNOWN, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.NOT_FOUND, None, ExportStatus.PERMANENT, None),
        (grpc.StatusCode.FAILED_PRECONDITION, None, ExportStatus.PERMANENT, None),
    ],
)
def test_server_errors_are_classified(
    grpc_server: RecordingGrpcServer,
    exporter: OTLPGrpcProfileExporter,
    code: grpc.StatusCode,
    retry_delay: Optional[float],
    expected_status: ExportStatus,
    expected_delay: Optional[float],
) -> None:
    grpc_server.set_failures([GrpcFailure(code, "told to fail", retry_delay)])

    result = exporter.export(make_request(), TIMEOUT)

    assert result.status is expected_status
    assert result.retry_after_seconds == expected_delay
    assert code.name in result.message
    assert "told to fail" in result.message
    assert grpc_server.endpoint.split("//")[1] in result.message
    # The next call is not scripted to fail: the same exporter recovers.
    assert exporter.export(make_request(), TIMEOUT).ok


def test_retry_info_is_read_from_status_details_and_bare_trailer() -> None:
    delay = Duration(seconds=1, nanos=500_000_000)
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    status = status_pb2.Status(code=14, message="busy")
    status.details.add().Pack(info)

    assert retry_delay_seconds((("grpc-status-details-bin", status.SerializeToString()),)) == 1.5
    assert retry_delay_seconds((("google.rpc.retryinfo-bin", info.SerializeToString()),)) == 1.5
    assert retry_delay_seconds((("grpc-status-details-bin", b"\xff\xff garbage"),)) is None
    assert retry_delay_seconds((("other-bin", info.SerializeToString()),)) is None
    assert retry_delay_seconds(None) is None
