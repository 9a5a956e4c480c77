"""Release-to-release comparison: each function's share of one sample type in base and new.

A share is a function's value divided by its side's total, so two runs of different lengths
compare fairly. The regression gate reads *self* shares (the time spent in the function's own
code): a total share moves with every callee, and the root's is always 100%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from otelprof.model import ValueType
from otelprof.records import ProfileRecord, by_sample_type
from otelprof.top import FunctionRow, function_cell
from otelprof.units import format_value
from otelprof.viewer.dataset import function_key
from otelprof.viewer.selection import sample_stack

__all__ = ["DiffTable", "FunctionChange", "compute_diff", "format_diff", "regressions"]

_FunctionId = Tuple[str, str]


@dataclass(frozen=True)
class FunctionChange:
    """One function's self and total value on each side (name and file identify it)."""

    name: str
    filename: str
    line: int
    base_self: int
    new_self: int
    base_total: int
    new_total: int


@dataclass(frozen=True)
class DiffTable:
    """Every function of either side, biggest change of self share first."""

    sample_type: ValueType
    base_total: int
    new_total: int
    rows: Tuple[FunctionChange, ...]

    def self_change_points(self, row: FunctionChange) -> float:
        """New self share minus base self share, in percentage points."""
        return _points(row.new_self, self.new_total) - _points(row.base_self, self.base_total)

    def total_change_points(self, row: FunctionChange) -> float:
        return _points(row.new_total, self.new_total) - _points(row.base_total, self.base_total)


def _points(value: int, total: int) -> float:
    return 100.0 * value / total if total > 0 else 0.0


def _aggregate(
    records: Sequence[ProfileRecord], type_name: str
) -> Tuple[int, Dict[_FunctionId, List[int]], Dict[_FunctionId, int]]:
    """Grand total, ``[self, total]`` per function, and each function's line."""
    grand = 0
    values: Dict[_FunctionId, List[int]] = {}
    lines: Dict[_FunctionId, int] = {}
    for record in by_sample_type(records, type_name):
        for sample in record.samples:
            stack = sample_stack(sample)
            grand += sample.value
            seen = set()
            for depth, frame in enumerate(stack):
                name, filename, _ = function_key(frame, keep_lines=False)
                key = (name, filename)
                entry = values.setdefault(key, [0, 0])
                lines.setdefault(key, frame.start_line or frame.line)
                if depth == 0:
                    entry[0] += sample.value
                if key not in seen:  # recursion: a function counts once per sample
                    seen.add(key)
                    entry[1] += sample.value
    return grand, values, lines


def compute_diff(
    base: Sequence[ProfileRecord], new: Sequence[ProfileRecord], type_name: str
) -> DiffTable:
    """Compare the ``type_name`` samples of two record sets."""
    base_grand, base_values, base_lines = _aggregate(base, type_name)
    new_grand, new_values, new_lines = _aggregate(new, type_name)
    rows = []
    for key in set(base_values) | set(new_values):
        old = base_values.get(key, [0, 0])
        now = new_values.get(key, [0, 0])
        line = new_lines.get(key) or base_lines.get(key, 0)
        rows.append(FunctionChange(key[0], key[1], line, old[0], now[0], old[1], now[1]))
    units = {r.sample_type.unit for r in (*base, *new) if r.sample_type.type == type_name}
    sample_type = ValueType(type_name, ", ".join(sorted(units)))
    table = DiffTable(sample_type, base_grand, new_grand, ())

    def order(row: FunctionChange) -> Tuple[float, float, str, str]:
        change = table.self_change_points(row)
        # Rounded, so that a growth and the shrink that mirrors it tie, and growth comes first.
        return (-round(abs(change), 6), -change, row.name, row.filename)

    return DiffTable(sample_type, base_grand, new_grand, tuple(sorted(rows, key=order)))


def regressions(table: DiffTable, threshold_points: float) -> Tuple[FunctionChange, ...]:
    """Functions whose self share grew by more than ``threshold_points`` percentage points."""
    return tuple(row for row in table.rows if table.self_change_points(row) > threshold_points)


def _signed(points: float) -> str:
    return f"{points:+.1f}"


def format_diff(
    table: DiffTable, base_label: str, new_label: str, limit: int = 20, width: int = 100
) -> List[str]:
    """Header and one line per function, biggest self-share change first (``limit`` 0: all)."""
    unit = table.sample_type.unit
    lines = [
        f"type: {table.sample_type.type}; base {base_label!r}: "
        f"{format_value(table.base_total, unit)}; new {new_label!r}: "
        f"{format_value(table.new_total, unit)}; shares in % of each side's total",
        "",
        f"{' self share (%) ':-^20}    {' total share (%) ':-^20}",
        f"{'change':>6} {'base':>6} {'new':>6}    {'change':>6} {'base':>6} {'new':>6}  "
        "function  file:line",
    ]
    rows = table.rows if limit <= 0 else table.rows[:limit]
    room = width - 46
    for row in rows:
        cells = (
            f"{_signed(table.self_change_points(row)):>6} "
            f"{_points(row.base_self, table.base_total):>6.1f} "
            f"{_points(row.new_self, table.new_total):>6.1f}    "
            f"{_signed(table.total_change_points(row)):>6} "
            f"{_points(row.base_total, table.base_total):>6.1f} "
            f"{_points(row.new_total, table.new_total):>6.1f}  "
        )
        cell = function_cell(FunctionRow(row.name, row.filename, row.line, (), ()), room)
        lines.append(cells + cell)
    return lines
