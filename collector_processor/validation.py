"""Structural checks on an incoming profiles request; the first problem found is named exactly.

Every index must point inside its dictionary table. An index of 0 into an empty table is
accepted as "not set" (the zero value the spec puts at index 0 may be omitted when nothing
else is in the table). Ids must be 16 bytes (trace, profile) or 8 bytes (span), or empty.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any, Optional, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor.errors import InvalidRequestError
from collector_processor.fastcheck import lite_profiles, samples_within

__all__ = ["validate_request"]

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
PROFILE_ID_BYTES = 16


def _in_range(indices: Sequence[int], size: int) -> bool:
    """Every one of ``indices`` is valid for a table of ``size`` (see the module docstring)."""
    if not indices:
        return True
    low, high = min(indices), max(indices)
    return low >= 0 and (high < size or (size == 0 and high == 0))


def _out_of_range(where: str, index: int, table: str, size: int) -> InvalidRequestError:
    return InvalidRequestError(f"{where} {index} out of range ({table} has {size})")


def _index(where: str, index: int, table: str, size: int) -> None:
    if not (0 <= index < size or (index == 0 and size == 0)):
        raise _out_of_range(where, index, table, size)


def _indices(where: str, indices: Sequence[int], table: str, size: int) -> None:
    if _in_range(indices, size):  # one min/max over the field; name the culprit only if not
        return
    for position, index in enumerate(indices):
        _index(f"{where}[{position}]", index, table, size)


def _check_id(where: str, value: bytes, size: int) -> None:
    if value and len(value) != size:
        raise InvalidRequestError(f"{where} must be {size} bytes or empty, got {len(value)}")


_ATTRIBUTE_STRINGS = operator.attrgetter("key_strindex", "unit_strindex")
_FUNCTION_STRINGS = operator.attrgetter(
    "name_strindex", "system_name_strindex", "filename_strindex"
)
_LINK_IDS = operator.attrgetter("trace_id", "span_id")
_ID_LENGTHS = ({0, TRACE_ID_BYTES}, {0, SPAN_ID_BYTES})


def _columns_in_range(table: Any, getter: Any, size: int) -> bool:
    """Every value the tuple-returning ``getter`` reads from ``table`` is a valid index."""
    return _in_range(list(itertools.chain.from_iterable(map(getter, table))), size)


def _link_ids_ok(links: Any) -> bool:
    if not links:
        return True
    columns = zip(*map(_LINK_IDS, links))
    return all(set(map(len, ids)) <= allowed for ids, allowed in zip(columns, _ID_LENGTHS))


def _check_dictionary(request: ExportProfilesServiceRequest) -> None:
    d = request.dictionary
    strings = len(d.string_table)
    if strings and d.string_table[0] != "":
        raise InvalidRequestError('dictionary.string_table[0] must be "" (the zero value)')
    attributes = len(d.attribute_table)
    # Tables can hold thousands of entries: check whole columns first, entry by entry only
    # when a column is out of range (to name the entry).
    value_references = [a.value.string_value_strindex for a in d.attribute_table]
    if not (
        _columns_in_range(d.attribute_table, _ATTRIBUTE_STRINGS, strings)
        and _in_range(value_references, strings)
    ):
        for i, attribute in enumerate(d.attribute_table):
            where = f"dictionary.attribute_table[{i}]"
            _index(f"{where}.key_strindex", attribute.key_strindex, "string_table", strings)
            _index(f"{where}.unit_strindex", attribute.unit_strindex, "string_table", strings)
            _check_any_value(f"{where}.value", attribute.value, strings)
    if not _link_ids_ok(d.link_table):
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
    mapping_ok = _in_range([m.filename_strindex for m in d.mapping_table], strings) and _in_range(
        [i for m in d.mapping_table for i in m.attribute_indices], attributes
    )
    if not mapping_ok:
        for i, mapping in enumerate(d.mapping_table):
            where = f"dictionary.mapping_table[{i}]"
            _index(f"{where}.filename_strindex", mapping.filename_strindex, "string_table", strings)
            _indices(
                f"{where}.attribute_indices",
                mapping.attribute_indices,
                "attribute_table",
                attributes,
            )
    if not _columns_in_range(d.function_table, _FUNCTION_STRINGS, strings):
        for i, function in enumerate(d.function_table):
            where = f"dictionary.function_table[{i}]"
            for name in ("name_strindex", "system_name_strindex", "filename_strindex"):
                _index(f"{where}.{name}", getattr(function, name), "string_table", strings)
    table = d.location_table
    location_ok = (
        _in_range([location.mapping_index for location in table], mappings)
        and _in_range([i for location in table for i in location.attribute_indices], attributes)
        and _in_range(
            [line.function_index for location in table for line in location.lines], functions
        )
    )
    if not location_ok:
        for i, location in enumerate(table):
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
    locations = len(table)
    if not _in_range([i for stack in d.stack_table for i in stack.location_indices], locations):
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
        _check_attributes(f"{where}.kvlist_value.values", value.kvlist_value.values, strings)


def _check_attributes(where: str, attributes: Any, strings: int) -> None:
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


def validate_request(request: ExportProfilesServiceRequest, wire: Optional[bytes] = None) -> None:
    """Raise :class:`InvalidRequestError` naming the first structural problem in ``request``.

    ``wire`` (the bytes ``request`` was parsed from) enables the fast sample checks.
    """
    _check_dictionary(request)
    d = request.dictionary
    strings, attributes = len(d.string_table), len(d.attribute_table)
    stacks, links = len(d.stack_table), len(d.link_table)
    lite = lite_profiles(wire) if wire is not None else None
    position = 0
    for r, resource_profiles in enumerate(request.resource_profiles):
        _check_attributes(
            f"resource_profiles[{r}].resource.attributes",
            resource_profiles.resource.attributes,
            strings,
        )
        for s, scope_profiles in enumerate(resource_profiles.scope_profiles):
            _check_attributes(
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
                fast = lite is not None and samples_within(
                    lite[position].samples, stacks, links, attributes
                )
                position += 1
                if not fast:
                    _check_samples(f"{where}.samples", profile.samples, request)
