"""The OTLP/gRPC receiver: accepted data reaches the backend, bad data gets INVALID_ARGUMENT."""

from __future__ import annotations

from typing import Any, Callable, Dict

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from .backends import Failure, GrpcBackend
from .harness import InProcessService, base_config, grpc_export
from .payloads import make_request, resource_attributes

StartService = Callable[..., InProcessService]


def forward_to(backend: GrpcBackend, **extra: Any) -> Dict[str, Any]:
    return {
        "otlp_grpc": {
            "endpoint": backend.endpoint,
            "tls": {"insecure": True},
            "retry_on_failure": {"initial_interval": "10ms", "max_interval": "50ms"},
            **extra,
        }
    }


def test_accepted_request_reaches_the_backend_intact(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    service = start_service(base_config(forward_to(grpc_backend)))
    request = make_request(samples_per_profile=30)
    code, details, _ = grpc_export(service.grpc_port, request.SerializeToString())
    assert code == grpc.StatusCode.OK, details
    (received,) = grpc_backend.recorder.wait_for(1)
    assert received == request


def test_empty_request_is_ok_and_not_forwarded(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    service = start_service(base_config(forward_to(grpc_backend)))
    assert grpc_export(service.grpc_port, b"")[0] == grpc.StatusCode.OK
    # A real request sent afterwards is the first thing the backend sees.
    grpc_export(service.grpc_port, make_request().SerializeToString())
    grpc_backend.recorder.wait_for(1)
    assert grpc_backend.recorder.attempts == 1


def _corrupt_stack_index(request: Any) -> None:
    request.resource_profiles[0].scope_profiles[0].profiles[1].samples[3].stack_index = 57


def _corrupt_span_id(request: Any) -> None:
    request.dictionary.link_table[1].span_id = b"\x01\x02\x03"


def _corrupt_string_table(request: Any) -> None:
    request.dictionary.string_table[0] = "oops"


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            _corrupt_stack_index,
            "resource_profiles[0].scope_profiles[0].profiles[1].samples[3].stack_index 57 "
            "out of range (stack_table has 4)",
        ),
        (_corrupt_span_id, "dictionary.link_table[1].span_id must be 8 bytes or empty, got 3"),
        (_corrupt_string_table, 'dictionary.string_table[0] must be "" (the zero value)'),
    ],
)
def test_invalid_request_gets_invalid_argument_with_the_reason(
    grpc_backend: GrpcBackend,
    start_service: StartService,
    corrupt: Callable[[Any], None],
    expected: str,
) -> None:
    service = start_service(base_config(forward_to(grpc_backend)))
    request = make_request()
    corrupt(request)
    code, details, _ = grpc_export(service.grpc_port, request.SerializeToString())
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, expected)
    # The service keeps working after bad input.
    assert (
        grpc_export(service.grpc_port, make_request().SerializeToString())[0] == grpc.StatusCode.OK
    )
    assert len(grpc_backend.recorder.wait_for(1)) == 1


def test_garbage_bytes_get_invalid_argument(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    service = start_service(base_config(forward_to(grpc_backend)))
    code, details, _ = grpc_export(service.grpc_port, b"\xff\xff\xff\xffgarbage")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("cannot decode ExportProfilesServiceRequest protobuf (11 bytes)")


def test_oversized_message_is_refused(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    receiver = {"protocols": {"grpc": {"endpoint": "127.0.0.1:0", "max_recv_msg_size_mib": 1}}}
    service = start_service(base_config(forward_to(grpc_backend), receiver=receiver))
    code, details, _ = grpc_export(service.grpc_port, b"\x00" * (1024 * 1024 + 10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in details


def test_processors_attach_resource_attributes(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    processors = {
        "resource": {
            "attributes": [
                {"key": "deployment.environment", "value": "prod", "action": "upsert"},
                {"key": "service.name", "value": "overridden", "action": "insert"},
            ]
        }
    }
    service = start_service(base_config(forward_to(grpc_backend), processors=processors))
    grpc_export(service.grpc_port, make_request(service_name="checkout").SerializeToString())
    (received,) = grpc_backend.recorder.wait_for(1)
    assert resource_attributes(received) == {
        "service.name": "checkout",
        "deployment.environment": "prod",
    }


def test_full_queue_refuses_with_unavailable_and_retry_info(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    grpc_backend.recorder.fail_always = Failure()
    exporters = forward_to(grpc_backend, sending_queue={"queue_size": 1, "num_consumers": 1})
    service = start_service(base_config(exporters))
    assert (
        grpc_export(service.grpc_port, make_request().SerializeToString())[0] == grpc.StatusCode.OK
    )
    code, details, trailing = grpc_export(service.grpc_port, make_request().SerializeToString())
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details == 'sending queue of exporter "otlp_grpc" is full'
    status = status_pb2.Status.FromString(dict(trailing)["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds >= 1
    grpc_backend.recorder.fail_always = None  # let the queue drain
    grpc_backend.recorder.wait_for(1)


def test_memory_limiter_refuses_with_unavailable(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    # 1 MiB is far below any Python process: every request is over budget.
    processors = {"memory_limiter": {"check_interval": "1s", "limit_mib": 1}}
    service = start_service(base_config(forward_to(grpc_backend), processors=processors))
    code, details, _ = grpc_export(service.grpc_port, make_request().SerializeToString())
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("memory usage ")
    assert details.endswith("is above the soft limit 0 MiB")
    assert grpc_backend.recorder.attempts == 0
