"""Decode one OTLP ``ExportProfilesServiceRequest`` into records, checking every dictionary index.

The request's one shared ``ProfilesDictionary`` is resolved entry by entry (each cached), so a
bad index or a malformed id becomes a :class:`ProfileFileError` that says where it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Optional, Tuple, Union

from otelprof.model import AttributeValue, Frame, Stack, ValueType
from otelprof.records import (
    EMPTY_ATTRIBUTES,
    FRAME_TYPE_ATTRIBUTE,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    DecodedSample,
    ProfileRecord,
    ReadOnlyAttributes,
)

__all__ = ["ProfileFileError", "decode_request"]


class ProfileFileError(ValueError):
    """A file (or one request in it) could not be read; ``str()`` names the file and the problem."""

    def __init__(self, path: Union[str, Path], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class _Invalid(Exception):
    """Internal: a request breaks the format; the message says where and how."""


def _checked(table: Any, index: int, name: str) -> Any:
    # Python would quietly accept a negative index, so range-check explicitly.
    if not 0 <= index < len(table):
        raise _Invalid(f"{name} index {index} out of range ({name} has {len(table)} entries)")
    return table[index]


class _Decoder:
    """Resolves one request's shared dictionary, caching each decoded entry."""

    def __init__(self, request: Any, source: str) -> None:
        self._dict = request.dictionary
        self._strings: List[str] = list(self._dict.string_table)
        self._source = source
        self._locations: Dict[int, Tuple[Frame, ...]] = {}
        self._stacks: Dict[int, Stack] = {}
        self._attribute_sets: Dict[Tuple[int, ...], ReadOnlyAttributes] = {}
        self._links: Dict[int, Tuple[Optional[bytes], Optional[bytes]]] = {}

    def string(self, index: int) -> str:
        return str(_checked(self._strings, index, "string_table"))

    def value_type(self, value_type: Any) -> ValueType:
        return ValueType(
            self.string(value_type.type_strindex), self.string(value_type.unit_strindex)
        )

    def any_value(self, value: Any) -> AttributeValue:
        kind = value.WhichOneof("value")
        if kind is None:
            return ""
        if kind == "string_value_strindex":
            return self.string(value.string_value_strindex)
        if kind in ("array_value", "kvlist_value", "bytes_value"):
            # Not part of the flat attribute model: keep them readable as text.
            return json.dumps(self._plain(value), sort_keys=True)
        plain: AttributeValue = getattr(value, kind)
        return plain

    def _plain(self, value: Any) -> Any:
        kind = value.WhichOneof("value")
        if kind == "array_value":
            return [self._plain(v) for v in value.array_value.values]
        if kind == "kvlist_value":
            return {self.key(kv): self._plain(kv.value) for kv in value.kvlist_value.values}
        if kind == "bytes_value":
            return bytes(value.bytes_value).hex()
        return self.any_value(value)

    def key(self, key_value: Any) -> str:
        # Plain keys are the norm for resources; string-table keys are legal and cheap to honour.
        if key_value.key or not key_value.key_strindex:
            return str(key_value.key)
        return self.string(key_value.key_strindex)

    def key_values(self, key_values: Any) -> ReadOnlyAttributes:
        if not key_values:
            return EMPTY_ATTRIBUTES
        return MappingProxyType({self.key(kv): self.any_value(kv.value) for kv in key_values})

    def attribute_set(self, indices: Any) -> ReadOnlyAttributes:
        key = tuple(indices)
        if not key:
            return EMPTY_ATTRIBUTES
        cached = self._attribute_sets.get(key)
        if cached is None:
            table = self._dict.attribute_table
            attrs: Dict[str, AttributeValue] = {}
            for index in key:
                entry = _checked(table, index, "attribute_table")
                try:
                    attrs[self.string(entry.key_strindex)] = self.any_value(entry.value)
                except _Invalid as exc:
                    raise _Invalid(f"attribute_table[{index}]: {exc}") from None
            cached = self._attribute_sets[key] = MappingProxyType(attrs)
        return cached

    def location(self, index: int) -> Tuple[Frame, ...]:
        cached = self._locations.get(index)
        if cached is not None:
            return cached
        location = _checked(self._dict.location_table, index, "location_table")
        try:
            frame_type = self.attribute_set(location.attribute_indices).get(
                FRAME_TYPE_ATTRIBUTE, ""
            )
            frames = []
            # lines[0] is the innermost (inlined) function, the last line its caller: leaf first.
            for line in location.lines:
                function = _checked(
                    self._dict.function_table, line.function_index, "function_table"
                )
                name = self.string(function.name_strindex) or self.string(
                    function.system_name_strindex
                )
                filename = self.string(function.filename_strindex)
                frames.append(
                    Frame(name, filename, int(line.line), int(function.start_line), str(frame_type))
                )
            if not frames:
                name = f"0x{location.address:x}" if location.address else ""
                frames.append(Frame(name, "", 0, 0, str(frame_type)))
        except _Invalid as exc:
            raise _Invalid(f"location_table[{index}]: {exc}") from None
        result = self._locations[index] = tuple(frames)
        return result

    def stack(self, index: int) -> Stack:
        cached = self._stacks.get(index)
        if cached is None:
            entry = _checked(self._dict.stack_table, index, "stack_table")
            try:
                frames: List[Frame] = []
                for location_index in entry.location_indices:
                    frames.extend(self.location(location_index))
            except _Invalid as exc:
                raise _Invalid(f"stack_table[{index}]: {exc}") from None
            cached = self._stacks[index] = tuple(frames)
        return cached

    def link(self, index: int) -> Tuple[Optional[bytes], Optional[bytes]]:
        cached = self._links.get(index)
        if cached is None:
            entry = _checked(self._dict.link_table, index, "link_table")
            trace_id, span_id = bytes(entry.trace_id), bytes(entry.span_id)
            for what, value, size in (
                ("trace_id", trace_id, TRACE_ID_BYTES),
                ("span_id", span_id, SPAN_ID_BYTES),
            ):
                if value and len(value) != size:
                    raise _Invalid(
                        f"link_table[{index}]: {what} has {len(value)} bytes, not {size}"
                    )
            # All-zero ids are invalid (W3C) and mean "no span", as an empty link does.
            cached = self._links[index] = (
                trace_id if any(trace_id) else None,
                span_id if any(span_id) else None,
            )
        return cached

    def sample(self, sample: Any) -> DecodedSample:
        values = tuple(int(v) for v in sample.values)
        timestamps = tuple(int(t) for t in sample.timestamps_unix_nano)
        if values and timestamps and len(values) != len(timestamps):
            raise _Invalid(f"{len(values)} values but {len(timestamps)} timestamps")
        trace_id, span_id = self.link(sample.link_index)
        return DecodedSample(
            stack=self.stack(sample.stack_index),
            value=sum(values) if values else len(timestamps),
            attributes=self.attribute_set(sample.attribute_indices),
            trace_id=trace_id,
            span_id=span_id,
            values=values,
            timestamps_unix_nano=timestamps,
        )

    def records(self, request: Any) -> List[ProfileRecord]:
        records = []
        for ri, resource_profiles in enumerate(request.resource_profiles):
            where = f"resource_profiles[{ri}]"
            try:
                resource = self.key_values(resource_profiles.resource.attributes)
            except _Invalid as exc:
                raise _Invalid(f"{where}.resource: {exc}") from None
            for si, scope_profiles in enumerate(resource_profiles.scope_profiles):
                for pi, profile in enumerate(scope_profiles.profiles):
                    at = f"{where}.scope_profiles[{si}].profiles[{pi}]"
                    records.append(self.profile(profile, resource, scope_profiles.scope, at))
        return records

    def profile(
        self, profile: Any, resource: ReadOnlyAttributes, scope: Any, where: str
    ) -> ProfileRecord:
        try:
            header = (
                self.value_type(profile.sample_type),
                self.value_type(profile.period_type),
                self.attribute_set(profile.attribute_indices),
            )
        except _Invalid as exc:
            raise _Invalid(f"{where}: {exc}") from None
        samples = []
        for k, sample in enumerate(profile.samples):
            try:
                samples.append(self.sample(sample))
            except _Invalid as exc:
                raise _Invalid(f"{where}.samples[{k}]: {exc}") from None
        return ProfileRecord(
            source=self._source,
            sample_type=header[0],
            period_type=header[1],
            period=int(profile.period),
            start_unix_nano=int(profile.time_unix_nano),
            duration_nano=int(profile.duration_nano),
            resource=resource,
            scope_name=str(scope.name),
            scope_version=str(scope.version),
            profile_attributes=header[2],
            profile_id=bytes(profile.profile_id),
            samples=tuple(samples),
        )


def decode_request(request: Any, source: str = "<request>") -> Tuple[ProfileRecord, ...]:
    """Decode one ``ExportProfilesServiceRequest``; raise :class:`ProfileFileError` if it is bad."""
    try:
        return tuple(_Decoder(request, source).records(request))
    except _Invalid as exc:
        raise ProfileFileError(source, str(exc)) from None
