"""Realistic, valid OTLP profiles requests for the collector tests (generated proto classes)."""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional, Sequence, Tuple

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

START_UNIX_NANO = 1_700_000_000_000_000_000
DURATION_NANO = 10_000_000_000

# (function, file, line) frames, outermost first.
STACKS: Tuple[Tuple[Tuple[str, str, int], ...], ...] = (
    (("main", "app.py", 10), ("handle", "app.py", 42), ("checkout", "shop/views.py", 7)),
    (("main", "app.py", 10), ("handle", "app.py", 42), ("render", "shop/templates.py", 88)),
    (("main", "app.py", 10), ("idle", "app.py", 99)),
)


class _Tables:
    """Look-up-or-append interning into a shared ProfilesDictionary (zero values first)."""

    def __init__(self, dictionary: pb.ProfilesDictionary) -> None:
        self.d = dictionary
        self.d.string_table.append("")
        self.d.mapping_table.add()
        self.d.location_table.add()
        self.d.function_table.add()
        self.d.link_table.add()
        self.d.attribute_table.add()
        self.d.stack_table.add()
        self._strings: Dict[str, int] = {"": 0}
        self._functions: Dict[Tuple[str, str], int] = {}
        self._locations: Dict[Tuple[str, str, int], int] = {}
        self._stacks: Dict[Tuple[int, ...], int] = {}
        self._links: Dict[Tuple[bytes, bytes], int] = {}
        self._attributes: Dict[Tuple[str, str], int] = {}

    def string(self, value: str) -> int:
        if value not in self._strings:
            self._strings[value] = len(self.d.string_table)
            self.d.string_table.append(value)
        return self._strings[value]

    def function(self, name: str, filename: str) -> int:
        key = (name, filename)
        if key not in self._functions:
            self._functions[key] = len(self.d.function_table)
            self.d.function_table.add(
                name_strindex=self.string(name),
                system_name_strindex=self.string(name),
                filename_strindex=self.string(filename),
            )
        return self._functions[key]

    def location(self, frame: Tuple[str, str, int]) -> int:
        if frame not in self._locations:
            self._locations[frame] = len(self.d.location_table)
            location = self.d.location_table.add(
                attribute_indices=[self.attribute("profile.frame.type", "cpython")]
            )
            location.lines.add(function_index=self.function(frame[0], frame[1]), line=frame[2])
        return self._locations[frame]

    def stack(self, frames: Sequence[Tuple[str, str, int]]) -> int:
        # Leaf first, as pprof and OTLP order locations.
        key = tuple(self.location(frame) for frame in reversed(frames))
        if key not in self._stacks:
            self._stacks[key] = len(self.d.stack_table)
            self.d.stack_table.add(location_indices=key)
        return self._stacks[key]

    def link(self, trace_id: bytes, span_id: bytes) -> int:
        key = (trace_id, span_id)
        if key not in self._links:
            self._links[key] = len(self.d.link_table)
            self.d.link_table.add(trace_id=trace_id, span_id=span_id)
        return self._links[key]

    def attribute(self, key: str, value: str) -> int:
        if (key, value) not in self._attributes:
            self._attributes[(key, value)] = len(self.d.attribute_table)
            self.d.attribute_table.add(
                key_strindex=self.string(key), value=AnyValue(string_value=value)
            )
        return self._attributes[(key, value)]


def trace_id(n: int) -> bytes:
    return hashlib.sha256(f"trace-{n}".encode()).digest()[:16]


def span_id(n: int) -> bytes:
    return hashlib.sha256(f"span-{n}".encode()).digest()[:8]


def make_request(
    *,
    service_name: str = "checkout",
    samples_per_profile: int = 12,
    resource_attributes: Optional[Dict[str, str]] = None,
    seed: int = 0,
) -> ExportProfilesServiceRequest:
    """One resource, one scope, a cpu and a wall profile sharing one dictionary."""
    request = ExportProfilesServiceRequest()
    tables = _Tables(request.dictionary)
    attributes = {"service.name": service_name, **(resource_attributes or {})}
    resource = Resource(
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]
    )
    resource_profiles = request.resource_profiles.add(resource=resource)
    scope_profiles = resource_profiles.scope_profiles.add(
        scope=InstrumentationScope(name="otelprof", version="0.1.0")
    )
    for sample_type, unit in (("cpu", "nanoseconds"), ("wall", "nanoseconds")):
        profile = scope_profiles.profiles.add(
            sample_type=pb.ValueType(
                type_strindex=tables.string(sample_type), unit_strindex=tables.string(unit)
            ),
            period_type=pb.ValueType(
                type_strindex=tables.string(sample_type), unit_strindex=tables.string(unit)
            ),
            period=10_000_000,
            time_unix_nano=START_UNIX_NANO + seed * DURATION_NANO,
            duration_nano=DURATION_NANO,
            profile_id=hashlib.sha256(f"{seed}-{sample_type}".encode()).digest()[:16],
        )
        for k in range(samples_per_profile):
            linked = k % 3 != 2
            profile.samples.add(
                stack_index=tables.stack(STACKS[k % len(STACKS)]),
                link_index=tables.link(trace_id(seed * 1000 + k), span_id(k)) if linked else 0,
                attribute_indices=[
                    tables.attribute("thread.name", f"worker-{k % 2}"),
                    tables.attribute("thread.id", str(1000 + k % 2)),
                ],
                values=[10_000_000 * (k + 1)],
                timestamps_unix_nano=[START_UNIX_NANO + seed * DURATION_NANO + k * 1_000_000],
            )
    return request


def resource_attributes(request: ExportProfilesServiceRequest, index: int = 0) -> Dict[str, object]:
    """The plain resource attributes of one ResourceProfiles as a dict of Python values."""
    result: Dict[str, object] = {}
    for attribute in request.resource_profiles[index].resource.attributes:
        kind = attribute.value.WhichOneof("value")
        result[attribute.key] = getattr(attribute.value, kind) if kind else None
    return result


def sample_count(request: ExportProfilesServiceRequest) -> int:
    return sum(
        len(profile.samples)
        for rp in request.resource_profiles
        for sp in rp.scope_profiles
        for profile in sp.profiles
    )


def seeds(requests: List[ExportProfilesServiceRequest]) -> List[int]:
    """The ``seed`` each request was made with (recovered from its first profile's start time)."""
    return sorted(
        (r.resource_profiles[0].scope_profiles[0].profiles[0].time_unix_nano - START_UNIX_NANO)
        // DURATION_NANO
        for r in requests
    )
