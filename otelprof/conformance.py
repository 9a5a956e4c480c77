"""Checks a request against the OTLP profiles rules every otelprof export must keep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, List, Sequence

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

# Span and trace ids belong in Sample.link_index; as attributes they would explode cardinality.
FORBIDDEN_SAMPLE_KEYS = frozenset(
    {"trace_id", "span_id", "trace.id", "span.id", "traceid", "spanid"}
)


def _in_range(
    errors: List[str], where: str, index: int, table: Sequence[object], name: str
) -> bool:
    if not 0 <= index < len(table):
        errors.append(f"{where}: {name} index {index} out of range (table has {len(table)})")
        return False
    return True


def check_request(request: ExportProfilesServiceRequest) -> List[str]:
    """Every rule broken by ``request``, as readable messages; empty when it conforms."""
    errors: List[str] = []
    d = request.dictionary
    strings = d.string_table
    if not strings or strings[0] != "":
        errors.append("dictionary.string_table[0] must be the empty string")
    if len(set(strings)) != len(strings):
        errors.append("dictionary.string_table has duplicate strings")
    for name in (
        "mapping_table",
        "location_table",
        "function_table",
        "attribute_table",
        "stack_table",
    ):
        table = getattr(d, name)
        if not table or table[0].ByteSize() != 0:
            errors.append(f"dictionary.{name}[0] must be present and the zero value")
    if not d.link_table or any(d.link_table[0].trace_id) or any(d.link_table[0].span_id):
        errors.append("dictionary.link_table[0] must be present and the zero link")

    for i, function in enumerate(d.function_table):
        for field in ("name_strindex", "system_name_strindex", "filename_strindex"):
            _in_range(errors, f"function_table[{i}]", getattr(function, field), strings, field)
    for i, location in enumerate(d.location_table):
        where = f"location_table[{i}]"
        _in_range(errors, where, location.mapping_index, d.mapping_table, "mapping")
        for line in location.lines:
            _in_range(errors, where, line.function_index, d.function_table, "function")
        for a in location.attribute_indices:
            _in_range(errors, where, a, d.attribute_table, "attribute")
        if i and not _has_frame_type(request, location.attribute_indices):
            errors.append(f"{where}: missing profile.frame.type=cpython")
    for i, stack in enumerate(d.stack_table):
        for index in stack.location_indices:
            _in_range(errors, f"stack_table[{i}]", index, d.location_table, "location")
    for i, link in enumerate(d.link_table[1:], start=1):
        if len(link.trace_id) != 16 or len(link.span_id) != 8 or not any(link.trace_id):
            errors.append(f"link_table[{i}]: trace_id must be 16 non-zero bytes, span_id 8 bytes")
    for i, attribute in enumerate(d.attribute_table):
        _in_range(errors, f"attribute_table[{i}]", attribute.key_strindex, strings, "key")

    if not request.resource_profiles:
        errors.append("request has no resource_profiles")
    for r, resource_profiles in enumerate(request.resource_profiles):
        where = f"resource_profiles[{r}]"
        errors.extend(_check_plain(where + ".resource", resource_profiles.resource.attributes))
        names = [
            a.value.string_value
            for a in resource_profiles.resource.attributes
            if a.key == "service.name"
        ]
        if not names or not names[0]:
            errors.append(f"{where}: resource has no service.name string")
        for s, scope_profiles in enumerate(resource_profiles.scope_profiles):
            swhere = f"{where}.scope_profiles[{s}]"
            if not scope_profiles.scope.name:
                errors.append(f"{swhere}: scope has no name")
            errors.extend(_check_plain(swhere + ".scope", scope_profiles.scope.attributes))
            for p, profile in enumerate(scope_profiles.profiles):
                errors.extend(_check_profile(request, profile, f"{swhere}.profiles[{p}]"))
    return errors


def _has_frame_type(request: ExportProfilesServiceRequest, indices: Iterable[int]) -> bool:
    d = request.dictionary
    for index in indices:
        if 0 <= index < len(d.attribute_table):
            attribute = d.attribute_table[index]
            if (
                d.string_table[attribute.key_strindex] == "profile.frame.type"
                and attribute.value.string_value == "cpython"
            ):
                return True
    return False


def _check_plain(where: str, attributes: Iterable[Any]) -> List[str]:
    errors = []
    for attribute in attributes:
        if attribute.value.WhichOneof("value") != "string_value":
            errors.append(f"{where}: attribute {attribute.key!r} is not a plain string value")
    return errors


def _check_profile(request: ExportProfilesServiceRequest, profile: Any, where: str) -> List[str]:
    errors: List[str] = []
    d = request.dictionary
    strings = d.string_table
    for field in ("sample_type", "period_type"):
        value_type = getattr(profile, field)
        if not _in_range(errors, where, value_type.type_strindex, strings, f"{field}.type"):
            continue
        if not strings[value_type.type_strindex]:
            errors.append(f"{where}: {field} is not set")
    if profile.period <= 0:
        errors.append(f"{where}: period must be non-zero")
    start = profile.time_unix_nano
    end = start + profile.duration_nano
    if start <= 0:
        errors.append(f"{where}: time_unix_nano is not set")
    for i, sample in enumerate(profile.samples):
        swhere = f"{where}.samples[{i}]"
        _in_range(errors, swhere, sample.stack_index, d.stack_table, "stack")
        _in_range(errors, swhere, sample.link_index, d.link_table, "link")
        keys = []
        for a in sample.attribute_indices:
            if _in_range(errors, swhere, a, d.attribute_table, "attribute"):
                keys.append(strings[d.attribute_table[a].key_strindex])
        if len(keys) != len(set(keys)):
            errors.append(f"{swhere}: duplicate attribute keys {sorted(keys)}")
        forbidden = FORBIDDEN_SAMPLE_KEYS.intersection(keys)
        if forbidden:
            errors.append(
                f"{swhere}: span/trace ids must go in link_index, not {sorted(forbidden)}"
            )
        if not sample.values and not sample.timestamps_unix_nano:
            errors.append(f"{swhere}: has neither values nor timestamps")
        if (
            sample.values
            and sample.timestamps_unix_nano
            and len(sample.values) != len(sample.timestamps_unix_nano)
        ):
            errors.append(f"{swhere}: values and timestamps differ in length")
        for t in sample.timestamps_unix_nano:
            if not start <= t < end:
                errors.append(f"{swhere}: timestamp {t} outside [{start}, {end})")
    return errors
