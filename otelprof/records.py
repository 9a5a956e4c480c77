"""Decoded OTLP profiles as flat frozen records, and the filters that select parts of them.

Protobuf-free: the reader builds these, and top, view, diff and export only read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Dict, Iterable, Mapping, Optional, Set, Tuple, Union

from otelprof.model import AttributeValue, Stack, ValueType

__all__ = [
    "ENDPOINT_ATTRIBUTE",
    "FRAME_TYPE_ATTRIBUTE",
    "SPAN_ID_BYTES",
    "THREAD_NAME_ATTRIBUTE",
    "TRACE_ID_BYTES",
    "DecodedSample",
    "ProfileRecord",
    "ReadOnlyAttributes",
    "attribute_text",
    "by_resource",
    "by_sample_attribute",
    "by_sample_type",
    "by_span_id",
    "by_time_range",
    "by_trace_id",
    "filter_samples",
    "is_hex_id",
    "parse_hex_id",
    "sample_types",
]

ENDPOINT_ATTRIBUTE = "otelprof.endpoint"
"""Sample attribute carrying the local root span's name (the endpoint, e.g. ``GET /checkout``)."""
THREAD_NAME_ATTRIBUTE = "thread.name"
FRAME_TYPE_ATTRIBUTE = "profile.frame.type"
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8

_HEX = re.compile(r"^[0-9a-fA-F]*$")

ReadOnlyAttributes = Mapping[str, AttributeValue]
EMPTY_ATTRIBUTES: ReadOnlyAttributes = MappingProxyType({})


@dataclass(frozen=True)
class DecodedSample:
    """One sample: its stack (leaf first), summed value, attributes and span link.

    ``values`` and ``timestamps_unix_nano`` are the raw per-event fields (aligned when both are
    present); ``value`` is the sum of ``values``, or the number of timestamps when there are none.
    """

    stack: Stack
    value: int
    attributes: ReadOnlyAttributes = field(default_factory=lambda: EMPTY_ATTRIBUTES)
    trace_id: Optional[bytes] = None
    span_id: Optional[bytes] = None
    values: Tuple[int, ...] = ()
    timestamps_unix_nano: Tuple[int, ...] = ()


@dataclass(frozen=True)
class ProfileRecord:
    """One decoded ``Profile`` with the resource and scope it was sent under.

    ``source`` names the file it was read from. Attribute mappings are read-only views; records
    compare by value but are not hashable.
    """

    source: str
    sample_type: ValueType
    period_type: ValueType
    period: int
    start_unix_nano: int
    duration_nano: int
    resource: ReadOnlyAttributes
    scope_name: str
    scope_version: str
    profile_attributes: ReadOnlyAttributes
    profile_id: bytes
    samples: Tuple[DecodedSample, ...]

    @property
    def total(self) -> int:
        return sum(s.value for s in self.samples)


def attribute_text(value: AttributeValue) -> str:
    """The text an attribute value is matched against (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def is_hex_id(text: str, size: int) -> bool:
    """Whether ``text`` is exactly ``size`` bytes written as hex digits."""
    return len(text) == 2 * size and _HEX.match(text) is not None


def parse_hex_id(text: str, size: int, what: str = "id") -> bytes:
    """Parse a hex trace id (``size`` 16) or span id (8); ``ValueError`` says what is wrong.

    A ``0x`` prefix is accepted: the SDK's console exporter prints ids that way.
    """
    cleaned = text.strip().lower()
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    if not is_hex_id(cleaned, size):
        raise ValueError(f"{what} must be {2 * size} hex digits, got {text!r}")
    return bytes.fromhex(cleaned)


_SECONDARY_PERIODS = frozenset({"precise", "leak"})
"""Period types of the agent's precise windows and leak profiles: their series always carry it."""
_HOME_SERIES = frozenset({("calls", "precise")})
"""Sample types that only exist under one of those period types keep their bare name."""


def _secondary(record: ProfileRecord) -> bool:
    period = record.period_type.type
    return period in _SECONDARY_PERIODS and (record.sample_type.type, period) not in _HOME_SERIES


def name_series(records: Iterable[ProfileRecord]) -> Tuple[ProfileRecord, ...]:
    """The records, each with the name of the series it belongs to as its sample type.

    A series is a sample type *and* a period type: the stack sampler's ``wall`` (period type
    ``wall``) and a precise window's exact ``wall`` (period type ``precise``) measure different
    things and must never be added up. The agent's own secondary series are always named
    ``TYPE:PERIOD``: a precise window's ``wall:precise`` and ``cpu:precise`` (its ``calls`` keep
    their name) and the leak detector's ``inuse_space:leak``, whatever else the files hold (a
    short ``--precise`` run has no sampler samples at all). Of the other period types, a sample
    type that comes with one keeps its name; one that comes with several keeps it for the period
    type of the same name (the sampler's) and is named ``TYPE:PERIOD`` for the others.
    """
    everything = tuple(records)
    periods: Dict[str, Set[str]] = {}
    for record in everything:
        if not _secondary(record):
            periods.setdefault(record.sample_type.type, set()).add(record.period_type.type)
    named = []
    for record in everything:
        type_name, period = record.sample_type.type, record.period_type.type
        if not _secondary(record) and (len(periods[type_name]) == 1 or period == type_name):
            named.append(record)
        else:
            series = ValueType(f"{type_name}:{period or 'none'}", record.sample_type.unit)
            named.append(replace(record, sample_type=series))
    return tuple(named)


def sample_types(records: Iterable[ProfileRecord]) -> Tuple[ValueType, ...]:
    """The distinct sample types present, sorted by type then unit."""
    return tuple(sorted({r.sample_type for r in records}, key=lambda t: (t.type, t.unit)))


def filter_samples(
    records: Iterable[ProfileRecord], keep: Callable[[DecodedSample], bool]
) -> Tuple[ProfileRecord, ...]:
    """Keep the samples ``keep`` accepts; records left with no samples are dropped."""
    out = []
    for record in records:
        kept = tuple(s for s in record.samples if keep(s))
        if kept:
            out.append(
                record if len(kept) == len(record.samples) else replace(record, samples=kept)
            )
    return tuple(out)


def by_sample_type(
    records: Iterable[ProfileRecord], type_name: str, unit: Optional[str] = None
) -> Tuple[ProfileRecord, ...]:
    """Profiles of one sample type (``cpu``, ``wall``, ``alloc_space``...), optionally one unit."""
    return tuple(
        r
        for r in records
        if r.sample_type.type == type_name and (unit is None or r.sample_type.unit == unit)
    )


def by_resource(
    records: Iterable[ProfileRecord], key: str, value: str
) -> Tuple[ProfileRecord, ...]:
    """Profiles whose resource has ``key`` with this value (compared as text)."""
    return tuple(
        r for r in records if key in r.resource and attribute_text(r.resource[key]) == value
    )


def by_sample_attribute(
    records: Iterable[ProfileRecord], key: str, value: str
) -> Tuple[ProfileRecord, ...]:
    """Samples whose attribute ``key`` has this value (compared as text)."""
    return filter_samples(
        records, lambda s: key in s.attributes and attribute_text(s.attributes[key]) == value
    )


def _as_id(value: Union[str, bytes], size: int, what: str) -> bytes:
    return parse_hex_id(value, size, what) if isinstance(value, str) else bytes(value)


def by_trace_id(
    records: Iterable[ProfileRecord], trace_id: Union[str, bytes]
) -> Tuple[ProfileRecord, ...]:
    """Samples linked to one trace; ``trace_id`` as 16 bytes or 32 hex digits."""
    wanted = _as_id(trace_id, TRACE_ID_BYTES, "trace id")
    return filter_samples(records, lambda s: s.trace_id == wanted)


def by_span_id(
    records: Iterable[ProfileRecord], span_id: Union[str, bytes]
) -> Tuple[ProfileRecord, ...]:
    """Samples linked to one span; ``span_id`` as 8 bytes or 16 hex digits."""
    wanted = _as_id(span_id, SPAN_ID_BYTES, "span id")
    return filter_samples(records, lambda s: s.span_id == wanted)


def _clip(sample: DecodedSample, start: int, end: int) -> Optional[DecodedSample]:
    stamps = sample.timestamps_unix_nano
    keep = [i for i, t in enumerate(stamps) if start <= t < end]
    if len(keep) == len(stamps):
        return sample
    if not keep:
        return None
    values = tuple(sample.values[i] for i in keep) if sample.values else ()
    return replace(
        sample,
        value=sum(values) if values else len(keep),
        values=values,
        timestamps_unix_nano=tuple(stamps[i] for i in keep),
    )


def by_time_range(
    records: Iterable[ProfileRecord],
    start_unix_nano: Optional[int] = None,
    end_unix_nano: Optional[int] = None,
) -> Tuple[ProfileRecord, ...]:
    """Keep what happened in ``[start, end)``.

    Samples with timestamps are clipped to the events inside the range; samples without them
    are kept whole when their profile's window overlaps the range.
    """
    start = 0 if start_unix_nano is None else start_unix_nano
    end = 2**64 if end_unix_nano is None else end_unix_nano
    out = []
    for record in records:
        window_end = record.start_unix_nano + max(record.duration_nano, 1)
        overlaps = record.start_unix_nano < end and window_end > start
        samples = []
        for sample in record.samples:
            if sample.timestamps_unix_nano:
                clipped = _clip(sample, start, end)
                if clipped is not None:
                    samples.append(clipped)
            elif overlaps:
                samples.append(sample)
        if samples:
            out.append(replace(record, samples=tuple(samples)))
    return tuple(out)
