"""A minimal protocol buffers writer: varints, length-delimited fields and packed repeats.

Enough to encode pprof's ``profile.proto`` without generated code; field numbers live with the
message layouts in :mod:`otelprof.viewer.pprof`.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["MessageWriter", "varint"]

_VARINT = 0
_LENGTH_DELIMITED = 2
_UINT64 = 1 << 64


def varint(value: int) -> bytes:
    """Base-128 varint; negative int64 values take their 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += _UINT64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class MessageWriter:
    """Appends fields in the order written; proto3 zero scalars are skipped, as encoders do."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def _tag(self, field: int, wire_type: int) -> None:
        self._buffer += varint(field << 3 | wire_type)

    def integer(self, field: int, value: int) -> MessageWriter:
        """An ``int64``/``uint64``/``bool`` field (omitted when zero)."""
        if value:
            self._tag(field, _VARINT)
            self._buffer += varint(int(value))
        return self

    def bytes_field(self, field: int, data: bytes) -> MessageWriter:
        """A length-delimited field, written even when empty (repeated strings need that)."""
        self._tag(field, _LENGTH_DELIMITED)
        self._buffer += varint(len(data))
        self._buffer += data
        return self

    def string(self, field: int, text: str) -> MessageWriter:
        return self.bytes_field(field, text.encode("utf-8"))

    def message(self, field: int, message: MessageWriter) -> MessageWriter:
        return self.bytes_field(field, message.to_bytes())

    def packed(self, field: int, values: Iterable[int]) -> MessageWriter:
        """A packed repeated varint field (omitted when empty)."""
        payload = b"".join(varint(v) for v in values)
        if payload:
            self.bytes_field(field, payload)
        return self

    def to_bytes(self) -> bytes:
        return bytes(self._buffer)
