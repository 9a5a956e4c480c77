"""String-table references in resource and scope attributes become plain keys and values."""

from __future__ import annotations

from typing import Callable

import grpc
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector_processor.normalize import resolve_string_references

from .backends import GrpcBackend
from .harness import InProcessService, base_config, grpc_export
from .payloads import make_request, resource_attributes

StartService = Callable[..., InProcessService]


def with_references(service_name: str = "checkout") -> ExportProfilesServiceRequest:
    """A request whose resource says deployment.environment.name=dev by reference, as the
    Collector's exporters send it."""
    request = make_request(service_name=service_name)
    strings = request.dictionary.string_table
    key_index, value_index = len(strings), len(strings) + 1
    strings.extend(["deployment.environment.name", "dev"])
    request.resource_profiles[0].resource.attributes.add(
        key_strindex=key_index, value=AnyValue(string_value_strindex=value_index)
    )
    return request


def test_references_are_resolved_including_nested_values() -> None:
    request = with_references()
    scope = request.resource_profiles[0].scope_profiles[0].scope
    nested = scope.attributes.add(key="labels").value.kvlist_value.values.add(key_strindex=1)
    nested.value.string_value_strindex = 2
    resolve_string_references(request)
    attribute = request.resource_profiles[0].resource.attributes[-1]
    assert attribute == KeyValue(
        key="deployment.environment.name", value=AnyValue(string_value="dev")
    )
    strings = request.dictionary.string_table
    assert scope.attributes[0].value.kvlist_value.values[0] == KeyValue(
        key=strings[1], value=AnyValue(string_value=strings[2])
    )


def test_resource_processor_sees_referenced_attributes(
    grpc_backend: GrpcBackend, start_service: StartService
) -> None:
    processors = {
        "resource": {
            "attributes": [
                {"key": "deployment.environment.name", "value": "prod", "action": "upsert"}
            ]
        }
    }
    exporters = {"otlp_grpc": {"endpoint": grpc_backend.endpoint, "tls": {"insecure": True}}}
    service = start_service(base_config(exporters, processors=processors))
    request = with_references()
    code, details, _ = grpc_export(service.grpc_port, request.SerializeToString())
    assert code == grpc.StatusCode.OK, details
    (received,) = grpc_backend.recorder.wait_for(1)
    keys = [a.key for a in received.resource_profiles[0].resource.attributes]
    assert keys.count("deployment.environment.name") == 1
    assert resource_attributes(received)["deployment.environment.name"] == "prod"
