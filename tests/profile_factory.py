"""A tiny hand builder of OTLP profile requests with known stacks, values, links and attributes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb

from otelprof.model import AttributeValue, Frame

TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN_A = bytes.fromhex("b7ad6b7169203331")
TRACE_B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
SPAN_B = bytes.fromhex("00f067aa0ba902b7")
START_NS = 1_700_000_000_000_000_000
DURATION_NS = 10_000_000_000


def frame(name: str, line: int, filename: str = "app.py", start_line: int = 0) -> Frame:
    """A Python frame whose function starts at ``start_line`` (default: 10 lines above)."""
    return Frame(name, filename, line, start_line or max(line - 10, 1), "cpython")


@dataclass
class S:
    """One sample to build: stack leaf first, a value (or raw values), timestamps, attrs, link."""

    stack: Sequence[Frame]
    value: Union[int, Sequence[int]] = 1
    timestamps: Sequence[int] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    link: Optional[Tuple[bytes, bytes]] = None


def any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


class RequestFactory:
    """Interns into one shared dictionary (zero value at index 0 of every table), like the spec."""

    def __init__(self) -> None:
        self.dictionary = pb.ProfilesDictionary(
            string_table=[""],
            mapping_table=[pb.Mapping()],
            location_table=[pb.Location()],
            function_table=[pb.Function()],
            link_table=[pb.Link()],
            attribute_table=[pb.KeyValueAndUnit()],
            stack_table=[pb.Stack()],
        )
        self._index: Dict[tuple, int] = {}
        self._resources: Dict[tuple, pb.ResourceProfiles] = {}

    def _intern(self, key: tuple, table: object, make: object) -> int:
        if key not in self._index:
            table.append(make)  # type: ignore[attr-defined]
            self._index[key] = len(table) - 1  # type: ignore[arg-type]
        return self._index[key]

    def string(self, text: str) -> int:
        if text == "":
            return 0
        return self._intern(("s", text), self.dictionary.string_table, text)

    def attribute(self, key: str, value: AttributeValue) -> int:
        entry = pb.KeyValueAndUnit(key_strindex=self.string(key), value=any_value(value))
        return self._intern(("a", key, type(value), value), self.dictionary.attribute_table, entry)

    def function(self, f: Frame) -> int:
        entry = pb.Function(
            name_strindex=self.string(f.function),
            filename_strindex=self.string(f.filename),
            start_line=f.start_line,
        )
        key = ("f", f.function, f.filename, f.start_line)
        return self._intern(key, self.dictionary.function_table, entry)

    def location(self, f: Frame) -> int:
        entry = pb.Location(lines=[pb.Line(function_index=self.function(f), line=f.line)])
        if f.frame_type:
            entry.attribute_indices.append(self.attribute("profile.frame.type", f.frame_type))
        return self._intern(("l", f), self.dictionary.location_table, entry)

    def stack(self, frames: Sequence[Frame]) -> int:
        indices = [self.location(f) for f in frames]
        entry = pb.Stack(location_indices=indices)
        return self._intern(("st", tuple(indices)), self.dictionary.stack_table, entry)

    def link(self, trace_id: bytes, span_id: bytes) -> int:
        entry = pb.Link(trace_id=trace_id, span_id=span_id)
        return self._intern(("k", trace_id, span_id), self.dictionary.link_table, entry)

    def sample(self, spec: S) -> pb.Sample:
        values = [spec.value] if isinstance(spec.value, int) else list(spec.value)
        return pb.Sample(
            stack_index=self.stack(spec.stack),
            values=values,
            timestamps_unix_nano=list(spec.timestamps),
            attribute_indices=[self.attribute(k, v) for k, v in spec.attributes.items()],
            link_index=self.link(*spec.link) if spec.link else 0,
        )

    def add_profile(
        self,
        sample_type: Tuple[str, str] = ("cpu", "nanoseconds"),
        samples: Sequence[S] = (),
        *,
        resource: Optional[Mapping[str, AttributeValue]] = None,
        scope: str = "otelprof",
        period: int = 10_000_000,
        start_unix_nano: int = START_NS,
        duration_nano: int = DURATION_NS,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
    ) -> pb.Profile:
        """Add a profile under ``resource`` (default ``service.name=svc``); return its message."""
        resource = {"service.name": "svc"} if resource is None else resource
        key = tuple(sorted((k, str(v)) for k, v in resource.items()))
        resource_profiles = self._resources.get(key)
        if resource_profiles is None:
            resource_profiles = pb.ResourceProfiles()
            for name, value in resource.items():
                resource_profiles.resource.attributes.append(
                    KeyValue(key=name, value=any_value(value))
                )
            resource_profiles.scope_profiles.add().scope.name = scope
            self._resources[key] = resource_profiles
        profile = resource_profiles.scope_profiles[0].profiles.add(
            sample_type=pb.ValueType(
                type_strindex=self.string(sample_type[0]),
                unit_strindex=self.string(sample_type[1]),
            ),
            period_type=pb.ValueType(
                type_strindex=self.string(sample_type[0]),
                unit_strindex=self.string(sample_type[1]),
            ),
            period=period,
            time_unix_nano=start_unix_nano,
            duration_nano=duration_nano,
        )
        for name, value in (attributes or {}).items():
            profile.attribute_indices.append(self.attribute(name, value))
        profile.samples.extend(self.sample(spec) for spec in samples)
        return profile

    def request(self) -> ExportProfilesServiceRequest:
        request = ExportProfilesServiceRequest(dictionary=self.dictionary)
        request.resource_profiles.extend(self._resources.values())
        return request


def collector_json_line(request: ExportProfilesServiceRequest) -> str:
    """One line as the Collector's ``file`` exporter writes it: OTLP JSON, ids in hex."""
    document = json_format.MessageToDict(request)
    for link in document.get("dictionary", {}).get("linkTable", []):
        for key in ("traceId", "spanId"):
            if key in link:
                link[key] = base64.b64decode(link[key]).hex()
    return json.dumps(document, separators=(",", ":"))


def write_pb(path: Path, request: ExportProfilesServiceRequest) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(request.SerializeToString())
    return path


def write_json_lines(path: Path, *requests: ExportProfilesServiceRequest) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(collector_json_line(r) + "\n" for r in requests))
    return path
