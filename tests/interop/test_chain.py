"""End to end with real processes: the agent, collector_processor and the real Collector.

(a) agent -> collector_processor (enriching) -> OpenTelemetry Collector -> collector_processor
    `file`;
(b) agent -> OpenTelemetry Collector -> collector_processor (enriching) -> `file`.

Besides the agent's own profiles, a hand-built request with known links and attributes goes
through the same chain, so that every field is checked against a known value.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import grpc
import pytest
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2_grpc
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from .agent import (
    AGENT_SERVICE,
    assert_links_from_the_workload,
    assert_looks_like_the_workload,
    run_agent,
)
from .conftest import Starter
from .file_output import read_requests
from .payloads import RESOURCE_ATTRIBUTES, hand_built_request
from .resolve import ResolvedProfile, resolve, resolve_all
from .services import grpc_exporter, http_exporter
from .sinks import GrpcSink

pytestmark = [pytest.mark.collector, pytest.mark.timeout(1800)]

# What the enriching collector_processor does to every resource.
INSERTED = {"k8s.cluster.name": "interop-cluster"}
UPSERTED = {"deployment.environment.name": "interop-e2e"}
RESOURCE_PROCESSOR = {
    "resource": {
        "attributes": [
            *({"key": k, "value": v, "action": "insert"} for k, v in INSERTED.items()),
            *({"key": k, "value": v, "action": "upsert"} for k, v in UPSERTED.items()),
        ]
    }
}
HAND_BUILT_SERVICE = str(RESOURCE_ATTRIBUTES["service.name"])


def enriched(profile: ResolvedProfile) -> ResolvedProfile:
    """`profile` as the resource processor above should leave it."""
    attributes = {**INSERTED, **profile.resource_attributes, **UPSERTED}
    return dataclasses.replace(profile, resource=tuple(sorted(attributes.items())))


def send(endpoint: str, request: ExportProfilesServiceRequest) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        profiles_service_pb2_grpc.ProfilesServiceStub(channel).Export(request, timeout=10)


def services_in(profiles: List[ResolvedProfile]) -> set[str]:
    return {str(p.resource_attributes.get("service.name")) for p in profiles}


def wait_until_equal(
    actual: Callable[[], List[ResolvedProfile]],
    expected: Callable[[], List[ResolvedProfile]],
    timeout_seconds: float = 60.0,
) -> List[ResolvedProfile]:
    """Poll until both sides hold the same profiles, from both the agent and the hand-built request.

    Either side may still be growing; equal content at any moment, with both services present,
    means everything written upstream by then arrived intact downstream.
    """
    deadline = time.monotonic() + timeout_seconds
    last: Optional[List[ResolvedProfile]] = None
    want: List[ResolvedProfile] = []
    while time.monotonic() < deadline:
        last, want = actual(), expected()
        if last == want and services_in(want) == {AGENT_SERVICE, HAND_BUILT_SERVICE}:
            return last
        time.sleep(0.1)
    assert last is not None
    missing = [p for p in want if p not in last]
    extra = [p for p in last if p not in want]
    raise AssertionError(
        f"downstream never matched upstream in {timeout_seconds}s: "
        f"{len(missing)} profile(s) missing or changed, {len(extra)} unexpected; "
        f"services upstream {services_in(want)}, downstream {services_in(last)}; "
        f"first missing: {missing[:1]!r}; first unexpected: {extra[:1]!r}"
    )


def assert_enriched_and_intact(final: List[ResolvedProfile]) -> None:
    for profile in final:
        attributes = profile.resource_attributes
        assert attributes["k8s.cluster.name"] == "interop-cluster"
        assert attributes["deployment.environment.name"] == "interop-e2e"
    hand_built = [p for p in final if p.resource_attributes["service.name"] == HAND_BUILT_SERVICE]
    assert hand_built == sorted((enriched(p) for p in resolve(hand_built_request())), key=repr)


def test_agent_to_processor_to_otelcol_to_processor_file(
    start_otelcol: Starter, start_collector_processor: Starter, tmp_path: Path
) -> None:
    final_file = tmp_path / "final.jsonl"
    gateway_file = tmp_path / "gateway.jsonl"
    backend = start_collector_processor({"file": {"path": str(final_file)}})
    otelcol = start_otelcol({"otlp_grpc": grpc_exporter(backend.grpc_endpoint)})
    gateway = start_collector_processor(
        # The gateway also writes what it forwards, to compare with what reaches the end.
        {"otlp_grpc": grpc_exporter(otelcol.grpc_endpoint), "file": {"path": str(gateway_file)}},
        processors=RESOURCE_PROCESSOR,
    )

    spans = run_agent(f"http://{gateway.grpc_endpoint}", "grpc", tmp_path)
    send(gateway.grpc_endpoint, hand_built_request())

    final = wait_until_equal(
        lambda: resolve_all(read_requests(final_file)),
        lambda: resolve_all(read_requests(gateway_file)),
    )
    assert_enriched_and_intact(final)
    assert_looks_like_the_workload(final, environment=UPSERTED["deployment.environment.name"])
    assert_links_from_the_workload(final, spans)


@pytest.mark.parametrize("hop", ["otlp_grpc", "otlp_http"])
def test_agent_to_otelcol_to_processor_file(
    start_otelcol: Starter,
    start_collector_processor: Starter,
    grpc_sink: GrpcSink,
    tmp_path: Path,
    hop: str,
) -> None:
    final_file = tmp_path / "final.jsonl"
    backend = start_collector_processor(
        {"file": {"path": str(final_file)}}, processors=RESOURCE_PROCESSOR
    )
    exporters: Dict[str, Any] = {
        # The Collector also sends a copy to an in-test backend, to compare with the end.
        "otlp_grpc/copy": grpc_exporter(grpc_sink.endpoint),
        hop: (grpc_exporter(backend.grpc_endpoint) if hop == "otlp_grpc"
              else http_exporter(backend.http_endpoint)),
    }  # fmt: skip
    otelcol = start_otelcol(exporters)

    spans = run_agent(otelcol.http_endpoint, "http/protobuf", tmp_path)
    send(otelcol.grpc_endpoint, hand_built_request())

    final = wait_until_equal(
        lambda: resolve_all(read_requests(final_file)),
        lambda: sorted((enriched(p) for p in resolve_all(grpc_sink.requests)), key=repr),
    )
    assert_enriched_and_intact(final)
    assert_looks_like_the_workload(resolve_all(grpc_sink.requests), environment="agent-side")
    assert_links_from_the_workload(final, spans)
