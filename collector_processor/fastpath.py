"""Accept a protobuf request from its wire bytes without building the full message.

Decoding a request into the generated classes and encoding it again for the exporters cost
more than everything else the service does with it, and only resources and scopes change on
the way. So a request is read in three partial shapes (wireviews): the *head* (resources,
scopes and string table decoded; profiles and dictionary tables kept as bytes) is what the
pipeline changes and re-encodes; the *column* and *shallow* views carry the checks. Whatever
this cannot vouch for takes the exact path (full parse, validation naming the problem), so
answers to invalid requests do not change.

Decodable: the three views together parse every byte the full parser does, with the same
types, and where the full parser would fail one of them fails too. The head parses resources
and scopes with the generated classes, the string table and schema URLs as strings (UTF-8 is
checked); the column view descends into every dictionary entry, profile, value type and
sample, reads the string fields there as strings, and checks the packed index fields it keeps
as bytes while checking their ranges (a run of varints, in range, ending where it should); the
shallow view decodes the samples' values and timestamps with their types. Bytes no view
decodes are bytes fields of the real schema too (ids, payloads), or nested attribute values
(arrays, key/value lists) in the dictionary, which are sent to the exact path.

Valid: the rules of validation, each over whole columns (fastcheck), resource and scope
attributes on the head itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from opentelemetry.proto.profiles.v1development.profiles_pb2 import Link

from collector_processor.errors import InvalidRequestError
from collector_processor.fastcheck import Columns, Shallow, parse_columns, parse_shallow
from collector_processor.validation import (
    PROFILE_ID_BYTES,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    check_attributes,
)
from collector_processor.wireviews import HeadRequest

__all__ = ["Vouched", "vouch"]

_PROFILES = "resource_profiles.scope_profiles.profiles"


@dataclass(frozen=True)
class Vouched:
    """A request known to be decodable and valid: its head, and what it holds."""

    request: Any  # a wireviews.HeadRequest
    profiles: int
    samples: int


def vouch(wire: bytes) -> Optional[Vouched]:
    """The head of the request in ``wire`` if it is decodable and valid; None when that takes
    the exact path (a problem to name, an empty request, or an encoding this cannot judge)."""
    try:
        head = HeadRequest.FromString(wire)
    except Exception:
        return None
    if not head.resource_profiles:
        return None
    view, shallow = parse_columns(wire), parse_shallow(wire)
    if view is None or shallow is None:
        return None
    samples = shallow.sample_count()
    if not (_dictionary_ok(head, view) and _profiles_ok(head, view, shallow, samples)):
        return None
    profiles = sum(
        len(scope_profiles.profiles)
        for resource_profiles in head.resource_profiles
        for scope_profiles in resource_profiles.scope_profiles
    )
    return Vouched(head, profiles, samples)


def _dictionary_ok(head: Any, view: Columns) -> bool:
    d = head.dictionary
    strings, attributes = len(d.string_table), len(d.attribute_table)
    if strings and d.string_table[0] != "":
        return False
    if d.link_table:
        first = Link.FromString(d.link_table[0])
        if any(first.trace_id) or any(first.span_id):
            return False
    value = view.merged("dictionary.attribute_table.value")
    return bool(
        not value.array_value
        and not value.kvlist_value
        and view.in_range("dictionary.attribute_table.key_strindex", strings)
        and view.in_range("dictionary.attribute_table.unit_strindex", strings)
        and view.in_range("dictionary.attribute_table.value.string_value_strindex", strings)
        and view.ids_ok("dictionary.link_table.trace_id", TRACE_ID_BYTES)
        and view.ids_ok("dictionary.link_table.span_id", SPAN_ID_BYTES)
        and view.in_range("dictionary.mapping_table.filename_strindex", strings)
        and view.in_range("dictionary.mapping_table.attribute_indices", attributes)
        and view.in_range("dictionary.function_table.name_strindex", strings)
        and view.in_range("dictionary.function_table.system_name_strindex", strings)
        and view.in_range("dictionary.function_table.filename_strindex", strings)
        and view.in_range("dictionary.location_table.mapping_index", len(d.mapping_table))
        and view.in_range("dictionary.location_table.attribute_indices", attributes)
        and view.in_range("dictionary.location_table.lines.function_index", len(d.function_table))
        and view.in_range("dictionary.stack_table.location_indices", len(d.location_table))
    )


def _profiles_ok(head: Any, view: Columns, shallow: Shallow, samples: int) -> bool:
    d = head.dictionary
    strings, attributes = len(d.string_table), len(d.attribute_table)
    try:
        for resource_profiles in head.resource_profiles:
            check_attributes("resource", resource_profiles.resource.attributes, strings)
            for scope_profiles in resource_profiles.scope_profiles:
                check_attributes("scope", scope_profiles.scope.attributes, strings)
    except InvalidRequestError:
        return False  # named, in order, by the exact path
    return bool(
        view.in_range(f"{_PROFILES}.sample_type.type_strindex", strings)
        and view.in_range(f"{_PROFILES}.sample_type.unit_strindex", strings)
        and view.in_range(f"{_PROFILES}.period_type.type_strindex", strings)
        and view.in_range(f"{_PROFILES}.period_type.unit_strindex", strings)
        and view.ids_ok(f"{_PROFILES}.profile_id", PROFILE_ID_BYTES)
        and view.in_range(f"{_PROFILES}.attribute_indices", attributes)
        and view.samples_ok(shallow, samples, len(d.stack_table), len(d.link_table), attributes)
    )
