"""The flame graph data model: records flattened into the columnar document a report page reads.

Samples are aggregated by (sample type, stack, service, thread, endpoint, trace, second, side)
so the page can filter by any of them and rebuild the tree in the browser. Stacks are stored
root first as indices into a function table; a function is its name, file and definition line
(``keep_lines``) or just its name and file, which survives edits above it between releases.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from otelprof.model import Frame, ValueType
from otelprof.records import (
    ENDPOINT_ATTRIBUTE,
    THREAD_NAME_ATTRIBUTE,
    ProfileRecord,
    attribute_text,
)
from otelprof.viewer.selection import sample_stack

__all__ = ["DOCUMENT_FORMAT", "FunctionKey", "Side", "build_document", "function_key"]

DOCUMENT_FORMAT = 1
FunctionKey = Tuple[str, str, int]
Side = Tuple[str, Sequence[ProfileRecord]]
"""A label (``base``, ``1.5``, a path) and its records."""

_NANOS_PER_SECOND = 10**9
_COLUMNS = ("type", "stack", "value", "service", "thread", "endpoint", "trace", "second", "side")


def function_key(frame: Frame, keep_lines: bool) -> FunctionKey:
    """Identity of a frame's function; without lines, name and file alone."""
    return (frame.function, frame.filename, frame.start_line if keep_lines else 0)


class _Table:
    """Look up or append: values to small dense indices (``""`` first where asked)."""

    def __init__(self, *initial: Any) -> None:
        self.items: List[Any] = list(initial)
        self._index: Dict[Any, int] = {item: i for i, item in enumerate(initial)}

    def index(self, item: Any) -> int:
        found = self._index.get(item)
        if found is None:
            found = self._index[item] = len(self.items)
            self.items.append(item)
        return found


class _Builder:
    def __init__(self, keep_lines: bool) -> None:
        self.keep_lines = keep_lines
        self.types = _Table()
        self.functions = _Table()
        self.function_lines: List[int] = []
        self.stacks = _Table()
        self.services = _Table("")
        self.threads = _Table("")
        self.endpoints = _Table("")
        self.traces = _Table("")
        self.cells: Dict[Tuple[int, ...], int] = {}
        self.span_seconds = 0

    def function(self, frame: Frame) -> int:
        index = self.functions.index(function_key(frame, self.keep_lines))
        if index == len(self.function_lines):
            # The definition line when known, else the first line seen executing in it.
            self.function_lines.append(frame.start_line or frame.line)
        return index

    def add(self, side: int, records: Sequence[ProfileRecord]) -> None:
        if not records:
            return
        t0 = min(r.start_unix_nano for r in records)
        for record in records:
            type_index = self.types.index(record.sample_type)
            service = self.services.index(attribute_text(record.resource.get("service.name", "")))
            start_second = (record.start_unix_nano - t0) // _NANOS_PER_SECOND
            for sample in record.samples:
                frames = sample_stack(sample)
                stack = self.stacks.index(tuple(self.function(f) for f in reversed(frames)))
                attrs = sample.attributes
                head = (
                    type_index,
                    stack,
                    service,
                    self.threads.index(attribute_text(attrs.get(THREAD_NAME_ATTRIBUTE, ""))),
                    self.endpoints.index(attribute_text(attrs.get(ENDPOINT_ATTRIBUTE, ""))),
                    self.traces.index(sample.trace_id.hex() if sample.trace_id else ""),
                )
                if sample.timestamps_unix_nano:
                    values = sample.values or (1,) * len(sample.timestamps_unix_nano)
                    for stamp, value in zip(sample.timestamps_unix_nano, values):
                        self.cell((*head, max(stamp - t0, 0) // _NANOS_PER_SECOND, side), value)
                else:
                    self.cell((*head, start_second, side), sample.value)

    def cell(self, key: Tuple[int, ...], value: int) -> None:
        self.cells[key] = self.cells.get(key, 0) + value
        self.span_seconds = max(self.span_seconds, key[-2])


def _type_order(types: Sequence[ValueType], default: Optional[str]) -> int:
    names = [t.type for t in types]
    for wanted in (default, "cpu", "wall"):
        if wanted in names:
            return names.index(wanted)
    return 0


def build_document(
    sides: Sequence[Side],
    *,
    title: str,
    subtitle: str,
    default_type: Optional[str] = None,
    keep_lines: bool = True,
) -> Dict[str, Any]:
    """The page's data: one side for ``view``, two (base, new) for ``diff``."""
    if len(sides) not in (1, 2):
        raise ValueError("a report has one side (view) or two (diff)")
    builder = _Builder(keep_lines)
    diff = len(sides) == 2
    for index, (_, records) in enumerate(sides):
        # A view's samples are all "new": the page reads side 1 as the value it draws.
        builder.add(index if diff else 1, records)
    columns: Dict[str, List[int]] = {name: [] for name in _COLUMNS}
    for key, value in sorted(builder.cells.items()):
        for name, part in zip(_COLUMNS, (*key[:2], value, *key[2:])):
            columns[name].append(part)
    if not diff:
        del columns["side"]
    types: List[ValueType] = builder.types.items
    return {
        "format": DOCUMENT_FORMAT,
        "mode": "diff" if diff else "view",
        "title": title,
        "subtitle": subtitle,
        "sides": [label for label, _ in sides],
        "types": [{"name": t.type, "unit": t.unit} for t in types],
        "defaultType": _type_order(types, default_type),
        "functions": [
            [name, filename, line]
            for (name, filename, _), line in zip(builder.functions.items, builder.function_lines)
        ],
        "stacks": [list(stack) for stack in builder.stacks.items],
        "services": builder.services.items,
        "threads": builder.threads.items,
        "endpoints": builder.endpoints.items,
        "traces": builder.traces.items,
        "spanSeconds": builder.span_seconds,
        "samples": columns,
    }
