"""Records as a speedscope file (https://www.speedscope.app/file-format-schema.json).

One ``sampled`` profile per sample type; each distinct stack appears once (root first, as the
format wants) with its summed value as the weight. The frame table is shared by all profiles.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from otelprof.model import Frame, ValueType
from otelprof.records import ProfileRecord
from otelprof.version import __version__
from otelprof.viewer.selection import sample_stack

__all__ = ["SCHEMA_URL", "speedscope_document"]

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
_UNITS = frozenset({"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"})


def _frame_entry(frame: Frame) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"name": frame.function or "[unknown]"}
    if frame.filename:
        entry["file"] = frame.filename
    line = frame.start_line or frame.line
    if line:
        entry["line"] = line
    return entry


def speedscope_document(
    records: Sequence[ProfileRecord], types: Sequence[ValueType], name: str
) -> Dict[str, Any]:
    """The file as a JSON-ready dict: profiles in the order of ``types``."""
    frames: Dict[Tuple[str, str, int], int] = {}
    frame_entries: List[Dict[str, Any]] = []

    def frame_index(frame: Frame) -> int:
        key = (frame.function, frame.filename, frame.start_line)
        index = frames.get(key)
        if index is None:
            index = frames[key] = len(frame_entries)
            frame_entries.append(_frame_entry(frame))
        return index

    profiles = []
    for value_type in types:
        weights: Dict[Tuple[int, ...], int] = {}
        for record in records:
            if record.sample_type != value_type:
                continue
            for sample in record.samples:
                stack = tuple(frame_index(f) for f in reversed(sample_stack(sample)))
                weights[stack] = weights.get(stack, 0) + sample.value
        total = sum(weights.values())
        profiles.append(
            {
                "type": "sampled",
                "name": f"{value_type.type} ({value_type.unit})",
                "unit": value_type.unit if value_type.unit in _UNITS else "none",
                "startValue": 0,
                "endValue": total,
                "samples": [list(stack) for stack in weights],
                "weights": list(weights.values()),
            }
        )
    return {
        "$schema": SCHEMA_URL,
        "name": name,
        "exporter": f"otelprof {__version__}",
        "activeProfileIndex": 0,
        "shared": {"frames": frame_entries},
        "profiles": profiles,
    }
