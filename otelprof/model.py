"""Small frozen, hashable values that every sampler produces and the builder encodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple, Union

AttributeValue = Union[str, int, float, bool]
Attributes = Tuple[Tuple[str, AttributeValue], ...]
"""Sorted ``(key, value)`` pairs: hashable, and equal whatever order they were given in."""


def attributes(
    mapping: Optional[Mapping[str, AttributeValue]] = None, /, **kw: AttributeValue
) -> Attributes:
    """Turn a mapping (and/or keywords) into the canonical sorted tuple form."""
    merged = dict(mapping or {})
    merged.update(kw)
    return tuple(sorted(merged.items()))


@dataclass(frozen=True)
class Frame:
    """One Python frame: function, file and the line executing in it."""

    function: str
    filename: str
    line: int = 0
    start_line: int = 0
    # The semantic-convention frame type (``profile.frame.type``); every frame the agent sees,
    # the synthetic ones ([gc], [truncated]) included, belongs to the CPython interpreter.
    frame_type: str = "cpython"


TRUNCATED_FRAME = Frame("[truncated]", "", 0, 0)
"""Placed at the root end of a stack cut at the depth limit, so the cut is visible."""

Stack = Tuple[Frame, ...]
"""Leaf (innermost, currently executing) frame first, as in OTLP ``Stack.location_indices``."""


@dataclass(frozen=True)
class SpanLink:
    """The span a sample was taken in: 16-byte trace id and 8-byte span id."""

    trace_id: bytes
    span_id: bytes

    def __post_init__(self) -> None:
        if len(self.trace_id) != 16 or len(self.span_id) != 8:
            raise ValueError("trace_id must be 16 bytes and span_id 8 bytes")

    @classmethod
    def from_ints(cls, trace_id: int, span_id: int) -> SpanLink:
        return cls(trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big"))


@dataclass(frozen=True)
class ValueType:
    """A sample type or period type, e.g. ``ValueType("cpu", "nanoseconds")``."""

    type: str
    unit: str


CPU_NANOS = ValueType("cpu", "nanoseconds")
WALL_NANOS = ValueType("wall", "nanoseconds")


@dataclass(frozen=True)
class SampleTag:
    """What a sampler learned about the context of a sample besides its stack."""

    link: Optional[SpanLink] = None
    attributes: Attributes = ()


@dataclass(frozen=True)
class Sample:
    """An aggregated sample: a stack, its value, its attributes and the span it ran in."""

    stack: Stack
    value: int
    attributes: Attributes = ()
    link: Optional[SpanLink] = None


@dataclass(frozen=True)
class Profile:
    """One profile of one sample type over ``[start_unix_nano, start + duration)``."""

    sample_type: ValueType
    period_type: ValueType
    period: int
    start_unix_nano: int
    duration_nano: int
    samples: Tuple[Sample, ...]
    attributes: Attributes = ()
    profile_id: bytes = field(default=b"")
