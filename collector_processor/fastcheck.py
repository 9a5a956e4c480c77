"""Validation fast path: check every sample's indices with C-level loops over a shallow view.

Reading a repeated field of a protobuf message in Python builds a container object, and a
sample has three of them: field by field, sample checks cost most of a request's CPU. So the
request's wire bytes are parsed a second time into a "lite" schema with the same field
numbers, where the packed fields of ``Sample`` (and everything we do not inspect) are plain
``bytes``. Index ranges and value counts then come from ``min``/``max``/``map`` over those
bytes. The view is used only if serializing it reproduces the wire bytes exactly (no unknown,
unpacked, repeated or non-canonical fields), so it holds exactly what the real message holds;
otherwise, and whenever a fast check fails, validation falls back to the per-sample loop that
names the problem.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any, List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["lite_profiles", "samples_within"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "otelprof_collector.lite"
_BYTES = _F.TYPE_BYTES
# (message, [(field, number, type, repeated, lite message)]), numbers as in profiles.proto.
_SCHEMA: Tuple[Tuple[str, Tuple[Tuple[str, int, int, bool, str], ...]], ...] = (
    (
        "Request",
        (
            ("resource_profiles", 1, 0, True, "ResourceProfiles"),
            ("dictionary", 2, _BYTES, False, ""),
        ),
    ),
    (
        "ResourceProfiles",
        (
            ("resource", 1, _BYTES, False, ""),
            ("scope_profiles", 2, 0, True, "ScopeProfiles"),
            ("schema_url", 3, _BYTES, False, ""),
        ),
    ),
    (
        "ScopeProfiles",
        (
            ("scope", 1, _BYTES, False, ""),
            ("profiles", 2, 0, True, "Profile"),
            ("schema_url", 3, _BYTES, False, ""),
        ),
    ),
    (
        "Profile",
        (
            ("sample_type", 1, _BYTES, False, ""),
            ("samples", 2, 0, True, "Sample"),
            ("time_unix_nano", 3, _F.TYPE_FIXED64, False, ""),
            ("duration_nano", 4, _F.TYPE_INT64, False, ""),
            ("period_type", 5, _BYTES, False, ""),
            ("period", 6, _F.TYPE_INT64, False, ""),
            ("profile_id", 7, _BYTES, False, ""),
            ("dropped_attributes_count", 8, _F.TYPE_UINT32, False, ""),
            ("original_payload_format", 9, _BYTES, False, ""),
            ("original_payload", 10, _BYTES, False, ""),
            ("attribute_indices", 11, _BYTES, False, ""),
        ),
    ),
    (
        "Sample",
        (
            ("stack_index", 1, _F.TYPE_INT32, False, ""),
            ("attribute_indices", 2, _BYTES, False, ""),  # packed int32
            ("link_index", 3, _F.TYPE_INT32, False, ""),
            ("values", 4, _BYTES, False, ""),  # packed int64
            ("timestamps_unix_nano", 5, _BYTES, False, ""),  # packed fixed64
        ),
    ),
)


def _build_request_class() -> Any:
    file = descriptor_pb2.FileDescriptorProto(
        name="otelprof_collector_lite.proto", package=_PACKAGE, syntax="proto3"
    )
    for message_name, fields in _SCHEMA:
        message = file.message_type.add(name=message_name)
        for name, number, kind, repeated, lite in fields:
            field = message.field.add(
                name=name,
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
                type=_F.TYPE_MESSAGE if lite else kind,
            )
            if lite:
                field.type_name = f".{_PACKAGE}.{lite}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Request"))


_LiteRequest = _build_request_class()
_SAMPLE_FIELDS = operator.attrgetter(
    "stack_index", "attribute_indices", "link_index", "values", "timestamps_unix_nano"
)
_CONTINUATION_BYTES = bytes(range(0x80, 0x100))
_DROP_CONTINUATION = operator.methodcaller("translate", None, _CONTINUATION_BYTES)
SINGLE_BYTE_VARINT_LIMIT = 0x80


def lite_profiles(wire: bytes) -> Optional[List[Any]]:
    """The lite view's profiles in request order, or None when it may differ from the request."""
    try:
        lite = _LiteRequest.FromString(wire)
        lite.DiscardUnknownFields()
        if lite.SerializeToString() != wire:
            return None
    except Exception:  # anything unexpected: use the exact path
        return None
    return [
        profile
        for resource_profiles in lite.resource_profiles
        for scope_profiles in resource_profiles.scope_profiles
        for profile in scope_profiles.profiles
    ]


def _in_range(low: int, high: int, size: int) -> bool:
    return low >= 0 and (high < size or (size == 0 and high == 0))


def samples_within(samples: Any, stacks: int, links: int, attributes: int) -> bool:
    """True only if every sample of a lite profile passes; False means "check one by one"."""
    if not samples:
        return True
    stack_column, attribute_blobs, link_column, values, timestamps = zip(
        *map(_SAMPLE_FIELDS, samples)
    )
    if not _in_range(min(stack_column), max(stack_column), stacks):
        return False
    if not _in_range(min(link_column), max(link_column), links):
        return False
    joined = b"".join(attribute_blobs)
    # Indices below 128 are one varint byte each; a larger index or table, or a negative
    # index (ten bytes with the high bit set), is left to the exact path.
    if joined and (
        attributes > SINGLE_BYTE_VARINT_LIMIT or not _in_range(0, max(joined), attributes)
    ):
        return False
    # A varint ends in the one byte without the high bit: count those. fixed64 is 8 bytes.
    value_counts = list(map(len, map(_DROP_CONTINUATION, values)))
    timestamp_counts = list(map(operator.rshift, map(len, timestamps), itertools.repeat(3)))
    if 0 in map(max, value_counts, timestamp_counts):
        return False
    return value_counts == timestamp_counts or not any(timestamp_counts) or not any(value_counts)
