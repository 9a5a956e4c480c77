"""Validation fast path: every index column of a request in one C-level parse of its wire bytes.

Reading a dictionary entry or a sample of a protobuf message from Python builds an object per
entry, and a request has thousands: checked entry by entry, validation cost most of a
request's CPU. Protobuf parsers *merge* repeated occurrences of a singular message field and
*append* to repeated scalar fields, and accept a scalar written singly or packed. So the wire
bytes are parsed a second time into a "column" schema with the same field numbers where every
repeated message along the way is declared singular and every scalar repeated: all sample
stack indices of the request land in one repeated field, all location indices of all stacks in
another, and so on. ``min``/``max`` over those run in C.

A column holds every value the request holds for that field, and possibly more (values the
real message drops: an earlier occurrence of a singular field, a wrongly typed one read as
packed). So a column in range proves the real values are; a column out of range (or a view
that does not parse) only means "check entry by entry", which names the problem or finds none.

Per-sample counts (values vs timestamps) cannot be merged. They use the order of the merged
columns instead, which is the samples' order when every sample writes each of its two fields
at most once, packed: :func:`canonical` proves that by re-encoding a shallow view of the
request and comparing it with the wire bytes.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Dict, Iterable, List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields

__all__ = [
    "Columns",
    "canonical",
    "column_in_range",
    "parse_columns",
    "varints_in_range",
]

_F = descriptor_pb2.FieldDescriptorProto
_BYTES, _INT32, _UINT64, _INT64 = _F.TYPE_BYTES, _F.TYPE_INT32, _F.TYPE_UINT64, _F.TYPE_INT64
_PACKED = "packed"  # a packed repeated int32: read as the bytes of each occurrence
_Schema = Tuple[Tuple[str, Tuple[Tuple[str, int, Any, bool], ...]], ...]

# Column view: a field whose type is a message name is a (merged) singular message; a scalar
# field is repeated. Field numbers as in profiles.proto (v1.10) and common.proto. Fields that
# are never checked are declared anyway in messages with packed columns, so that anything
# unknown there means an unexpected encoding (an unpacked index, say: see Columns).
_COLUMNS: _Schema = (
    ("Request", (
        ("resource_profiles", 1, "ResourceProfiles", False),
        ("dictionary", 2, "Dictionary", False),
    )),
    ("ResourceProfiles", (("scope_profiles", 2, "ScopeProfiles", False),)),
    ("ScopeProfiles", (("profiles", 2, "Profile", False),)),
    ("Profile", (("samples", 2, "Sample", False),)),
    ("Sample", (
        ("stack_index", 1, _INT32, True),
        ("attribute_indices", 2, _PACKED, True),
        ("link_index", 3, _INT32, True),
        ("values", 4, _BYTES, True),  # one packed blob per sample, when canonical
        ("timestamps_unix_nano", 5, _BYTES, True),
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
        ("memory_start", 1, _UINT64, True),
        ("memory_limit", 2, _UINT64, True),
        ("file_offset", 3, _UINT64, True),
        ("filename_strindex", 4, _INT32, True),
        ("attribute_indices", 5, _PACKED, True),
    )),
    ("Location", (
        ("mapping_index", 1, _INT32, True),
        ("address", 2, _UINT64, True),
        ("lines", 3, "Line", False),
        ("attribute_indices", 4, _PACKED, True),
    )),
    ("Line", (("function_index", 1, _INT32, True),)),
    ("Function", (
        ("name_strindex", 1, _INT32, True),
        ("system_name_strindex", 2, _INT32, True),
        ("filename_strindex", 3, _INT32, True),
    )),
    ("Link", (("trace_id", 1, _BYTES, True), ("span_id", 2, _BYTES, True))),
    ("Attribute", (
        ("key_strindex", 1, _INT32, True),
        ("value", 2, "AnyValue", False),
        ("unit_strindex", 3, _INT32, True),
    )),
    # Nested values (arrays, key/value lists) are only detected: they take the exact path.
    ("AnyValue", (
        ("array_value", 5, _BYTES, True),
        ("kvlist_value", 6, _BYTES, True),
        ("string_value_strindex", 8, _INT32, True),
    )),
    ("Stack", (("location_indices", 1, _PACKED, True),)),
)  # fmt: skip
_SAMPLES = "resource_profiles.scope_profiles.profiles.samples"

# Shallow view for the canonical-encoding proof: what samples hold is kept as bytes, and
# everything above them is structured just enough to reach them.
_SHALLOW: _Schema = (
    ("Request", (
        ("resource_profiles", 1, "ResourceProfiles", True),
        ("dictionary", 2, _BYTES, False),
    )),
    ("ResourceProfiles", (
        ("resource", 1, _BYTES, False),
        ("scope_profiles", 2, "ScopeProfiles", True),
        ("schema_url", 3, _BYTES, False),
    )),
    ("ScopeProfiles", (
        ("scope", 1, _BYTES, False),
        ("profiles", 2, "Profile", True),
        ("schema_url", 3, _BYTES, False),
    )),
    ("Profile", (
        ("sample_type", 1, _BYTES, False),
        ("samples", 2, "Sample", True),
        ("time_unix_nano", 3, _F.TYPE_FIXED64, False),
        ("duration_nano", 4, _F.TYPE_INT64, False),
        ("period_type", 5, _BYTES, False),
        ("period", 6, _F.TYPE_INT64, False),
        ("profile_id", 7, _BYTES, False),
        ("dropped_attributes_count", 8, _F.TYPE_UINT32, False),
        ("original_payload_format", 9, _BYTES, False),
        ("original_payload", 10, _BYTES, False),
        ("attribute_indices", 11, _BYTES, False),
    )),
    ("Sample", (
        ("stack_index", 1, _INT32, False),
        ("attribute_indices", 2, _BYTES, False),  # packed int32
        ("link_index", 3, _INT32, False),
        ("values", 4, _BYTES, False),  # packed int64
        ("timestamps_unix_nano", 5, _BYTES, False),  # packed fixed64
    )),
)  # fmt: skip


def _message_classes(package: str, schema: _Schema) -> Dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package}.proto", package=package, syntax="proto3"
    )
    for message_name, fields in schema:
        message = file.message_type.add(name=message_name)
        for name, number, kind, repeated in fields:
            field = message.field.add(
                name=name,
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if kind == _PACKED:
                field.type = _BYTES
            elif isinstance(kind, str):
                field.type, field.type_name = _F.TYPE_MESSAGE, f".{package}.{kind}"
            else:
                field.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name, _ in schema
    }


def _as_blobs(schema: _Schema) -> _Schema:
    """The column schema with each repeated int32 read as the one packed blob that
    re-encoding a column view writes for it."""
    return tuple(
        (
            message,
            tuple(
                (name, number, _BYTES if kind == _INT32 else kind, repeated and kind != _INT32)
                for name, number, kind, repeated in fields
            ),
        )
        for message, fields in schema
    )


_ColumnRequest = _message_classes("otelprof_collector.columns", _COLUMNS)["Request"]
_BLOB_CLASSES = _message_classes("otelprof_collector.blobs", _as_blobs(_COLUMNS))
_Int32Column = _message_classes(
    "otelprof_collector.decoded", (("Column", (("values", 1, _INT32, True),)),)
)["Column"]
_PACKED_TAG = b"\x0a"  # field 1, length-delimited
_KINDS = {(message, name): kind for message, fields in _COLUMNS for name, _, kind, _ in fields}
_ShallowRequest = _message_classes("otelprof_collector.shallow", _SHALLOW)["Request"]
_CONTINUATION_BYTES = bytes(range(0x80, 0x100))
_DROP_CONTINUATION = operator.methodcaller("translate", None, _CONTINUATION_BYTES)
_FIXED64_BYTES = 8
_ONE_BYTE_LIMIT = 0x80  # varints below this are one byte
_TWO_BYTE_LIMIT = 0x80 * 0x80


@functools.lru_cache(maxsize=1024)
def _byte_classes(size: int) -> Tuple[bytes, bytes]:
    """Translation tables for :func:`varints_in_range` with ``128 < size <= 16384``.

    The largest valid index ``top`` has two varint bytes, ``low`` (continuation) then
    ``high``. A varint is out of range exactly when a continuation byte is followed by another
    continuation byte (three bytes or more, or negative), by a terminal byte above ``high``,
    or, if its own 7 bits exceed ``low``, by ``high`` itself. ``before`` marks continuation
    bytes (1, or 3 when above ``low``); ``after`` marks what may not follow any continuation
    (1) and what may not follow one above ``low`` (2).
    """
    top = size - 1
    high, low = top >> 7, top & 0x7F
    before = bytes(0 if b < 0x80 else 1 if b & 0x7F <= low else 3 for b in range(256))
    after = bytes(1 if b >= 0x80 or b > high else 2 if b == high else 0 for b in range(256))
    return before, after


def varints_in_range(blob: bytes, size: int) -> Optional[bool]:
    """Whether every varint in the packed ``blob`` is an index valid for a table of ``size``
    (index 0 of an empty table means "not set"); None when ``size`` is too large to tell
    without decoding. All byte-level work, no Python object per value."""
    if not blob:
        return True
    if size <= _ONE_BYTE_LIMIT:
        return not blob.translate(None, bytes(range(max(size, 1))))
    if size > _TWO_BYTE_LIMIT:
        return None
    before, after = _byte_classes(size)
    # Byte i of `before` meets byte i + 1 of `after`: one AND over two big integers.
    marks = int.from_bytes(blob.translate(before), "little")
    return not marks & int.from_bytes(blob[1:].translate(after), "little")


class Columns:
    """The column view of a request's wire bytes; index columns read as packed varint bytes."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self._blobs: Dict[str, Any] = {}
        self._plain: Dict[str, bool] = {}

    def _packed_bytes(self, parent: str, merged: Any, name: str) -> Optional[bytes]:
        # Unpacked elements of a packed column would be unknown fields here (wrong wire type):
        # only a merged message without unknown fields has all its values in the blobs.
        plain = self._plain.get(parent)
        if plain is None:
            plain = self._plain[parent] = not unknown_fields.UnknownFieldSet(merged)
        return b"".join(getattr(merged, name)) if plain else None

    def _varint_bytes(self, parent: str, merged: Any, name: str) -> bytes:
        # Re-encoding writes each repeated int32 as one packed field: read it back as bytes.
        blobs = self._blobs.get(parent)
        if blobs is None:
            blob_class = _BLOB_CLASSES[merged.DESCRIPTOR.name]
            blobs = self._blobs[parent] = blob_class.FromString(merged.SerializeToString())
        return bytes(getattr(blobs, name))

    def in_range(self, path: str, size: int) -> bool:
        """Every index in the column at ``path`` (``"dictionary.stack_table.location_indices"``)
        is valid for a table of ``size``."""
        parent, _, name = path.rpartition(".")
        merged = _getter(parent)(self.view)
        if _KINDS[merged.DESCRIPTOR.name, name] == _PACKED:
            blob = self._packed_bytes(parent, merged, name)
            if blob is None:
                return False
        else:
            blob = self._varint_bytes(parent, merged, name)
        verdict = varints_in_range(blob, size)
        if verdict is None:  # a huge table: decode (slower, same answer)
            return _decoded_in_range(blob, size)
        return verdict

    def samples_ok(
        self, wire: bytes, sample_count: int, stacks: int, links: int, attributes: int
    ) -> bool:
        """Every one of the request's ``sample_count`` samples passes; False means "check
        sample by sample" (a problem, or a layout this cannot vouch for)."""
        samples = self.view.resource_profiles.scope_profiles.profiles.samples
        # Nothing unknown in any sample (an unpacked value, say), and canonical (see there).
        if unknown_fields.UnknownFieldSet(samples) or not canonical(wire):
            return False
        self._plain[_SAMPLES] = True
        return (
            self.in_range(f"{_SAMPLES}.stack_index", stacks)
            and self.in_range(f"{_SAMPLES}.link_index", links)
            and self.in_range(f"{_SAMPLES}.attribute_indices", attributes)
            and _counts_ok(samples, sample_count)
        )

    def merged(self, path: str) -> Any:
        """The merged message at ``path``."""
        return _getter(path)(self.view)


@functools.cache
def _getter(path: str) -> Any:
    return operator.attrgetter(path)


def parse_columns(wire: bytes) -> Optional[Columns]:
    """The column view of ``wire``, or None if it does not parse (then check entry by entry)."""
    try:
        return Columns(_ColumnRequest.FromString(wire))
    except Exception:  # anything unexpected: the exact path decides
        return None


def canonical(wire: bytes) -> bool:
    """Re-encoding the shallow view reproduces ``wire``: no field of a sample written twice or
    empty, nothing out of order on the way to the samples. Unknown fields survive re-encoding
    when they come last in their message: :meth:`Columns.samples_ok` rules them out in
    samples."""
    try:
        return bool(_ShallowRequest.FromString(wire).SerializeToString() == wire)
    except Exception:
        return False


def _decoded_in_range(blob: bytes, size: int) -> bool:
    """:func:`varints_in_range` by decoding, for tables too large for the byte checks."""
    ints = _Int32Column.FromString(_PACKED_TAG + _varint(len(blob)) + blob)
    return column_in_range(ints.values, size)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= _ONE_BYTE_LIMIT:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def column_in_range(column: Any, size: int) -> bool:
    """Every index in ``column`` is valid for a table of ``size``; index 0 of an empty table
    means "not set"."""
    if not column:
        return True
    low, high = min(column), max(column)
    return bool(low >= 0 and (high < size or (size == 0 and high == 0)))


def _value_counts(blobs: Iterable[bytes]) -> List[int]:
    # A varint ends in the one byte without the high bit: count those.
    return list(map(len, map(_DROP_CONTINUATION, blobs)))


def _counts_ok(samples: Any, sample_count: int) -> bool:
    """Every one of the request's ``sample_count`` samples has values or timestamps, and as
    many of each when it has both; ``samples`` is the merged ``Sample`` of a request written
    canonically, so the i-th blob of a column belongs to the i-th sample that has the field,
    and no blob is empty."""
    values, timestamps = samples.values, samples.timestamps_unix_nano
    with_values, with_timestamps = len(values), len(timestamps)
    if not with_timestamps:
        return with_values == sample_count
    if not with_values:
        return with_timestamps == sample_count
    if not with_values == with_timestamps == sample_count:
        return False  # some samples with both, some with one: sample by sample
    return _value_counts(values) == [len(blob) // _FIXED64_BYTES for blob in timestamps]
