"""Overload is refused before decoding: a pipeline that would refuse anyway (memory_limiter over
its soft limit, a sending queue full) turns requests away for the cost of a check, so refusals
stay cheap when the service is already struggling (figures: benchmarks/collector_load.py)."""

from __future__ import annotations

from typing import Callable

import grpc
from collector.backends import free_port
from collector.harness import InProcessService, base_config, grpc_export, http_post
from collector.payloads import make_request

from .helpers import grpc_exporter, retry_delay_seconds

GARBAGE = b"\xff\xfe not a protobuf request"


def test_memory_limiter_refuses_before_decoding(
    start_service: Callable[..., InProcessService],
) -> None:
    # A 2 MiB limit (soft 1 MiB): any Python process is above it, so every request is refused.
    limiter = {"check_interval": "1s", "limit_mib": 2, "spike_limit_mib": 1}
    config = base_config(
        {"otlp_grpc": grpc_exporter(free_port())}, processors={"memory_limiter": limiter}
    )
    service = start_service(config)
    code, details, trailing = grpc_export(service.grpc_port, GARBAGE)
    # Garbage would be INVALID_ARGUMENT if it had been decoded.
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert "above the soft limit" in details
    assert retry_delay_seconds(trailing) == 1
    response = http_post(service.http_url, GARBAGE)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    refused = service.service.pipelines[0]._refused
    assert refused.value(processor="memory_limiter", pipeline="profiles") == 2


def test_a_full_queue_refuses_before_decoding(
    start_service: Callable[..., InProcessService],
) -> None:
    exporter = grpc_exporter(free_port(), sending_queue={"queue_size": 1})
    service = start_service(base_config({"otlp_grpc": exporter}))
    assert grpc_export(service.grpc_port, make_request().SerializeToString())[0].name == "OK"
    code, details, trailing = grpc_export(service.grpc_port, GARBAGE)
    assert (code, details) == (
        grpc.StatusCode.UNAVAILABLE,
        'sending queue of exporter "otlp_grpc" is full',
    )
    assert retry_delay_seconds(trailing) == 1
    assert http_post(service.http_url, GARBAGE).status_code == 503
    sender = service.service.exporters["otlp_grpc"]
    assert sender._enqueue_failed.value(exporter="otlp_grpc") == 2
