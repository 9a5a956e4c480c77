"""Records as collapsed stacks, the input of flamegraph.pl and most flame graph tools.

One line per distinct stack: frames root first joined by ``;``, a space, the summed value.
A frame reads ``function (file:line)`` with the definition line when the data has it.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

from otelprof.model import Frame, ValueType
from otelprof.records import ProfileRecord
from otelprof.viewer.selection import sample_stack

__all__ = ["collapsed_lines", "frame_text"]


def frame_text(frame: Frame) -> str:
    """``name (file:line)``; ``;`` and line breaks, which would split the line, become spaces."""
    where = frame.filename
    line = frame.start_line or frame.line
    if where and line:
        where = f"{where}:{line}"
    text = f"{frame.function or '[unknown]'} ({where})" if where else frame.function or "[unknown]"
    return text.replace(";", " ").replace("\n", " ").replace("\r", " ")


def collapsed_lines(records: Sequence[ProfileRecord], value_type: ValueType) -> List[str]:
    """Lines sorted by stack text, as flamegraph.pl's own stackcollapse tools write them."""
    totals: Dict[str, int] = {}
    for record in records:
        if record.sample_type != value_type:
            continue
        for sample in record.samples:
            key = ";".join(frame_text(f) for f in reversed(sample_stack(sample)))
            totals[key] = totals.get(key, 0) + sample.value
    return [f"{stack} {value}" for stack, value in sorted(totals.items()) if value > 0]
