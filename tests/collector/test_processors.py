"""The resource processor (every action), resource detection (every detector), memory_limiter."""

from __future__ import annotations

import asyncio
import hashlib
import struct
from typing import Any, Dict, List

import pytest

from collector_processor.confparse import Node
from collector_processor.errors import RefusedError
from collector_processor.processor.config import (
    MemoryLimiterConfig,
    ResourceDetectionConfig,
    load_resource_config,
)
from collector_processor.processor.memory_limiter import MemoryLimiter
from collector_processor.processor.resource import ResourceProcessor
from collector_processor.processor.resourcedetection import (
    ResourceDetectionProcessor,
    detect,
    detect_env,
    detect_k8s,
    detect_system,
)

from .payloads import make_request, resource_attributes

MIB = 1024 * 1024


def run_resource(actions: List[Dict[str, Any]], attributes: Dict[str, str]) -> Dict[str, object]:
    config = load_resource_config(Node({"attributes": actions}, "processors::resource"))
    request = make_request(service_name="svc", resource_attributes=attributes)
    ResourceProcessor("resource", config).process(request)
    return resource_attributes(request)


def test_insert_only_adds_missing_keys() -> None:
    result = run_resource(
        [
            {"key": "env", "value": "prod", "action": "insert"},
            {"key": "team", "value": "shop", "action": "insert"},
        ],
        {"env": "dev"},
    )
    assert result == {"service.name": "svc", "env": "dev", "team": "shop"}


def test_update_only_changes_existing_keys() -> None:
    result = run_resource(
        [
            {"key": "env", "value": "prod", "action": "update"},
            {"key": "team", "value": "shop", "action": "update"},
        ],
        {"env": "dev"},
    )
    assert result == {"service.name": "svc", "env": "prod"}


def test_upsert_does_both_and_keeps_value_types() -> None:
    result = run_resource(
        [
            {"key": "env", "value": "prod", "action": "upsert"},
            {"key": "replicas", "value": 3, "action": "upsert"},
            {"key": "ratio", "value": 0.5, "action": "upsert"},
            {"key": "canary", "value": True, "action": "upsert"},
        ],
        {"env": "dev"},
    )
    assert result == {
        "service.name": "svc",
        "env": "prod",
        "replicas": 3,
        "ratio": 0.5,
        "canary": True,
    }


def test_list_values_become_arrays() -> None:
    config = load_resource_config(
        Node({"attributes": [{"key": "zones", "value": ["a", 1], "action": "insert"}]}, "r")
    )
    request = make_request()
    ResourceProcessor("resource", config).process(request)
    value = request.resource_profiles[0].resource.attributes[-1].value
    assert [v.WhichOneof("value") for v in value.array_value.values] == [
        "string_value",
        "int_value",
    ]


def test_copy_from_attribute() -> None:
    result = run_resource(
        [
            {"key": "app", "from_attribute": "service.name", "action": "insert"},
            {"key": "env", "from_attribute": "deployment.environment", "action": "upsert"},
            {"key": "missing", "from_attribute": "nope", "action": "upsert"},
        ],
        {"deployment.environment": "staging"},
    )
    assert result == {
        "service.name": "svc",
        "deployment.environment": "staging",
        "app": "svc",
        "env": "staging",
    }


def test_delete_by_key_and_pattern() -> None:
    result = run_resource(
        [
            {"key": "process.pid", "action": "delete"},
            {"pattern": "^process\\.command", "action": "delete"},
        ],
        {"process.pid": "1", "process.command_line": "x", "process.command_args": "y", "keep": "z"},
    )
    assert result == {"service.name": "svc", "keep": "z"}


def test_hash_is_sha256_hex_of_the_value() -> None:
    config = load_resource_config(
        Node(
            {
                "attributes": [
                    {"key": "user.email", "action": "hash"},
                    {"key": "count", "action": "hash"},
                    {"key": "absent", "action": "hash"},
                ]
            },
            "r",
        )
    )
    request = make_request(resource_attributes={"user.email": "a@b.c"})
    request.resource_profiles[0].resource.attributes.add(key="count").value.int_value = 7
    ResourceProcessor("resource", config).process(request)
    result = resource_attributes(request)
    assert result["user.email"] == hashlib.sha256(b"a@b.c").hexdigest()
    assert result["count"] == hashlib.sha256(struct.pack("<q", 7)).hexdigest()
    assert "absent" not in result


def test_extract_named_groups() -> None:
    result = run_resource(
        [
            {
                "key": "image",
                "pattern": "^(?P<image_name>[^:]+):(?P<image_tag>.+)$",
                "action": "extract",
            }
        ],
        {"image": "shop/checkout:1.4.2"},
    )
    assert result["image_name"] == "shop/checkout"
    assert result["image_tag"] == "1.4.2"


def test_convert_types_and_leave_unconvertible_values() -> None:
    result = run_resource(
        [
            {"key": "port", "action": "convert", "converted_type": "int"},
            {"key": "weight", "action": "convert", "converted_type": "double"},
            {"key": "name", "action": "convert", "converted_type": "int"},
        ],
        {"port": "8080", "weight": "0.25", "name": "not-a-number"},
    )
    assert (result["port"], result["weight"], result["name"]) == (8080, 0.25, "not-a-number")


def test_actions_apply_to_every_resource() -> None:
    config = load_resource_config(
        Node({"attributes": [{"key": "env", "value": "prod", "action": "insert"}]}, "r")
    )
    request = make_request()
    second = make_request(service_name="other")
    request.resource_profiles.add().CopyFrom(second.resource_profiles[0])
    ResourceProcessor("resource", config).process(request)
    assert resource_attributes(request, 1) == {"service.name": "other", "env": "prod"}


# -- resource detection ------------------------------------------------------------------


def test_env_detector_reads_otel_resource_attributes() -> None:
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "team=shop, region=eu%2Dwest ,broken,=x"}
    assert detect_env(environ) == {"team": "shop", "region": "eu-west"}


def test_system_detector_with_injected_sources() -> None:
    config = ResourceDetectionConfig(detectors=("system",), hostname_sources=("dns", "os"))
    found = detect_system(
        config,
        hostname=lambda: "short",
        fqdn=lambda: "short.example.org",
        read=lambda path: "abc123\n" if path == "/etc/machine-id" else None,
        system=lambda: "Linux",
        machine=lambda: "aarch64",
    )
    assert found == {
        "host.name": "short.example.org",
        "host.id": "abc123",
        "os.type": "linux",
        "host.arch": "arm64",
    }


def test_system_detector_attributes_can_be_turned_off() -> None:
    config = ResourceDetectionConfig(
        detectors=("system",),
        system_attributes={
            "host.name": True,
            "host.id": False,
            "os.type": True,
            "host.arch": False,
        },
    )
    found = detect_system(config, hostname=lambda: "h", read=lambda path: "id")
    assert set(found) == {"host.name", "os.type"}


def test_k8s_detector_reads_downward_api_variables() -> None:
    environ = {
        "K8S_POD_NAME": "checkout-7d9f",
        "K8S_POD_UID": "0a1b",
        "K8S_NAMESPACE_NAME": "shop",
        "K8S_NODE_NAME": "node-3",
        "K8S_CONTAINER_NAME": "",
        "UNRELATED": "x",
    }
    assert detect_k8s(environ) == {
        "k8s.pod.name": "checkout-7d9f",
        "k8s.pod.uid": "0a1b",
        "k8s.namespace.name": "shop",
        "k8s.node.name": "node-3",
    }


def test_first_detector_wins() -> None:
    config = ResourceDetectionConfig(detectors=("env", "k8s"))
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=from-env", "K8S_POD_NAME": "from-k8s"}
    assert detect(config, environ)["k8s.pod.name"] == "from-env"


@pytest.mark.parametrize(
    ("override", "expected"), [(False, "agent-host"), (True, "collector-host")]
)
def test_agent_attributes_are_kept_unless_override(override: bool, expected: str) -> None:
    config = ResourceDetectionConfig(detectors=("system",), override=override)
    processor = ResourceDetectionProcessor(
        "resourcedetection", config, detected={"host.name": "collector-host", "os.type": "linux"}
    )
    asyncio.run(processor.start())
    request = make_request(resource_attributes={"host.name": "agent-host"})
    processor.process(request)
    result = resource_attributes(request)
    assert (result["host.name"], result["os.type"]) == (expected, "linux")


# -- memory limiter ----------------------------------------------------------------------


def test_memory_limiter_refuses_above_the_soft_limit_and_recovers() -> None:
    usage = [100 * MIB]
    limiter = MemoryLimiter(
        "memory_limiter",
        MemoryLimiterConfig(check_interval_seconds=1, limit_mib=200, spike_limit_mib=50),
        read_rss=lambda: usage[0],
    )
    assert limiter.soft_limit_bytes == 150 * MIB
    limiter.check()
    limiter.process(make_request())
    usage[0] = 160 * MIB
    limiter.check()
    with pytest.raises(RefusedError, match="memory usage 160 MiB is above the soft limit 150 MiB"):
        limiter.process(make_request())
    usage[0] = 120 * MIB
    limiter.check()
    limiter.process(make_request())


def test_memory_limiter_percentage_and_default_spike() -> None:
    limiter = MemoryLimiter(
        "memory_limiter",
        MemoryLimiterConfig(check_interval_seconds=1, limit_percentage=50),
        read_rss=lambda: 0,
        total_memory=lambda: 1000 * MIB,
    )
    assert (limiter.hard_limit_bytes, limiter.soft_limit_bytes) == (500 * MIB, 400 * MIB)


def test_memory_limiter_queue_budget() -> None:
    held = [0]
    limiter = MemoryLimiter(
        "memory_limiter",
        MemoryLimiterConfig(check_interval_seconds=1, limit_mib=10_000, queue_limit_mib=1),
        queue_bytes=lambda: held[0],
        read_rss=lambda: 0,
    )
    limiter.process(make_request())
    held[0] = 2 * MIB
    with pytest.raises(RefusedError, match=r"queue_limit_mib \(1 MiB\)"):
        limiter.process(make_request())
