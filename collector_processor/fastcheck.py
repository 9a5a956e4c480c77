"""Index checks over the column view of a request's wire bytes, with no Python object per value.

Reading a dictionary entry or a sample of a protobuf message from Python builds an object per
entry, and a request has thousands: checked entry by entry, validation cost most of a
request's CPU. In the column view (wireviews) each index column of the whole request is one
repeated field; it is checked as packed varint bytes with ``bytes.translate`` and big-integer
arithmetic, all in C.

A column holds every value the request holds for that field, and possibly more (values the
real message drops: an earlier occurrence of a singular field, a wrongly typed one read as
packed). So a column in range proves the real values are; a column out of range (or a view
that does not parse) only means "check entry by entry", which names the problem or finds none.

Per-sample counts (values vs timestamps) cannot be merged. They use the order of the merged
columns instead, which is the samples' order when every sample writes each of its two fields
at most once, packed: :func:`canonical` proves that by re-encoding the shallow view.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Dict, Iterable, List, Optional

from google.protobuf import unknown_fields

from collector_processor.wireviews import (
    COLUMNS,
    PACKED,
    ColumnRequest,
    Int32Column,
    ShallowRequest,
)

__all__ = [
    "Columns",
    "canonical",
    "column_in_range",
    "parse_columns",
    "varints_in_range",
]

_KINDS = {(message, name): kind for message, fields in COLUMNS for name, _, kind, _ in fields}
_SAMPLES = "resource_profiles.scope_profiles.profiles.samples"
_CONTINUATION_BYTES = bytes(range(0x80, 0x100))
_DROP_CONTINUATION = operator.methodcaller("translate", None, _CONTINUATION_BYTES)
_FIXED64_BYTES = 8
_ONE_BYTE_LIMIT = 0x80  # varints below this are one byte
# Two-byte varints, with 0x7F above the largest second byte (the separator of _packed_bytes).
_TWO_BYTE_LIMIT = 0x7F * 0x80
_SEPARATOR = b"\x7f"


@functools.lru_cache(maxsize=1024)
def _byte_classes(size: int) -> bytes:
    """Translation table for :func:`varints_in_range` with ``128 < size <= 16256``.

    The largest valid index ``top`` has two varint bytes, ``low`` (continuation) then
    ``high``. A varint is out of range exactly when a continuation byte is followed by another
    continuation byte (three bytes or more, or negative), by a terminal byte above ``high``,
    or, if its own 7 bits exceed ``low``, by ``high`` itself. Bits 0-1 of a byte's class mark
    a continuation byte (1, or 3 when above ``low``); bits 2-3 mark what may not follow any
    continuation (1) and what may not follow one above ``low`` (2).
    """
    top = size - 1
    high, low = top >> 7, top & 0x7F
    classes = bytearray()
    for b in range(256):
        before = 0 if b < 0x80 else 1 if b & 0x7F <= low else 3
        after = 1 if b >= 0x80 or b > high else 2 if b == high else 0
        classes.append(before | after << 2)
    return bytes(classes)


def varints_in_range(blob: bytes, size: int) -> Optional[bool]:
    """Whether ``blob`` is a well-formed run of varints, each an index valid for a table of
    ``size`` (index 0 of an empty table means "not set"); None when ``size`` is too large to
    tell without decoding. All byte-level work, no Python object per value."""
    if not blob:
        return True
    if size <= _ONE_BYTE_LIMIT:
        return not blob.translate(None, bytes(range(max(size, 1))))
    if size > _TWO_BYTE_LIMIT:
        return None
    if blob[-1] >= _ONE_BYTE_LIMIT:
        return False  # ends inside a varint
    # As one big integer, byte i of the classes holds "before" bits at 8i..8i+1; shifted
    # right by 10, the "after" bits of byte i + 1 land on the same two bits (and nothing else
    # meets a set bit): a single AND over the whole column.
    marks = int.from_bytes(blob.translate(_byte_classes(size)), "little")
    return not marks & (marks >> 10)


def column_in_range(column: Any, size: int) -> bool:
    """Every index in ``column`` is valid for a table of ``size``; index 0 of an empty table
    means "not set"."""
    if not column:
        return True
    low, high = min(column), max(column)
    return bool(low >= 0 and (high < size or (size == 0 and high == 0)))


class Columns:
    """The column view of a request's wire bytes; index columns read as packed varint bytes."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self._plain: Dict[str, bool] = {}

    def _plain_message(self, path: str, merged: Any) -> bool:
        """The merged message at ``path`` holds no field unknown to the view."""
        plain = self._plain.get(path)
        if plain is None:
            plain = self._plain[path] = not unknown_fields.UnknownFieldSet(merged)
        return plain

    def _packed_bytes(self, parent: str, merged: Any, name: str, size: int) -> Optional[bytes]:
        # Unpacked elements of a packed column would be unknown fields here (wrong wire type):
        # only a merged message without unknown fields has all its values in the blobs.
        if not self._plain_message(parent, merged) or size > _TWO_BYTE_LIMIT:
            return None  # (huge tables: too rare to decode blob by blob here)
        # Each occurrence must end with its last varint. Joined as they are, one cut short
        # would run on into the next; after a separator that may not follow a continuation
        # byte (a one-byte value, in range, see _byte_classes) it is caught.
        separator = b"" if size <= _ONE_BYTE_LIMIT else _SEPARATOR
        return separator.join(getattr(merged, name))

    @staticmethod
    def _varint_bytes(merged: Any, name: str) -> bytes:
        # Encoding writes a repeated int32 as one packed field: the varints after its tag and
        # length. (Copying the column into a message of its own is a C-level array copy.)
        column = getattr(merged, name)
        if not column:
            return b""
        holder = Int32Column()
        holder.values.extend(column)
        encoded = holder.SerializeToString()
        start = 1  # after the tag, skip the length varint
        while encoded[start] >= _ONE_BYTE_LIMIT:
            start += 1
        return bytes(encoded[start + 1 :])

    def in_range(self, path: str, size: int) -> bool:
        """Every index in the column at ``path`` (``"dictionary.stack_table.location_indices"``)
        is valid for a table of ``size``."""
        parent, _, name = path.rpartition(".")
        merged = _getter(parent)(self.view)
        if _KINDS[merged.DESCRIPTOR.name, name] == PACKED:
            blob = self._packed_bytes(parent, merged, name, size)
            return blob is not None and bool(varints_in_range(blob, size))
        if size > _TWO_BYTE_LIMIT:  # a huge table: decoded values (slower, same answer)
            return column_in_range(getattr(merged, name), size)
        return bool(varints_in_range(self._varint_bytes(merged, name), size))

    def ids_ok(self, path: str, size: int) -> bool:
        """Every id in the bytes column at ``path`` is ``size`` bytes long or empty."""
        return set(map(len, _getter(path)(self.view))) <= {0, size}

    def samples_ok(
        self, shallow: Any, sample_count: int, stacks: int, links: int, attributes: int
    ) -> bool:
        """Every one of the request's ``sample_count`` samples passes; False means "check
        sample by sample" (a problem, or a layout this cannot vouch for). ``shallow`` is the
        request's shallow view (:func:`parse_shallow`)."""
        merged = self.merged(_SAMPLES)
        return (
            self.in_range(f"{_SAMPLES}.stack_index", stacks)
            and self.in_range(f"{_SAMPLES}.link_index", links)
            and self.in_range(f"{_SAMPLES}.attribute_indices", attributes)
            # Values or timestamps written unpacked would be unknown to the merged sample.
            and self._plain_message(_SAMPLES, merged)
            and canonical(shallow)
            and _counts_ok(merged, sample_count)
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
        return Columns(ColumnRequest.FromString(wire))
    except Exception:  # anything unexpected: the exact path decides
        return None


class Shallow:
    """The shallow view of a request's wire bytes (``view``), and those bytes."""

    def __init__(self, wire: bytes) -> None:
        self.wire = wire
        self.view = ShallowRequest.FromString(wire)

    def sample_count(self) -> int:
        return sum(
            len(profile.samples)
            for resource_profiles in self.view.resource_profiles
            for scope_profiles in resource_profiles.scope_profiles
            for profile in scope_profiles.profiles
        )


def parse_shallow(wire: bytes) -> Optional[Shallow]:
    try:
        return Shallow(wire)
    except Exception:  # the exact path decides
        return None


def canonical(shallow: Shallow) -> bool:
    """No field of a sample is written twice or empty: re-encoding the shallow view gives
    back as many bytes as arrived. Fields may come in any order (the Collector writes them
    last to first). Only a proof once values and timestamps written unpacked are ruled out
    (re-encoded, they would grow and could hide a loss elsewhere; see Columns.samples_ok)."""
    return len(shallow.view.SerializeToString()) == len(shallow.wire)


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
