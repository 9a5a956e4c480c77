"""Structural checks on an incoming profiles request; the first problem found is named exactly.

Every index must point inside its dictionary table. An index of 0 into an empty table is
accepted as "not set" (the zero value the spec puts at index 0 may be omitted when nothing
else is in the table). Ids must be 16 bytes (trace, profile) or 8 bytes (span), or empty.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor.errors import InvalidRequestError
from collector_processor.fastcheck import Columns, column_in_range, parse_columns, parse_shallow

__all__ = [
    "PROFILE_ID_BYTES",
    "SPAN_ID_BYTES",
    "TRACE_ID_BYTES",
    "check_attributes",
    "validate_request",
]

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
PROFILE_ID_BYTES = 16


def _out_of_range(where: str, index: int, table: str, size: int) -> InvalidRequestError:
    return InvalidRequestError(f"{where} {index} out of range ({table} has {size})")


def _index(where: str, index: int, table: str, size: int) -> None:
    if not (0 <= index < size or (index == 0 and size == 0)):
        raise _out_of_range(where, index, table, size)


def _indices(where: str, indices: Sequence[int], table: str, size: int) -> None:
    if column_in_range(indices, size):  # one min/max over the field; name the culprit only if not
        return
    for position, index in enumerate(indices):
        _index(f"{where}[{position}]", index, table, size)


def _check_id(where: str, value: bytes, size: int) -> None:
    if value and len(value) != size:
        raise InvalidRequestError(f"{where} must be {size} bytes or empty, got {len(value)}")


def _link_ids_ok(links: Any) -> bool:
    """Every trace id and span id has its length or is empty (``links``: a column view)."""
    return set(map(len, links.trace_id)) <= {0, TRACE_ID_BYTES} and set(
        map(len, links.span_id)
    ) <= {0, SPAN_ID_BYTES}


def _check_dictionary(request: ExportProfilesServiceRequest, view: Optional[Columns]) -> None:
    """``view`` is the request's column view: a table whose columns are in range is not
    walked; one that is not (or no view) is checked entry by entry, naming the first problem."""
    d = request.dictionary
    strings = len(d.string_table)
    if strings and d.string_table[0] != "":
        raise InvalidRequestError('dictionary.string_table[0] must be "" (the zero value)')
    attributes = len(d.attribute_table)
    if not (
        view is not None
        and view.in_range("dictionary.attribute_table.key_strindex", strings)
        and view.in_range("dictionary.attribute_table.unit_strindex", strings)
        and view.in_range("dictionary.attribute_table.value.string_value_strindex", strings)
        # Arrays and key/value lists may nest references: those tables take the exact path.
        and not view.merged("dictionary.attribute_table.value").array_value
        and not view.merged("dictionary.attribute_table.value").kvlist_value
    ):
        for i, attribute in enumerate(d.attribute_table):
            where = f"dictionary.attribute_table[{i}]"
            _index(f"{where}.key_strindex", attribute.key_strindex, "string_table", strings)
            _index(f"{where}.unit_strindex", attribute.unit_strindex, "string_table", strings)
            _check_any_value(f"{where}.value", attribute.value, strings)
    if not (view is not None and _link_ids_ok(view.merged("dictionary.link_table"))):
        for i, link in enumerate(d.link_table):
            _check_id(f"dictionary.link_table[{i}].trace_id", link.trace_id, TRACE_ID_BYTES)
            _check_id(f"dictionary.link_table[{i}].span_id", link.span_id, SPAN_ID_BYTES)
    # The proto recommends 16 and 8 zero bytes for link_table[0] (codecs that insist on fixed
    # id lengths); empty ids are the other valid zero value. Anything non-zero is an error.
    if len(d.link_table) and (any(d.link_table[0].trace_id) or any(d.link_table[0].span_id)):
        raise InvalidRequestError(
            "dictionary.link_table[0] must be the zero link (empty or all-zero ids)"
        )
    mappings, functions = len(d.mapping_table), len(d.function_table)
    if not (
        view is not None
        and view.in_range("dictionary.mapping_table.filename_strindex", strings)
        and view.in_range("dictionary.mapping_table.attribute_indices", attributes)
    ):
        for i, mapping in enumerate(d.mapping_table):
            where = f"dictionary.mapping_table[{i}]"
            _index(f"{where}.filename_strindex", mapping.filename_strindex, "string_table", strings)
            _indices(
                f"{where}.attribute_indices",
                mapping.attribute_indices,
                "attribute_table",
                attributes,
            )
    if not (
        view is not None
        and view.in_range("dictionary.function_table.name_strindex", strings)
        and view.in_range("dictionary.function_table.system_name_strindex", strings)
        and view.in_range("dictionary.function_table.filename_strindex", strings)
    ):
        for i, function in enumerate(d.function_table):
            where = f"dictionary.function_table[{i}]"
            for name in ("name_strindex", "system_name_strindex", "filename_strindex"):
                _index(f"{where}.{name}", getattr(function, name), "string_table", strings)
    if not (
        view is not None
        and view.in_range("dictionary.location_table.mapping_index", mappings)
        and view.in_range("dictionary.location_table.attribute_indices", attributes)
        and view.in_range("dictionary.location_table.lines.function_index", functions)
    ):
        for i, location in enumerate(d.location_table):
            where = f"dictionary.location_table[{i}]"
            _index(f"{where}.mapping_index", location.mapping_index, "mapping_table", mappings)
            _indices(
                f"{where}.attribute_indices",
                location.attribute_indices,
                "attribute_table",
                attributes,
            )
            for j, line in enumerate(location.lines):
                _index(
                    f"{where}.lines[{j}].function_index",
                    line.function_index,
                    "function_table",
                    functions,
                )
    locations = len(d.location_table)
    if not (
        view is not None and view.in_range("dictionary.stack_table.location_indices", locations)
    ):
        for i, stack in enumerate(d.stack_table):
            _indices(
                f"dictionary.stack_table[{i}].location_indices",
                stack.location_indices,
                "location_table",
                locations,
            )


def _check_any_value(where: str, value: Any, strings: int) -> None:
    kind = value.WhichOneof("value")
    if kind == "string_value_strindex":
        _index(
            f"{where}.string_value_strindex", value.string_value_strindex, "string_table", strings
        )
    elif kind == "array_value":
        for i, item in enumerate(value.array_value.values):
            _check_any_value(f"{where}.array_value.values[{i}]", item, strings)
    elif kind == "kvlist_value":
        check_attributes(f"{where}.kvlist_value.values", value.kvlist_value.values, strings)


def check_attributes(where: str, attributes: Any, strings: int) -> None:
    """Plain KeyValues (resource, scope): their string-table references must resolve."""
    for i, attribute in enumerate(attributes):
        _index(f"{where}[{i}].key_strindex", attribute.key_strindex, "string_table", strings)
        _check_any_value(f"{where}[{i}].value", attribute.value, strings)


def _check_value_type(where: str, value_type: Any, strings: int) -> None:
    _index(f"{where}.type_strindex", value_type.type_strindex, "string_table", strings)
    _index(f"{where}.unit_strindex", value_type.unit_strindex, "string_table", strings)


def _check_samples(where: str, samples: Any, request: ExportProfilesServiceRequest) -> None:
    d = request.dictionary
    stacks, links, attributes = len(d.stack_table), len(d.link_table), len(d.attribute_table)
    for k, sample in enumerate(samples):
        stack_index = sample.stack_index
        if not (0 <= stack_index < stacks or (stack_index == 0 and stacks == 0)):
            raise _out_of_range(f"{where}[{k}].stack_index", stack_index, "stack_table", stacks)
        link_index = sample.link_index
        if not (0 <= link_index < links or (link_index == 0 and links == 0)):
            raise _out_of_range(f"{where}[{k}].link_index", link_index, "link_table", links)
        if sample.attribute_indices:
            _indices(
                f"{where}[{k}].attribute_indices",
                sample.attribute_indices,
                "attribute_table",
                attributes,
            )
        values, timestamps = len(sample.values), len(sample.timestamps_unix_nano)
        if not values and not timestamps:
            raise InvalidRequestError(f"{where}[{k}] has neither values nor timestamps_unix_nano")
        if values and timestamps and values != timestamps:
            raise InvalidRequestError(
                f"{where}[{k}] has {values} values but {timestamps} timestamps_unix_nano"
            )


def _sample_count(request: ExportProfilesServiceRequest) -> int:
    return sum(
        len(profile.samples)
        for resource_profiles in request.resource_profiles
        for scope_profiles in resource_profiles.scope_profiles
        for profile in scope_profiles.profiles
    )


def validate_request(
    request: ExportProfilesServiceRequest, wire: Optional[bytes] = None, *, fast: bool = True
) -> None:
    """Raise :class:`InvalidRequestError` naming the first structural problem in ``request``.

    ``wire`` is the protobuf ``request`` was parsed from (serialized here when not given).
    ``fast=False`` walks every entry and sample, as the fast path does for whatever its
    column checks cannot clear (for tests and comparisons).
    """
    view = None
    if fast:
        if wire is None:
            wire = request.SerializeToString()
        view = parse_columns(wire)
    _check_dictionary(request, view)
    d = request.dictionary
    strings, attributes = len(d.string_table), len(d.attribute_table)
    shallow = parse_shallow(wire) if view is not None and wire is not None else None
    samples_ok = (
        view is not None
        and shallow is not None
        and view.samples_ok(
            shallow,
            _sample_count(request),
            len(d.stack_table),
            len(d.link_table),
            len(d.attribute_table),
        )
    )
    for r, resource_profiles in enumerate(request.resource_profiles):
        check_attributes(
            f"resource_profiles[{r}].resource.attributes",
            resource_profiles.resource.attributes,
            strings,
        )
        for s, scope_profiles in enumerate(resource_profiles.scope_profiles):
            check_attributes(
                f"resource_profiles[{r}].scope_profiles[{s}].scope.attributes",
                scope_profiles.scope.attributes,
                strings,
            )
            for p, profile in enumerate(scope_profiles.profiles):
                where = f"resource_profiles[{r}].scope_profiles[{s}].profiles[{p}]"
                _check_value_type(f"{where}.sample_type", profile.sample_type, strings)
                _check_value_type(f"{where}.period_type", profile.period_type, strings)
                _check_id(f"{where}.profile_id", profile.profile_id, PROFILE_ID_BYTES)
                _indices(
                    f"{where}.attribute_indices",
                    profile.attribute_indices,
                    "attribute_table",
                    attributes,
                )
                if not samples_ok:
                    _check_samples(f"{where}.samples", profile.samples, request)
