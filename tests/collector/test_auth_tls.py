"""Bearer-token authentication and TLS on the receivers, TLS and headers on the exporters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict

import grpc
import pytest
import requests
from export.certs import TlsFiles, make_tls_files

from .backends import GrpcBackend, HttpBackend, wait_until
from .harness import InProcessService, base_config, grpc_export, http_post
from .payloads import make_request

StartService = Callable[..., InProcessService]
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def forward_to(backend: GrpcBackend) -> Dict[str, Any]:
    return {"otlp_grpc": {"endpoint": backend.endpoint, "tls": {"insecure": True}}}


def with_auth(config: Dict[str, Any]) -> Dict[str, Any]:
    config["extensions"] = {"bearertokenauth": {"token": TOKEN}}
    config["service"]["extensions"] = ["bearertokenauth"]
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol["auth"] = {"authenticator": "bearertokenauth"}
    return config


def test_grpc_without_or_with_a_wrong_token_is_unauthenticated(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    service = start_service(with_auth(base_config(forward_to(grpc_backend))))
    body = make_request().SerializeToString()
    code, details, _ = grpc_export(service.grpc_port, body)
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
    wrong = (("authorization", "Bearer nope"),)
    assert (
        grpc_export(service.grpc_port, body, metadata=wrong)[0] == grpc.StatusCode.UNAUTHENTICATED
    )
    right = (("authorization", f"Bearer {TOKEN}"),)
    assert grpc_export(service.grpc_port, body, metadata=right)[0] == grpc.StatusCode.OK
    assert len(grpc_backend.recorder.wait_for(1)) == 1


def test_http_without_the_token_is_401(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    service = start_service(with_auth(base_config(forward_to(grpc_backend))))
    body = make_request().SerializeToString()
    assert http_post(service.http_url, body).status_code == 401
    assert http_post(service.http_url, body, Authorization="Basic abc").status_code == 401
    assert http_post(service.http_url, body, Authorization=f"Bearer {TOKEN}").status_code == 200
    grpc_backend.recorder.wait_for(1)


def test_token_file_is_reread_when_it_changes(
    grpc_backend: GrpcBackend, start_service: StartService, tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("first\n")
    config = with_auth(base_config(forward_to(grpc_backend)))
    config["extensions"] = {"bearertokenauth": {"filename": str(token_file)}}
    service = start_service(config)
    body = make_request().SerializeToString()
    assert http_post(service.http_url, body, Authorization="Bearer first").status_code == 200
    token_file.write_text("second-token\nthird\n")
    assert http_post(service.http_url, body, Authorization="Bearer first").status_code == 401
    assert http_post(service.http_url, body, Authorization="Bearer third").status_code == 200
    grpc_backend.recorder.wait_for(2)


def test_tls_receivers(
    grpc_backend: GrpcBackend, start_service: StartService, tls_files: TlsFiles
) -> None:
    tls = {"cert_file": tls_files.server_cert, "key_file": tls_files.server_key}
    receiver = {
        "protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
            "http": {"endpoint": "127.0.0.1:0", "tls": tls},
        }
    }
    service = start_service(base_config(forward_to(grpc_backend), receiver=receiver))
    body = make_request().SerializeToString()
    credentials = grpc.ssl_channel_credentials(Path(tls_files.ca_cert).read_bytes())
    code, details, _ = grpc_export(service.grpc_port, body, credentials=credentials)
    assert code == grpc.StatusCode.OK, details
    url = service.http_url.replace("http://", "https://")
    response = requests.post(
        url,
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
        verify=tls_files.ca_cert,
        timeout=20,
    )
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(url, data=body, verify=tls_files.other_ca_cert, timeout=20)
    grpc_backend.recorder.wait_for(2)


def test_exporters_send_headers(
    grpc_backend: GrpcBackend, http_backend: HttpBackend, start_service: StartService
) -> None:
    exporters = {
        "otlp_grpc": {
            "endpoint": grpc_backend.endpoint,
            "tls": {"insecure": True},
            "headers": {"Authorization": "Bearer to-grpc"},
        },
        "otlp_http": {"endpoint": http_backend.url, "headers": {"X-Scope-OrgID": "tenant-1"}},
    }
    service = start_service(base_config(exporters))
    http_post(service.http_url, make_request().SerializeToString())
    grpc_backend.recorder.wait_for(1)
    http_backend.recorder.wait_for(1)
    assert grpc_backend.recorder.headers[0]["authorization"] == "Bearer to-grpc"
    assert http_backend.recorder.headers[0]["X-Scope-OrgID"] == "tenant-1"


def test_exporters_verify_the_backend_certificate(
    grpc_backend: GrpcBackend, start_service: StartService, tls_files: TlsFiles
) -> None:
    tls = {"cert_file": tls_files.server_cert, "key_file": tls_files.server_key}
    receiver = {
        "protocols": {
            "grpc": {"endpoint": "127.0.0.1:0", "tls": tls},
            "http": {"endpoint": "127.0.0.1:0", "tls": tls},
        }
    }
    gateway = start_service(base_config(forward_to(grpc_backend), receiver=receiver))
    https_url = gateway.http_url.replace("http://", "https://")
    exporters = {
        "otlp_grpc": {
            "endpoint": f"localhost:{gateway.grpc_port}",
            "tls": {"ca_file": tls_files.ca_cert},
        },
        "otlp_http": {"profiles_endpoint": https_url, "tls": {"ca_file": tls_files.ca_cert}},
    }
    agent_side = start_service(base_config(exporters))
    assert http_post(agent_side.http_url, make_request().SerializeToString()).status_code == 200
    # One request fanned out to both exporters, both went through TLS to the gateway.
    assert len(grpc_backend.recorder.wait_for(2)) == 2


def test_exporter_refuses_a_backend_its_ca_does_not_trust(
    grpc_backend: GrpcBackend, start_service: StartService, tls_files: TlsFiles
) -> None:
    tls = {"cert_file": tls_files.server_cert, "key_file": tls_files.server_key}
    receiver = {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "tls": tls}}}
    gateway = start_service(base_config(forward_to(grpc_backend), receiver=receiver))
    exporters = {
        "otlp_grpc": {
            "endpoint": f"localhost:{gateway.grpc_port}",
            "tls": {"ca_file": tls_files.other_ca_cert},
            "retry_on_failure": {"enabled": False},
        }
    }
    agent_side = start_service(base_config(exporters))
    assert http_post(agent_side.http_url, make_request().SerializeToString()).status_code == 200
    failed = agent_side.service.metrics.counter("exporter_send_failed_requests_total", "")
    wait_until(lambda: failed.value(exporter="otlp_grpc") == 1, what="the failed export")
    assert grpc_backend.recorder.received() == []
