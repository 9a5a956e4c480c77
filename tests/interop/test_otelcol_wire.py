"""A hand-built v1.10 request survives a round trip through the real OpenTelemetry Collector."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import grpc
import pytest
import requests
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2_grpc
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
    ExportProfilesServiceResponse,
)

from .conftest import Starter
from .payloads import (
    LINKS,
    RESOURCE_ATTRIBUTES,
    SAMPLES,
    SCOPE_ATTRIBUTES,
    SCOPE_NAME,
    SCOPE_VERSION,
    hand_built_request,
)
from .resolve import resolve, resolve_all
from .services import RunningService, grpc_exporter, http_exporter
from .sinks import HTTP_PATH, GrpcSink, HttpSink, Recorder

pytestmark = [pytest.mark.collector, pytest.mark.timeout(1800)]


def assert_accepted(response: ExportProfilesServiceResponse) -> None:
    # The Collector sends an empty partial_success message; only its content matters.
    assert response.partial_success.rejected_profiles == 0, response
    assert response.partial_success.error_message == "", response


def send_grpc(collector: RunningService, request: ExportProfilesServiceRequest) -> None:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        stub = profiles_service_pb2_grpc.ProfilesServiceStub(channel)
        response: ExportProfilesServiceResponse = stub.Export(request, timeout=10)
    assert_accepted(response)


def send_http(collector: RunningService, request: ExportProfilesServiceRequest) -> None:
    response = requests.post(
        collector.http_endpoint + HTTP_PATH,
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    parsed = ExportProfilesServiceResponse.FromString(response.content)
    assert_accepted(parsed)


@pytest.mark.parametrize("ingress", ["grpc", "http"])
@pytest.mark.parametrize("egress", ["otlp_grpc", "otlp_http"])
def test_request_round_trips_through_collector(
    start_otelcol: Starter,
    grpc_sink: GrpcSink,
    http_sink: HttpSink,
    ingress: str,
    egress: str,
) -> None:
    sink: Recorder
    exporters: Dict[str, Any]
    if egress == "otlp_grpc":
        sink, exporters = grpc_sink, {"otlp_grpc": grpc_exporter(grpc_sink.endpoint)}
    else:
        sink, exporters = http_sink, {"otlp_http": http_exporter(http_sink.endpoint)}
    collector = start_otelcol(exporters)
    sent = hand_built_request()

    (send_grpc if ingress == "grpc" else send_http)(collector, sent)

    received = sink.wait_for_samples(2 * len(SAMPLES))
    # Content, not bytes: the Collector re-encodes, and may rebuild the shared dictionary.
    assert resolve_all(received) == resolve_all([sent])
    if egress == "otlp_http":
        assert set(http_sink.paths) == {HTTP_PATH}


def test_resource_scope_sample_content_survives(
    start_otelcol: Starter, grpc_sink: GrpcSink
) -> None:
    collector = start_otelcol({"otlp_grpc": grpc_exporter(grpc_sink.endpoint)})
    send_grpc(collector, hand_built_request())

    received = grpc_sink.wait_for_samples(2 * len(SAMPLES))
    profiles = resolve_all(received)
    assert {p.sample_type for p in profiles} == {("cpu", "nanoseconds"), ("wall", "nanoseconds")}
    for profile in profiles:
        assert profile.resource_attributes == RESOURCE_ATTRIBUTES
        assert profile.scope == (SCOPE_NAME, SCOPE_VERSION, tuple(sorted(SCOPE_ATTRIBUTES.items())))
        assert profile.period_type == profile.sample_type
        assert profile.period == 10_000_000
        links = {sample[4] for sample, _ in profile.samples}
        assert links == {None} | {(t.hex(), s.hex()) for t, s in LINKS}
        threads = {dict(sample[3])["thread.name"] for sample, _ in profile.samples}
        assert threads == {"MainThread", "worker-1"}
        leaves = {sample[0][0][:2] for sample, _ in profile.samples}
        assert ("compute_tax", "/srv/tax.py") in leaves
        frame_types = {frame[4] for sample, _ in profile.samples for frame in sample[0]}
        assert frame_types == {frozenset({("profile.frame.type", "cpython")})}


def _string_references(request: ExportProfilesServiceRequest) -> Tuple[int, int]:
    """(attributes with plain keys, attributes with string-table keys) on resources and scopes."""
    plain = referenced = 0
    for resource_profiles in request.resource_profiles:
        attributes = list(resource_profiles.resource.attributes)
        for scope_profiles in resource_profiles.scope_profiles:
            attributes.extend(scope_profiles.scope.attributes)
        for attribute in attributes:
            if attribute.key:
                plain += 1
            if attribute.key_strindex:
                referenced += 1
    return plain, referenced


def test_collector_grpc_exporter_sends_plain_resource_attributes(
    start_otelcol: Starter, grpc_sink: GrpcSink
) -> None:
    collector = start_otelcol({"otlp_grpc": grpc_exporter(grpc_sink.endpoint)})
    send_grpc(collector, hand_built_request())

    (received,) = grpc_sink.wait_for_samples(2 * len(SAMPLES))
    attribute_count = len(RESOURCE_ATTRIBUTES) + len(SCOPE_ATTRIBUTES)
    assert _string_references(received) == (attribute_count, 0)


def test_collector_http_exporter_sends_resource_attributes_as_string_references(
    start_otelcol: Starter, http_sink: HttpSink
) -> None:
    # pdata's ProtoMarshaler (used by otlp_http, not by otlp_grpc) moves resource and scope
    # attribute strings into the dictionary: whoever receives from it must resolve them.
    collector = start_otelcol({"otlp_http": http_exporter(http_sink.endpoint)})
    send_grpc(collector, hand_built_request())

    (received,) = http_sink.wait_for_samples(2 * len(SAMPLES))
    attribute_count = len(RESOURCE_ATTRIBUTES) + len(SCOPE_ATTRIBUTES)
    assert _string_references(received) == (0, attribute_count)
    for profile in resolve(received):
        assert profile.resource_attributes == RESOURCE_ATTRIBUTES


def test_collector_keeps_requests_of_two_services_apart(
    start_otelcol: Starter, grpc_sink: GrpcSink
) -> None:
    first = hand_built_request()
    second = hand_built_request()
    service_name = second.resource_profiles[0].resource.attributes[0]
    assert service_name.key == "service.name"
    service_name.value.string_value = "payments"
    collector = start_otelcol({"otlp_grpc": grpc_exporter(grpc_sink.endpoint)})

    send_grpc(collector, first)
    send_grpc(collector, second)

    received = grpc_sink.wait_for_samples(4 * len(SAMPLES))
    by_service: Dict[str, int] = {}
    for profile in resolve_all(received):
        name = profile.resource_attributes["service.name"]
        by_service[name] = by_service.get(name, 0) + profile.sample_count
    assert by_service == {"checkout": 2 * len(SAMPLES), "payments": 2 * len(SAMPLES)}
    assert resolve_all(received) == sorted(resolve(first) + resolve(second), key=repr)
