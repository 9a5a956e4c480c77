"""Resolve OTLP profiles requests into index-free values, so two encodings compare by content."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb

Frame = Tuple[str, str, int, int, FrozenSet[Tuple[str, Any]]]
"""(function, filename, start_line, line, location attributes)"""
ResolvedSample = Tuple[
    Tuple[Frame, ...],
    Tuple[int, ...],
    Tuple[int, ...],
    FrozenSet[Tuple[str, Any]],
    Optional[Tuple[str, str]],
]
"""(stack leaf first, values, timestamps, sample attributes, (trace_id hex, span_id hex))"""


def any_value(value: AnyValue, strings: Sequence[str] = ()) -> Any:
    """The Python value; `string_value_strindex` is looked up in `strings` (the string table)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value_strindex":
        return strings[value.string_value_strindex]
    if kind == "array_value":
        return tuple(any_value(item, strings) for item in value.array_value.values)
    if kind == "kvlist_value":
        return tuple(sorted(plain_attributes(value.kvlist_value.values, strings).items()))
    return getattr(value, kind)


def plain_attributes(attributes: Iterable[KeyValue], strings: Sequence[str] = ()) -> Dict[str, Any]:
    """Attributes as a dict, whether keys/values are plain or string-table references.

    The Collector's OTLP/HTTP exporter (pdata ProtoMarshaler) sends resource and scope
    attributes as `key_strindex` / `string_value_strindex`; its gRPC exporter sends plain ones.
    """
    resolved: Dict[str, Any] = {}
    for kv in attributes:
        key = kv.key or strings[kv.key_strindex]
        # Keys are unique in OTLP: a duplicate means some hop appended instead of replacing.
        assert key not in resolved, f"attribute {key!r} appears twice"
        resolved[key] = any_value(kv.value, strings)
    return resolved


@dataclass(frozen=True)
class ResolvedProfile:
    resource: Tuple[Tuple[str, Any], ...]
    scope: Tuple[str, str, Tuple[Tuple[str, Any], ...]]
    sample_type: Tuple[str, str]
    period_type: Tuple[str, str]
    period: int
    time_unix_nano: int
    duration_nano: int
    profile_id: str
    attributes: FrozenSet[Tuple[str, Any]]
    samples: Tuple[Tuple[ResolvedSample, int], ...]
    """Each distinct sample with how often it occurs, sorted: order is not part of the content."""

    @property
    def resource_attributes(self) -> Dict[str, Any]:
        return dict(self.resource)

    @property
    def sample_count(self) -> int:
        return sum(count for _, count in self.samples)


class _Tables:
    def __init__(self, dictionary: pb.ProfilesDictionary) -> None:
        self.d = dictionary

    def string(self, index: int) -> str:
        return str(self.d.string_table[index])

    def attributes(self, indices: Iterable[int]) -> FrozenSet[Tuple[str, Any]]:
        entries = (self.d.attribute_table[i] for i in indices)
        strings = self.d.string_table
        return frozenset(
            (self.string(a.key_strindex), any_value(a.value, strings)) for a in entries
        )

    def value_type(self, value_type: pb.ValueType) -> Tuple[str, str]:
        return self.string(value_type.type_strindex), self.string(value_type.unit_strindex)

    def stack(self, index: int) -> Tuple[Frame, ...]:
        frames: List[Frame] = []
        for location_index in self.d.stack_table[index].location_indices:
            location = self.d.location_table[location_index]
            attributes = self.attributes(location.attribute_indices)
            for line in location.lines:
                function = self.d.function_table[line.function_index]
                frames.append(
                    (
                        self.string(function.name_strindex),
                        self.string(function.filename_strindex),
                        int(function.start_line),
                        int(line.line),
                        attributes,
                    )
                )
        return tuple(frames)

    def link(self, index: int) -> Optional[Tuple[str, str]]:
        link = self.d.link_table[index] if index < len(self.d.link_table) else None
        if link is None or not any(link.trace_id + link.span_id):
            return None
        return link.trace_id.hex(), link.span_id.hex()

    def sample(self, sample: pb.Sample) -> ResolvedSample:
        return (
            self.stack(sample.stack_index),
            tuple(sample.values),
            tuple(sample.timestamps_unix_nano),
            self.attributes(sample.attribute_indices),
            self.link(sample.link_index),
        )


def resolve(request: ExportProfilesServiceRequest) -> List[ResolvedProfile]:
    """Every profile of the request with all dictionary references replaced by values."""
    tables = _Tables(request.dictionary)
    strings = list(request.dictionary.string_table)
    profiles: List[ResolvedProfile] = []
    for resource_profiles in request.resource_profiles:
        attributes = plain_attributes(resource_profiles.resource.attributes, strings)
        resource = tuple(sorted(attributes.items()))
        for scope_profiles in resource_profiles.scope_profiles:
            scope = scope_profiles.scope
            scope_key = (
                scope.name,
                scope.version,
                tuple(sorted(plain_attributes(scope.attributes, strings).items())),
            )
            for profile in scope_profiles.profiles:
                samples = Counter(tables.sample(sample) for sample in profile.samples)
                profiles.append(
                    ResolvedProfile(
                        resource=resource,
                        scope=scope_key,
                        sample_type=tables.value_type(profile.sample_type),
                        period_type=tables.value_type(profile.period_type),
                        period=profile.period,
                        time_unix_nano=profile.time_unix_nano,
                        duration_nano=profile.duration_nano,
                        profile_id=profile.profile_id.hex(),
                        attributes=tables.attributes(profile.attribute_indices),
                        samples=tuple(sorted(samples.items(), key=repr)),
                    )
                )
    return profiles


def resolve_all(requests: Iterable[ExportProfilesServiceRequest]) -> List[ResolvedProfile]:
    """Profiles of several requests, in a stable order (a hop may split or merge requests)."""
    profiles = [profile for request in requests for profile in resolve(request)]
    return sorted(profiles, key=repr)
