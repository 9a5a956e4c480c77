"""Bounded gzip decoding of request bodies: output capped, members capped, no quadratic copies."""

from __future__ import annotations

import zlib

from collector_processor.errors import InvalidRequestError

__all__ = ["MAX_MEMBERS", "BodyTooLarge", "gunzip_limited"]

# Clients send one member; concatenated members are legal gzip, but each costs a decompressor,
# and a body of a million empty members must not pin the event loop.
MAX_MEMBERS = 64
# Input is fed in slices: a member's leftover input is copied once per slice, not per body.
CHUNK_BYTES = 16 * 1024


class BodyTooLarge(Exception):
    """The decompressed body would exceed the configured limit."""


def _new() -> zlib._Decompress:
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


def gunzip_limited(body: bytes, limit: int) -> bytes:
    """Decompress gzip (all members) without ever holding more than ``limit`` bytes of output."""
    output = bytearray()
    view = memoryview(body)
    position, pending = 0, b""
    decompressor, in_member, members = _new(), False, 0
    while pending or position < len(body):
        if not pending:
            pending = bytes(view[position : position + CHUNK_BYTES])
            position += len(pending)
        if not in_member:
            members += 1
            if members > MAX_MEMBERS:
                raise InvalidRequestError(f"invalid gzip body: more than {MAX_MEMBERS} members")
            in_member = True
        try:
            # limit + 1 - len(output) >= 1 here: 0 would mean "no limit" to zlib.
            output += decompressor.decompress(pending, limit + 1 - len(output))
        except zlib.error as exc:
            raise InvalidRequestError(f"invalid gzip body: {exc}") from None
        if len(output) > limit:
            raise BodyTooLarge(f"decompressed body exceeds max_request_body_size ({limit} bytes)")
        if decompressor.eof:
            pending = decompressor.unused_data  # at most one slice
            decompressor, in_member = _new(), False
        else:
            pending = decompressor.unconsumed_tail
    if in_member:
        raise InvalidRequestError("invalid gzip body: truncated")
    return bytes(output)
