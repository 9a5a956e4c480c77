"""The OTLP/HTTP exporter against a real HTTP(S) server on loopback."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Iterator, Optional

import pytest
from google.rpc import status_pb2

from otelprof.config import ExporterConfig
from otelprof.export.base import ExportStatus
from otelprof.export.otlp_http import OTLPHttpProfileExporter, retry_after_seconds

from .certs import TlsFiles
from .servers import HttpFailure, RecordingHttpServer, ServerTLS, make_request

TIMEOUT = 10.0
NOW = 1_700_000_000.0  # a fixed wall clock for HTTP-date Retry-After values


def exporter_for(endpoint: str, **settings: object) -> OTLPHttpProfileExporter:
    config = ExporterConfig(protocol="http/protobuf", endpoint=endpoint, **settings)
    return OTLPHttpProfileExporter(config, wall_clock=lambda: NOW)


@pytest.fixture
def exporter(http_server: RecordingHttpServer) -> Iterator[OTLPHttpProfileExporter]:
    exporter = exporter_for(http_server.endpoint)
    yield exporter
    exporter.shutdown()


def test_body_is_plain_protobuf_unless_compressed(
    http_server: RecordingHttpServer, exporter: OTLPHttpProfileExporter
) -> None:
    request = make_request()
    assert exporter.export(request, TIMEOUT).ok
    headers = http_server.headers[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert "content-encoding" not in headers
    assert http_server.raw_bodies == [request.SerializeToString()]


def test_gzip_body_and_header(http_server: RecordingHttpServer) -> None:
    exporter = exporter_for(http_server.endpoint, compression="gzip")
    request = make_request(padding_bytes=100_000)
    result = exporter.export(request, TIMEOUT)
    exporter.shutdown()

    assert result.ok, result.message
    assert http_server.headers[0]["content-encoding"] == "gzip"
    raw = http_server.raw_bodies[0]
    assert len(raw) < request.ByteSize() / 20
    assert gzip.decompress(raw) == request.SerializeToString()
    assert http_server.requests == [request]


@pytest.mark.parametrize(
    ("failure", "expected_status", "expected_delay"),
    [
        (HttpFailure(429, retry_after="7"), ExportStatus.RETRYABLE, 7.0),
        (HttpFailure(503, retry_after="0"), ExportStatus.RETRYABLE, 0.0),
        (HttpFailure(503), ExportStatus.RETRYABLE, None),
        (HttpFailure(502), ExportStatus.RETRYABLE, None),
        (HttpFailure(504), ExportStatus.RETRYABLE, None),
        (
            HttpFailure(
                503,
                retry_after=format_datetime(
                    datetime.fromtimestamp(NOW + 90, timezone.utc), usegmt=True
                ),
            ),
            ExportStatus.RETRYABLE,
            90.0,
        ),
        (HttpFailure(503, retry_after="soon"), ExportStatus.RETRYABLE, None),
        (HttpFailure(400), ExportStatus.PERMANENT, None),
        (HttpFailure(400, retry_after="5"), ExportStatus.PERMANENT, None),
        (HttpFailure(401), ExportStatus.PERMANENT, None),
        (HttpFailure(403), ExportStatus.PERMANENT, None),
        (HttpFailure(413), ExportStatus.PERMANENT, None),
        (HttpFailure(500), ExportStatus.PERMANENT, None),
        (HttpFailure(501), ExportStatus.PERMANENT, None),
    ],
)
def test_status_codes_are_classified(
    http_server: RecordingHttpServer,
    exporter: OTLPHttpProfileExporter,
    failure: HttpFailure,
    expected_status: ExportStatus,
    expected_delay: Optional[float],
) -> None:
    http_server.set_failures([HttpFailure(failure.status, failure.retry_after, b"told to fail")])

    result = exporter.export(make_request(), TIMEOUT)

    assert result.status is expected_status
    assert result.retry_after_seconds == expected_delay
    assert str(failure.status) in result.message
    assert "told to fail" in result.message
    assert http_server.endpoint in result.message
    assert exporter.export(make_request(), TIMEOUT).ok  # the next one succeeds again


def test_protobuf_status_body_gives_its_message(
    http_server: RecordingHttpServer, exporter: OTLPHttpProfileExporter
) -> None:
    body = status_pb2.Status(code=3, message="profile 0 has no sample_type").SerializeToString()
    http_server.set_failures([HttpFailure(400, body=body, content_type="application/x-protobuf")])

    result = exporter.export(make_request(), TIMEOUT)

    assert result.status is ExportStatus.PERMANENT
    assert result.message.endswith("400 Bad Request: profile 0 has no sample_type")


def test_wrong_path_is_permanent(http_server: RecordingHttpServer) -> None:
    exporter = exporter_for(f"http://127.0.0.1:{http_server.port}/v1/profiles")
    result = exporter.export(make_request(), TIMEOUT)
    exporter.shutdown()
    assert result.status is ExportStatus.PERMANENT
    assert "404" in result.message


def test_connection_reset_is_retryable(
    http_server: RecordingHttpServer, exporter: OTLPHttpProfileExporter
) -> None:
    http_server.set_failures([HttpFailure(reset=True)])

    result = exporter.export(make_request(), TIMEOUT)

    assert result.status is ExportStatus.RETRYABLE
    assert "ConnectionError" in result.message
    assert exporter.export(make_request(), TIMEOUT).ok  # a new connection works


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-4", 0.0),
        ("", None),
        (None, None),
        ("1.5", None),  # delta-seconds is an integer
        ("tomorrow", None),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100.0),  # NOW + 100 s
        ("Tue, 14 Nov 2023 22:12:00 GMT", 0.0),  # in the past
    ],
)
def test_retry_after_parsing(value: Optional[str], expected: Optional[float]) -> None:
    assert retry_after_seconds(value, lambda: NOW) == expected


# --- TLS ------------------------------------------------------------------------------------


def tls_server(tls_files: TlsFiles, client_auth: bool = False) -> RecordingHttpServer:
    return RecordingHttpServer(
        ServerTLS(
            tls_files.server_cert,
            tls_files.server_key,
            tls_files.ca_cert if client_auth else None,
        )
    )


def test_certificate_file_wins_over_requests_ca_bundle(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets REQUESTS_CA_BUNDLE override a Session's own verify setting; not ours.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.other_ca_cert)
    monkeypatch.setenv("CURL_CA_BUNDLE", tls_files.other_ca_cert)
    with tls_server(tls_files) as server:
        exporter = exporter_for(server.endpoint, certificate_file=tls_files.ca_cert)
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()
        assert result.ok, result.message


def test_without_certificate_file_requests_ca_bundle_applies(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.ca_cert)
    with tls_server(tls_files) as server:
        exporter = exporter_for(server.endpoint)
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()
        assert result.ok, result.message
