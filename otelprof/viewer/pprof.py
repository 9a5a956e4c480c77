"""Records as a gzip-compressed pprof ``Profile`` (github.com/google/pprof ``proto/profile.proto``).

One profile carries every chosen sample type as a value column; samples with the same stack and
labels share a row. Locations are line-level (one per function and line) under a single mapping
marked as already symbolized, so ``go tool pprof`` never tries to look up addresses.
"""

from __future__ import annotations

import gzip
from typing import Dict, List, Sequence, Tuple

from otelprof.model import Frame, ValueType
from otelprof.records import (
    ENDPOINT_ATTRIBUTE,
    THREAD_NAME_ATTRIBUTE,
    ProfileRecord,
    attribute_text,
)
from otelprof.viewer._protobuf import MessageWriter
from otelprof.viewer.selection import sample_stack

__all__ = ["LABEL_KEYS", "encode_profile", "pprof_bytes"]

LABEL_KEYS = (THREAD_NAME_ATTRIBUTE, ENDPOINT_ATTRIBUTE)
"""Sample attributes kept as pprof string labels (low cardinality, like the OTLP attributes)."""

# profile.proto field numbers.
_P_SAMPLE_TYPE, _P_SAMPLE, _P_MAPPING, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 3, 4, 5, 6
_P_TIME, _P_DURATION, _P_PERIOD_TYPE, _P_PERIOD, _P_DEFAULT_TYPE = 9, 10, 11, 12, 14
_VT_TYPE, _VT_UNIT = 1, 2
_S_LOCATION_ID, _S_VALUE, _S_LABEL = 1, 2, 3
_L_KEY, _L_STR = 1, 2
_M_ID, _M_FILENAME, _M_HAS_FUNCTIONS, _M_HAS_FILENAMES, _M_HAS_LINES = 1, 5, 7, 8, 9
_LOC_ID, _LOC_MAPPING, _LOC_LINE = 1, 2, 4
_LINE_FUNCTION, _LINE_LINE = 1, 2
_F_ID, _F_NAME, _F_SYSTEM_NAME, _F_FILENAME, _F_START_LINE = 1, 2, 3, 4, 5

_MAPPING_ID = 1


class _Strings:
    def __init__(self) -> None:
        self.table: List[str] = [""]  # pprof, like OTLP, requires "" at index 0
        self._index: Dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.table)
            self.table.append(text)
        return found


def _value_type(strings: _Strings, value_type: ValueType) -> MessageWriter:
    return (
        MessageWriter()
        .integer(_VT_TYPE, strings(value_type.type))
        .integer(_VT_UNIT, strings(value_type.unit))
    )


def encode_profile(records: Sequence[ProfileRecord], types: Sequence[ValueType]) -> bytes:
    """The uncompressed ``Profile`` message for the samples of ``types`` (in that column order)."""
    strings = _Strings()
    columns = {t: i for i, t in enumerate(types)}
    functions: Dict[Tuple[str, str, int], int] = {}
    locations: Dict[Tuple[int, int], int] = {}
    rows: Dict[Tuple[Tuple[int, ...], Tuple[Tuple[str, str], ...]], List[int]] = {}
    periods: Dict[ValueType, Tuple[ValueType, int]] = {}

    def location(frame: Frame) -> int:
        function_id = functions.setdefault(
            (frame.function, frame.filename, frame.start_line), len(functions) + 1
        )
        return locations.setdefault((function_id, frame.line), len(locations) + 1)

    chosen = [r for r in records if r.sample_type in columns]
    for record in chosen:
        column = columns[record.sample_type]
        periods.setdefault(record.sample_type, (record.period_type, record.period))
        for sample in record.samples:
            stack = tuple(location(f) for f in sample_stack(sample))
            texts = ((key, attribute_text(sample.attributes.get(key, ""))) for key in LABEL_KEYS)
            labels = tuple((key, text) for key, text in texts if text)
            rows.setdefault((stack, labels), [0] * len(types))[column] += sample.value

    profile = MessageWriter()
    for value_type in types:
        profile.message(_P_SAMPLE_TYPE, _value_type(strings, value_type))
    for (stack, labels), values in rows.items():
        sample_message = MessageWriter().packed(_S_LOCATION_ID, stack).packed(_S_VALUE, values)
        for key, text in labels:
            label = MessageWriter().integer(_L_KEY, strings(key)).integer(_L_STR, strings(text))
            sample_message.message(_S_LABEL, label)
        profile.message(_P_SAMPLE, sample_message)
    profile.message(
        _P_MAPPING,
        MessageWriter()
        .integer(_M_ID, _MAPPING_ID)
        .integer(_M_FILENAME, strings("python"))
        .integer(_M_HAS_FUNCTIONS, 1)
        .integer(_M_HAS_FILENAMES, 1)
        .integer(_M_HAS_LINES, 1),
    )
    for (function_id, line), location_id in locations.items():
        line_message = (
            MessageWriter().integer(_LINE_FUNCTION, function_id).integer(_LINE_LINE, line)
        )
        profile.message(
            _P_LOCATION,
            MessageWriter()
            .integer(_LOC_ID, location_id)
            .integer(_LOC_MAPPING, _MAPPING_ID)
            .message(_LOC_LINE, line_message),
        )
    for (name, filename, start_line), function_id in functions.items():
        name_index = strings(name)
        profile.message(
            _P_FUNCTION,
            MessageWriter()
            .integer(_F_ID, function_id)
            .integer(_F_NAME, name_index)
            .integer(_F_SYSTEM_NAME, name_index)
            .integer(_F_FILENAME, strings(filename))
            .integer(_F_START_LINE, start_line),
        )
    if chosen:
        start = min(r.start_unix_nano for r in chosen)
        end = max(r.start_unix_nano + r.duration_nano for r in chosen)
        profile.integer(_P_TIME, start).integer(_P_DURATION, end - start)
    if types and types[0] in periods:
        period_type, period = periods[types[0]]
        profile.message(_P_PERIOD_TYPE, _value_type(strings, period_type))
        profile.integer(_P_PERIOD, period)
    if types:
        profile.integer(_P_DEFAULT_TYPE, strings(types[0].type))
    # Strings are complete only now; the table may come after the fields that index it.
    for text in strings.table:
        profile.string(_P_STRINGS, text)
    return profile.to_bytes()


def pprof_bytes(records: Sequence[ProfileRecord], types: Sequence[ValueType]) -> bytes:
    """gzip-compressed, as ``go tool pprof`` and pprof-reading backends expect."""
    return gzip.compress(encode_profile(records, types), mtime=0)
