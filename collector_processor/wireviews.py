"""Partial schemas of ExportProfilesServiceRequest that read the same wire bytes in other shapes.

Same field numbers and types as profiles.proto (v1.10), fewer or differently shaped fields:

- the *head*: what the pipeline changes (resources, scopes, the string table) decoded, profiles
  and the other dictionary tables kept as the bytes they arrived as, so re-encoding a request
  copies them instead of rebuilding thousands of messages;
- the *column* view: every repeated message on the way to an index read as one singular
  message (parsers merge repeated occurrences of a singular message field) and every scalar
  as a repeated field, so each index column of the whole request lands in one field;
- the *shallow* view: resources and dictionary as bytes, samples decoded, for the proof that
  the samples are encoded canonically (see fastcheck).

Together they parse every byte the full message would (see fastpath for the argument).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Imported for their registration in the default pool: the head refers to their types.
from opentelemetry.proto.common.v1 import common_pb2  # noqa: F401
from opentelemetry.proto.resource.v1 import resource_pb2  # noqa: F401

__all__ = [
    "COLUMNS",
    "INT32",
    "PACKED",
    "ColumnRequest",
    "HeadRequest",
    "Int32Column",
    "ShallowRequest",
]

_F = descriptor_pb2.FieldDescriptorProto
BYTES, INT32, STRING = _F.TYPE_BYTES, _F.TYPE_INT32, _F.TYPE_STRING
UINT64, INT64, FIXED64, UINT32 = _F.TYPE_UINT64, _F.TYPE_INT64, _F.TYPE_FIXED64, _F.TYPE_UINT32
PACKED = "packed"  # a packed repeated int32 read as the bytes of each occurrence
# (message, ((field, number, type or message name, repeated), ...)); a name starting with "."
# is a fully qualified type from the default pool; repeated may be "optional" (see SHALLOW).
Schema = Tuple[Tuple[str, Tuple[Tuple[str, int, Any, Any], ...]], ...]

# In messages with packed columns every field is declared, so that an unknown field there
# means an unexpected encoding (an unpacked index, say).
COLUMNS: Schema = (
    ("Request", (
        ("resource_profiles", 1, "ResourceProfiles", False),
        ("dictionary", 2, "Dictionary", False),
    )),
    ("ResourceProfiles", (("scope_profiles", 2, "ScopeProfiles", False),)),
    ("ScopeProfiles", (("profiles", 2, "Profile", False),)),
    ("Profile", (
        ("sample_type", 1, "ValueType", False),
        ("samples", 2, "Sample", False),
        ("time_unix_nano", 3, FIXED64, True),
        ("duration_nano", 4, INT64, True),
        ("period_type", 5, "ValueType", False),
        ("period", 6, INT64, True),
        ("profile_id", 7, BYTES, True),
        ("dropped_attributes_count", 8, UINT32, True),
        ("original_payload_format", 9, STRING, True),
        ("original_payload", 10, BYTES, True),
        ("attribute_indices", 11, INT32, True),
    )),
    ("ValueType", (("type_strindex", 1, INT32, True), ("unit_strindex", 2, INT32, True))),
    ("Sample", (
        ("stack_index", 1, INT32, True),
        ("attribute_indices", 2, INT32, True),
        ("link_index", 3, INT32, True),
        ("values", 4, BYTES, True),  # one packed blob per sample, when canonical
        ("timestamps_unix_nano", 5, BYTES, True),
    )),
    ("Dictionary", (
        ("mapping_table", 1, "Mapping", False),
        ("location_table", 2, "Location", False),
        ("function_table", 3, "Function", False),
        ("link_table", 4, "Link", False),
        ("attribute_table", 6, "Attribute", False),
        ("stack_table", 7, "Stack", False),
    )),
    ("Mapping", (
        ("memory_start", 1, UINT64, True),
        ("memory_limit", 2, UINT64, True),
        ("file_offset", 3, UINT64, True),
        ("filename_strindex", 4, INT32, True),
        ("attribute_indices", 5, INT32, True),
    )),
    ("Location", (
        ("mapping_index", 1, INT32, True),
        ("address", 2, UINT64, True),
        ("lines", 3, "Line", False),
        ("attribute_indices", 4, INT32, True),
    )),
    ("Line", (("function_index", 1, INT32, True),)),
    ("Function", (
        ("name_strindex", 1, INT32, True),
        ("system_name_strindex", 2, INT32, True),
        ("filename_strindex", 3, INT32, True),
    )),
    ("Link", (("trace_id", 1, BYTES, True), ("span_id", 2, BYTES, True))),
    ("Attribute", (
        ("key_strindex", 1, INT32, True),
        ("value", 2, "AnyValue", False),
        ("unit_strindex", 3, INT32, True),
    )),
    # Nested values (arrays, key/value lists) are only detected: they take the exact path.
    ("AnyValue", (
        ("string_value", 1, STRING, True),
        ("array_value", 5, BYTES, True),
        ("kvlist_value", 6, BYTES, True),
        ("string_value_strindex", 8, INT32, True),
    )),
    ("Stack", (("location_indices", 1, PACKED, True),)),
)  # fmt: skip

# Shallow view, for the proof that samples are written canonically (fastcheck.canonical):
# re-encoding it never makes a request longer (varints are read as uint64 and written back
# exactly, other fields are kept as bytes with presence, unknown fields are copied, and no
# repeated field it decodes was written unpacked: see Sample), and makes it shorter exactly
# when something was written twice, empty or not in its shortest form.
_KEEP = "optional"
SHALLOW: Schema = (
    ("Request", (
        ("resource_profiles", 1, "ResourceProfiles", True),
        ("dictionary", 2, BYTES, _KEEP),
    )),
    ("ResourceProfiles", (
        ("resource", 1, BYTES, _KEEP),
        ("scope_profiles", 2, "ScopeProfiles", True),
        ("schema_url", 3, BYTES, _KEEP),
    )),
    ("ScopeProfiles", (
        ("scope", 1, BYTES, _KEEP),
        ("profiles", 2, "Profile", True),
        ("schema_url", 3, BYTES, _KEEP),
    )),
    ("Profile", (
        ("sample_type", 1, BYTES, _KEEP),
        ("samples", 2, "Sample", True),
        ("time_unix_nano", 3, FIXED64, _KEEP),
        ("duration_nano", 4, UINT64, _KEEP),
        ("period_type", 5, BYTES, _KEEP),
        ("period", 6, UINT64, _KEEP),
        ("profile_id", 7, BYTES, _KEEP),
        ("dropped_attributes_count", 8, UINT64, _KEEP),
        ("original_payload_format", 9, BYTES, _KEEP),
        ("original_payload", 10, BYTES, _KEEP),
        ("attribute_indices", 11, BYTES, _KEEP),
    )),
    ("Sample", (
        ("stack_index", 1, UINT64, _KEEP),
        # Kept as bytes: decoded, an index written unpacked would be re-encoded packed, one
        # byte longer, and could hide a byte lost elsewhere (the column view decodes them).
        ("attribute_indices", 2, BYTES, _KEEP),
        ("link_index", 3, UINT64, _KEEP),
        # Decoded (the only view that checks they are well formed). Written unpacked they
        # would be re-encoded longer too: Columns.samples_ok rules that out first.
        ("values", 4, UINT64, True),
        ("timestamps_unix_nano", 5, FIXED64, True),
    )),
)  # fmt: skip

_TABLES = ("mapping_table", "location_table", "function_table", "link_table")
HEAD: Schema = (
    ("Request", (
        ("resource_profiles", 1, "ResourceProfiles", True),
        ("dictionary", 2, "Dictionary", False),
    )),
    ("ResourceProfiles", (
        ("resource", 1, ".opentelemetry.proto.resource.v1.Resource", False),
        ("scope_profiles", 2, "ScopeProfiles", True),
        ("schema_url", 3, STRING, False),
    )),
    ("ScopeProfiles", (
        ("scope", 1, ".opentelemetry.proto.common.v1.InstrumentationScope", False),
        ("profiles", 2, BYTES, True),
        ("schema_url", 3, STRING, False),
    )),
    ("Dictionary", (
        *((name, number, BYTES, True) for number, name in enumerate(_TABLES, 1)),
        ("string_table", 5, STRING, True),
        ("attribute_table", 6, BYTES, True),
        ("stack_table", 7, BYTES, True),
    )),
)  # fmt: skip


def _message_classes(
    package: str, schema: Schema, pool: Any = None, dependencies: Tuple[str, ...] = ()
) -> Dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}.proto",
        package=package,
        syntax="proto3",
        dependency=dependencies,
    )
    for message_name, fields in schema:
        message = file.message_type.add(name=message_name)
        for name, number, kind, repeated in fields:
            field = message.field.add(
                name=name,
                number=number,
                label=_F.LABEL_REPEATED if repeated is True else _F.LABEL_OPTIONAL,
            )
            if repeated == _KEEP:  # proto3 `optional`: presence, so even "" or 0 is kept
                field.proto3_optional = True
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{name}")
            if kind == PACKED:
                field.type = BYTES
            elif isinstance(kind, str):
                field.type = _F.TYPE_MESSAGE
                field.type_name = kind if kind.startswith(".") else f".{package}.{kind}"
            else:
                field.type = kind
    if pool is None:
        pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name, _ in schema
    }


ColumnRequest = _message_classes("otelprof_collector.columns", COLUMNS)["Request"]
ShallowRequest = _message_classes("otelprof_collector.shallow", SHALLOW)["Request"]
Int32Column = _message_classes(
    "otelprof_collector.decoded", (("Column", (("values", 1, INT32, True),)),)
)["Column"]
# In the default pool: its resources and scopes are the generated Resource and
# InstrumentationScope classes, which processors change as in a full request.
HeadRequest = _message_classes(
    "otelprof_collector.head",
    HEAD,
    descriptor_pool.Default(),
    (
        "opentelemetry/proto/resource/v1/resource.proto",
        "opentelemetry/proto/common/v1/common.proto",
    ),
)["Request"]
