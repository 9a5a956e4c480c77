"""The OTLP/HTTP receiver: protobuf, JSON and gzip in; 400/413/415/503 with reasons out."""

from __future__ import annotations

import gzip
import json
from typing import Any, Callable, Dict

import pytest
import requests
from google.rpc import status_pb2

from collector_processor import otlp_json

from .backends import Failure, GrpcBackend
from .harness import InProcessService, base_config, http_post
from .payloads import make_request

StartService = Callable[..., InProcessService]
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def forward_to(backend: GrpcBackend, **extra: Any) -> Dict[str, Any]:
    return {
        "otlp_grpc": {
            "endpoint": backend.endpoint,
            "tls": {"insecure": True},
            "retry_on_failure": {"initial_interval": "10ms", "max_interval": "50ms"},
            **extra,
        }
    }


@pytest.fixture
def service(grpc_backend: GrpcBackend, start_service: StartService) -> InProcessService:
    receiver = {
        "protocols": {"http": {"endpoint": "127.0.0.1:0", "max_request_body_size": 200_000}}
    }
    return start_service(base_config(forward_to(grpc_backend), receiver=receiver))


def reason(response: Any) -> str:
    """The google.rpc.Status message in an error response (protobuf or JSON)."""
    if response.headers["Content-Type"].startswith(JSON):
        return str(json.loads(response.content)["message"])
    return str(status_pb2.Status.FromString(response.content).message)


def test_protobuf_gzip_and_json_are_accepted(
    service: InProcessService, grpc_backend: GrpcBackend
) -> None:
    first, second, third = (make_request(seed=seed) for seed in (1, 2, 3))
    plain = http_post(service.http_url, first.SerializeToString())
    assert (plain.status_code, plain.content) == (200, b"")
    zipped = gzip.compress(second.SerializeToString())
    assert http_post(service.http_url, zipped, **{"Content-Encoding": "gzip"}).status_code == 200
    as_json = http_post(service.http_url, otlp_json.dumps(third).encode(), JSON)
    assert (as_json.status_code, as_json.json()) == (200, {})
    received = grpc_backend.recorder.wait_for(3)
    assert sorted(r.SerializeToString() for r in received) == sorted(
        r.SerializeToString() for r in (first, second, third)
    )


def test_bad_index_is_a_400_naming_the_problem(service: InProcessService) -> None:
    request = make_request()
    request.dictionary.stack_table[2].location_indices[1] = 999
    response = http_post(service.http_url, request.SerializeToString())
    assert response.status_code == 400
    assert reason(response) == (
        "dictionary.stack_table[2].location_indices[1] 999 out of range (location_table has 6)"
    )


def test_bad_trace_id_in_json_is_a_400(service: InProcessService) -> None:
    document = json.loads(otlp_json.dumps(make_request()))
    document["dictionary"]["linkTable"][1]["traceId"] = "abcd"
    response = http_post(service.http_url, json.dumps(document).encode(), JSON)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith(JSON)
    assert reason(response) == "dictionary.link_table[1].trace_id must be 16 bytes or empty, got 3"


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status", "expected"),
    [
        (b"\x0a\xff\xff", PROTOBUF, {}, 400, "cannot decode ExportProfilesServiceRequest"),
        (b"{not json", JSON, {}, 400, "invalid JSON: "),
        (b"[1, 2]", JSON, {}, 400, "invalid OTLP JSON: the top level must be an object"),
        (b'{"resourceProfiles": 5}', JSON, {}, 400, "invalid OTLP JSON: "),
        (b"not gzip", PROTOBUF, {"Content-Encoding": "gzip"}, 400, "invalid gzip body: "),
        (b"x", PROTOBUF, {"Content-Encoding": "br"}, 400, "unsupported Content-Encoding"),
        (b"x", "text/plain", {}, 415, "unsupported Content-Type"),
        (b"\x00" * 300_000, PROTOBUF, {}, 413, "request body exceeds max_request_body_size"),
        (
            gzip.compress(b"\x00" * 300_000),
            PROTOBUF,
            {"Content-Encoding": "gzip"},
            413,
            "decompressed body exceeds max_request_body_size (200000 bytes)",
        ),
    ],
)
def test_malformed_requests_get_a_clear_refusal(
    service: InProcessService,
    body: bytes,
    content_type: str,
    headers: Dict[str, str],
    status: int,
    expected: str,
) -> None:
    response = http_post(service.http_url, body, content_type, **headers)
    assert response.status_code == status
    assert reason(response).startswith(expected), reason(response)
    # Still serving afterwards.
    assert http_post(service.http_url, make_request().SerializeToString()).status_code == 200


def test_full_queue_is_a_503_with_retry_after(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    grpc_backend.recorder.fail_always = Failure()
    exporters = forward_to(grpc_backend, sending_queue={"queue_size": 1, "num_consumers": 1})
    receiver = {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}
    service = start_service(base_config(exporters, receiver=receiver))
    assert http_post(service.http_url, make_request().SerializeToString()).status_code == 200
    response = http_post(service.http_url, make_request().SerializeToString())
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert reason(response) == 'sending queue of exporter "otlp_grpc" is full'
    grpc_backend.recorder.fail_always = None  # let the queue drain
    grpc_backend.recorder.wait_for(1)


def test_wrong_path_and_method_are_rejected(service: InProcessService) -> None:
    assert http_post(service.http_url + "x", b"").status_code == 404
    assert requests.get(service.http_url, timeout=10).status_code == 405
