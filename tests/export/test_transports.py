"""What both OTLP exporters promise, each against a real loopback server (plain and TLS)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import pytest

from otelprof.export.base import ExportStatus

from .certs import TlsFiles
from .forking import run_in_child
from .servers import ServerTLS, make_request
from .transports import GRPC, HTTP, Exporter, Server, Transport

TIMEOUT = 10.0


@pytest.fixture(params=[GRPC, HTTP], ids=lambda t: t.name)
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param


@pytest.fixture
def server(transport: Transport) -> Iterator[Server]:
    with transport.make_server(None) as server:
        yield server


@pytest.fixture
def exporter(transport: Transport, server: Server) -> Iterator[Exporter]:
    exporter = transport.exporter(server.endpoint)
    yield exporter
    exporter.shutdown()


def service_names(server: Server) -> list:
    return sorted(
        r.resource_profiles[0].resource.attributes[0].value.string_value for r in server.requests
    )


def test_request_arrives_intact_with_headers_and_user_agent(
    transport: Transport, server: Server
) -> None:
    exporter = transport.exporter(
        server.endpoint, headers={"Authorization": "Bearer s3cret", "x-tenant": "blue"}
    )
    request = make_request()
    try:
        result = exporter.export(request, TIMEOUT)
    finally:
        exporter.shutdown()

    assert result.status is ExportStatus.SUCCESS, result.message
    assert result.message == ""
    assert server.requests == [request]
    headers = server.headers[0]
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-tenant"] == "blue"
    assert headers["user-agent"].startswith("otelprof/")


def test_connection_is_reused_across_exports(server: Server, exporter: Exporter) -> None:
    for name in ("a", "b", "c"):
        assert exporter.export(make_request(name), TIMEOUT).ok
    assert service_names(server) == ["a", "b", "c"]


def test_partial_success_is_success_with_a_message(server: Server, exporter: Exporter) -> None:
    server.set_partial_success(3, "sample timestamps outside the profile")

    result = exporter.export(make_request(), TIMEOUT)

    assert result.status is ExportStatus.SUCCESS
    assert "rejected 3 profile(s): sample timestamps outside the profile" in result.message


def test_hanging_server_gives_a_retryable_timeout(transport: Transport, server: Server) -> None:
    server.hang()
    exporter = transport.exporter(server.endpoint)
    try:
        result = exporter.export(make_request(), 0.2)
        assert server.requests == []  # checked while the server still hangs
    finally:
        exporter.shutdown()
        server.release()

    assert result.status is ExportStatus.RETRYABLE
    assert transport.timeout_word in result.message
    assert server.attempts == 1


def test_nothing_listening_is_retryable(transport: Transport) -> None:
    # A bound but not listening socket holds the port, so connecting is refused for sure.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        exporter = transport.exporter(transport.url("http", reserved.getsockname()[1]))
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()

    assert result.status is ExportStatus.RETRYABLE
    assert "127.0.0.1" in result.message


def test_shutdown_is_idempotent_and_refuses_later_exports(
    transport: Transport, server: Server
) -> None:
    never_used = transport.exporter(server.endpoint)
    never_used.shutdown()
    never_used.shutdown()

    exporter = transport.exporter(server.endpoint)
    assert exporter.export(make_request(), TIMEOUT).ok
    exporter.shutdown()
    exporter.shutdown()
    result = exporter.export(make_request(), TIMEOUT)

    assert result.status is ExportStatus.PERMANENT
    assert "shut down" in result.message
    assert len(server.requests) == 1


def test_forked_children_export_and_parent_keeps_going(
    transport: Transport, server: Server, exporter: Exporter
) -> None:
    assert exporter.export(make_request("parent"), TIMEOUT).ok  # a connection exists at fork

    def child() -> bool:
        exporter.reset_after_fork()
        reused = exporter.export(make_request("child"), TIMEOUT).ok
        fresh = transport.exporter(server.endpoint)  # what a processor may do instead
        return reused and fresh.export(make_request("child-fresh"), TIMEOUT).ok

    # Several children: sharing the parent's connection by mistake fails only now and then.
    assert [run_in_child(child) for _ in range(10)] == [0] * 10
    assert exporter.export(make_request("parent-after"), TIMEOUT).ok
    assert service_names(server) == ["child"] * 10 + ["child-fresh"] * 10 + [
        "parent",
        "parent-after",
    ]


# --- TLS ------------------------------------------------------------------------------------


def tls_server(transport: Transport, tls_files: TlsFiles, client_auth: bool = False) -> Server:
    client_ca = tls_files.ca_cert if client_auth else None
    return transport.make_server(ServerTLS(tls_files.server_cert, tls_files.server_key, client_ca))


def test_tls_with_trusted_ca(transport: Transport, tls_files: TlsFiles) -> None:
    with tls_server(transport, tls_files) as server:
        exporter = transport.exporter(server.endpoint, certificate_file=tls_files.ca_cert)
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()
        assert server.endpoint.startswith("https://")
        assert result.ok, result.message
        assert len(server.requests) == 1


def test_tls_with_untrusted_ca_is_a_clear_retryable_result(
    transport: Transport, tls_files: TlsFiles
) -> None:
    with tls_server(transport, tls_files) as server:
        exporter = transport.exporter(server.endpoint, certificate_file=tls_files.other_ca_cert)
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()
        assert result.status is ExportStatus.RETRYABLE
        assert "CERTIFICATE_VERIFY_FAILED" in result.message
        assert server.requests == []


def test_plaintext_client_against_tls_server_is_retryable(
    transport: Transport, tls_files: TlsFiles
) -> None:
    with tls_server(transport, tls_files) as server:
        exporter = transport.exporter(transport.url("http", server.port))
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()
        assert result.status is ExportStatus.RETRYABLE
        assert server.requests == []


def test_tls_client_against_plaintext_server_is_retryable(
    transport: Transport, server: Server, tls_files: TlsFiles
) -> None:
    exporter = transport.exporter(
        transport.url("https", server.port), certificate_file=tls_files.ca_cert
    )
    result = exporter.export(make_request(), TIMEOUT)
    exporter.shutdown()
    assert result.status is ExportStatus.RETRYABLE
    assert "WRONG_VERSION_NUMBER" in result.message
    assert server.requests == []


def test_mutual_tls(transport: Transport, tls_files: TlsFiles) -> None:
    with tls_server(transport, tls_files, client_auth=True) as server:
        with_cert = transport.exporter(
            server.endpoint,
            certificate_file=tls_files.ca_cert,
            client_certificate_file=tls_files.client_cert,
            client_key_file=tls_files.client_key,
        )
        without_cert = transport.exporter(server.endpoint, certificate_file=tls_files.ca_cert)
        accepted = with_cert.export(make_request(), TIMEOUT)
        refused = without_cert.export(make_request(), TIMEOUT)
        with_cert.shutdown()
        without_cert.shutdown()

        assert accepted.ok, accepted.message
        assert refused.status is ExportStatus.RETRYABLE
        assert len(server.requests) == 1


@pytest.mark.parametrize(
    "setting", ["certificate_file", "client_certificate_file", "client_key_file"]
)
def test_missing_tls_file_is_permanent_and_named(
    transport: Transport, tmp_path: Path, setting: str
) -> None:
    missing = str(tmp_path / "nope.pem")
    exporter = transport.exporter(transport.url("https", 1), **{setting: missing})  # no I/O yet
    result = exporter.export(make_request(), TIMEOUT)
    exporter.shutdown()
    assert result.status is ExportStatus.PERMANENT
    assert missing in result.message


def test_unusable_tls_files_are_permanent_and_named(
    transport: Transport, tls_files: TlsFiles, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    bad_ca = transport.exporter(transport.url("https", 1), certificate_file=str(garbage))
    mismatched = transport.exporter(
        transport.url("https", 1),
        client_certificate_file=tls_files.client_cert,
        client_key_file=tls_files.server_key,  # someone else's key
    )
    for exporter, named in ((bad_ca, str(garbage)), (mismatched, tls_files.client_cert)):
        result = exporter.export(make_request(), TIMEOUT)
        exporter.shutdown()
        assert result.status is ExportStatus.PERMANENT
        assert named in result.message


def test_server_hangs_again_after_a_release(server: Server, exporter: Exporter) -> None:
    # The fault tests reuse one server through several outages.
    server.hang()
    assert exporter.export(make_request(), 0.2).status is ExportStatus.RETRYABLE
    server.release()
    assert exporter.export(make_request(), TIMEOUT).ok
    server.hang()
    assert exporter.export(make_request(), 0.2).status is ExportStatus.RETRYABLE
    server.release()
    # Released calls go on, as on a real server that was only slow: the late requests are
    # recorded too, though their clients gave up (why a retry after a timeout may duplicate).
    assert server.wait_for_requests(3)
    assert server.attempts == 3
