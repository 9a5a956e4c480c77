"""The only module that knows the OTLP profiles layout: model -> ExportProfilesServiceRequest."""

from __future__ import annotations

import os
from typing import Dict, Hashable, Optional, Sequence, Tuple

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.sdk.resources import Resource

from otelprof.model import Attributes, AttributeValue, Frame, Profile, SpanLink, Stack, ValueType

FRAME_TYPE_KEY = "profile.frame.type"
_ZERO_LINK = pb.Link(trace_id=bytes(16), span_id=bytes(8))


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


class _Dictionary:
    """Look-up-or-append interning of every table of one ``ProfilesDictionary``."""

    def __init__(self, table: pb.ProfilesDictionary) -> None:
        self.pb = table
        # Every table starts with its zero value (the proto requires it at index 0).
        self.pb.string_table.append("")
        self.pb.mapping_table.add()
        self.pb.location_table.add()
        self.pb.function_table.add()
        self.pb.link_table.append(_ZERO_LINK)
        self.pb.attribute_table.add()
        self.pb.stack_table.add()
        self._strings: Dict[str, int] = {"": 0}
        self._functions: Dict[Tuple[str, str, int], int] = {}
        self._locations: Dict[Frame, int] = {}
        self._stacks: Dict[Stack, int] = {(): 0}
        # Samples share stack objects (the sampler interns them): most look-ups are answered
        # by identity, without hashing a tuple of frames. The stack is kept beside its index
        # so an id is only trusted while the object it was taken from is still that object.
        self._stack_ids: Dict[int, Tuple[Stack, int]] = {}
        self._attribute_lists: Dict[int, Tuple[Attributes, Tuple[int, ...]]] = {}
        self._links: Dict[SpanLink, int] = {}
        self._attributes: Dict[Tuple[str, Hashable], int] = {}

    def string(self, value: str) -> int:
        index = self._strings.get(value)
        if index is None:
            index = self._strings[value] = len(self.pb.string_table)
            self.pb.string_table.append(value)
        return index

    def attribute(self, key: str, value: AttributeValue) -> int:
        # The type is part of the identity: 1, 1.0 and True are different attribute values.
        cache_key = (key, (type(value).__name__, value))
        index = self._attributes.get(cache_key)
        if index is None:
            index = self._attributes[cache_key] = len(self.pb.attribute_table)
            self.pb.attribute_table.add(key_strindex=self.string(key), value=_any_value(value))
        return index

    def function(self, frame: Frame) -> int:
        key = (frame.function, frame.filename, frame.start_line)
        index = self._functions.get(key)
        if index is None:
            index = self._functions[key] = len(self.pb.function_table)
            name = self.string(frame.function)
            self.pb.function_table.add(
                name_strindex=name,
                system_name_strindex=name,
                filename_strindex=self.string(frame.filename),
                start_line=frame.start_line,
            )
        return index

    def location(self, frame: Frame) -> int:
        index = self._locations.get(frame)
        if index is None:
            index = self._locations[frame] = len(self.pb.location_table)
            location = self.pb.location_table.add()
            location.lines.add(function_index=self.function(frame), line=frame.line)
            location.attribute_indices.append(self.attribute(FRAME_TYPE_KEY, frame.frame_type))
        return index

    def stack(self, stack: Stack) -> int:
        known = self._stack_ids.get(id(stack))
        if known is not None and known[0] is stack:
            return known[1]
        index = self._stacks.get(stack)
        if index is None:
            index = self._stacks[stack] = len(self.pb.stack_table)
            self.pb.stack_table.add(location_indices=[self.location(f) for f in stack])
        self._stack_ids[id(stack)] = (stack, index)
        return index

    def attributes(self, attributes: Attributes) -> Tuple[int, ...]:
        # By identity like stacks (samples of one thread and span share one tuple); not by
        # value, where 1 and True would be one key.
        known = self._attribute_lists.get(id(attributes))
        if known is not None and known[0] is attributes:
            return known[1]
        indices = tuple(self.attribute(k, v) for k, v in attributes)
        self._attribute_lists[id(attributes)] = (attributes, indices)
        return indices

    def link(self, link: Optional[SpanLink]) -> int:
        if link is None:
            return 0
        index = self._links.get(link)
        if index is None:
            index = self._links[link] = len(self.pb.link_table)
            self.pb.link_table.add(trace_id=link.trace_id, span_id=link.span_id)
        return index

    def value_type(self, value_type: ValueType) -> pb.ValueType:
        return pb.ValueType(
            type_strindex=self.string(value_type.type), unit_strindex=self.string(value_type.unit)
        )


def _as_string(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_as_string(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_resource(resource: Resource) -> PbResource:
    """Plain ``key``/``string_value`` attributes only.

    The Collector's processors read plain values, and Pyroscope turns resource attributes into
    series labels only when they are strings, so numbers (``process.pid``) are sent as text.
    """
    return PbResource(
        attributes=[
            KeyValue(key=key, value=AnyValue(string_value=_as_string(value)))
            for key, value in resource.attributes.items()
        ]
    )


def build_request(
    profiles: Sequence[Profile],
    resource: Resource,
    scope_name: str,
    scope_version: str,
    profile_ids: bool = True,
) -> ExportProfilesServiceRequest:
    """Encode ``profiles`` (all of one resource and scope) into one request, one shared dictionary.

    Samples with a zero value carry no information and are left out; a profile with no samples
    is still sent (it tells the backend the process is alive and was idle).
    """
    request = ExportProfilesServiceRequest()
    dictionary = _Dictionary(request.dictionary)
    resource_profiles = request.resource_profiles.add(resource=encode_resource(resource))
    scope_profiles = resource_profiles.scope_profiles.add(
        scope=InstrumentationScope(name=scope_name, version=scope_version)
    )
    for profile in profiles:
        out = scope_profiles.profiles.add(
            sample_type=dictionary.value_type(profile.sample_type),
            time_unix_nano=profile.start_unix_nano,
            duration_nano=profile.duration_nano,
            period_type=dictionary.value_type(profile.period_type),
            period=profile.period,
            profile_id=profile.profile_id or (os.urandom(16) if profile_ids else b""),
        )
        out.attribute_indices.extend(dictionary.attribute(k, v) for k, v in profile.attributes)
        # Samples with one identity (stack, attributes, link) are summed into one.
        totals: Dict[Tuple[int, Tuple[int, ...], int], int] = {}
        for sample in profile.samples:
            if sample.value == 0:
                continue
            identity = (
                dictionary.stack(sample.stack),
                dictionary.attributes(sample.attributes),
                dictionary.link(sample.link),
            )
            totals[identity] = totals.get(identity, 0) + sample.value
        for (stack_index, attribute_indices, link_index), value in totals.items():
            out.samples.add(
                stack_index=stack_index,
                attribute_indices=attribute_indices,
                link_index=link_index,
                values=[value],
            )
    return request
