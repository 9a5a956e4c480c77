"""``otelprof top``: the hottest functions in OTLP profile files, as a plain text table."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from otelprof.model import Frame, ValueType
from otelprof.reader import load_profiles
from otelprof.records import (
    ENDPOINT_ATTRIBUTE,
    THREAD_NAME_ATTRIBUTE,
    ProfileRecord,
    by_resource,
    by_sample_attribute,
    by_sample_type,
    by_span_id,
    by_trace_id,
    name_series,
    sample_types,
)
from otelprof.units import format_percent, format_value
from otelprof.viewer.selection import add_filter_arguments

__all__ = [
    "FunctionRow",
    "TopError",
    "TopTable",
    "compute_top",
    "format_top",
    "main_top",
]

DEFAULT_TYPES = ("cpu", "wall")
DEFAULT_LIMIT = 20
TABLE_WIDTH = 100
MAX_TYPES = 2  # two blocks of columns still leave room for the function on a 100-column line
NO_STACK = Frame("[no stack]", "", 0, 0, "synthetic")
_VALUE_WIDTH, _PCT_WIDTH = 7, 5
_BLOCK_WIDTH = 2 * (_VALUE_WIDTH + 1 + _PCT_WIDTH) + 2

FunctionKey = Tuple[str, str, int]
"""A function is its name, file and definition line (``Function.start_line``)."""


class TopError(ValueError):
    """The table cannot be made as asked (unknown sample type, bad sort key)."""


@dataclass(frozen=True)
class FunctionRow:
    """One function's self and total value for each type of the table, in the table's order."""

    name: str
    filename: str
    line: int
    self_values: Tuple[int, ...]
    total_values: Tuple[int, ...]


@dataclass(frozen=True)
class TopTable:
    """Every function seen, with the per-type totals the percentages are taken of."""

    types: Tuple[ValueType, ...]
    totals: Tuple[int, ...]
    rows: Tuple[FunctionRow, ...]

    def sorted_rows(self, sort: str) -> Tuple[FunctionRow, ...]:
        """Biggest first by ``self-TYPE`` or ``total-TYPE``; ties by name, file, line."""
        kind, index = _parse_sort(sort, [t.type for t in self.types])

        def order(row: FunctionRow) -> Tuple[int, str, str, int]:
            values = row.self_values if kind == "self" else row.total_values
            return (-values[index], row.name, row.filename, row.line)

        return tuple(sorted(self.rows, key=order))


def _parse_sort(sort: str, type_names: Sequence[str]) -> Tuple[str, int]:
    kind, _, type_name = sort.partition("-")
    type_name = type_name or type_names[0]
    if kind not in ("self", "total") or type_name not in type_names:
        choices = ", ".join(f"{k}-{t}" for t in type_names for k in ("self", "total"))
        raise TopError(f"cannot sort by {sort!r}; choose one of {choices}")
    return kind, list(type_names).index(type_name)


def _unit_of(records: Sequence[ProfileRecord], type_name: str) -> ValueType:
    units = sorted({r.sample_type.unit for r in records if r.sample_type.type == type_name})
    if len(units) > 1:
        raise TopError(f"sample type {type_name!r} comes in several units: {', '.join(units)}")
    return ValueType(type_name, units[0] if units else "")


def compute_top(records: Sequence[ProfileRecord], type_names: Sequence[str]) -> TopTable:
    """Self (leaf) and total (anywhere on the stack, once per sample) value of every function.

    ``type_names`` name series as :func:`name_series` does (``wall`` is the sampler's when
    precise windows' ``wall:precise`` is there too). A function's line is its definition line;
    when the data has none (``start_line`` 0), the line where the first type's total was highest.
    """
    return _top_of_named(name_series(records), type_names)


def _top_of_named(records: Sequence[ProfileRecord], type_names: Sequence[str]) -> TopTable:
    """:func:`compute_top` of records whose series are named already."""
    selfs: Dict[FunctionKey, List[int]] = {}
    totals: Dict[FunctionKey, List[int]] = {}
    lines: Dict[FunctionKey, Counter[int]] = {}
    grand = [0] * len(type_names)
    width = len(type_names)
    for index, type_name in enumerate(type_names):
        for record in by_sample_type(records, type_name):
            for sample in record.samples:
                stack = sample.stack or (NO_STACK,)
                value = sample.value
                grand[index] += value
                leaf = stack[0]
                selfs.setdefault((leaf.function, leaf.filename, leaf.start_line), [0] * width)[
                    index
                ] += value
                seen = set()
                for frame in stack:
                    key = (frame.function, frame.filename, frame.start_line)
                    if key in seen:  # recursion: a function counts once per sample
                        continue
                    seen.add(key)
                    totals.setdefault(key, [0] * width)[index] += value
                    if index == 0 and not frame.start_line:
                        lines.setdefault(key, Counter())[frame.line] += value
    rows = []
    for key, total in totals.items():
        name, filename, start_line = key
        line = start_line
        if not line and key in lines:
            line = min(lines[key].items(), key=lambda item: (-item[1], item[0]))[0]
        self_values = tuple(selfs.get(key, [0] * width))
        rows.append(FunctionRow(name, filename, line, self_values, tuple(total)))
    types = tuple(_unit_of(records, t) for t in type_names)
    return TopTable(types, tuple(grand), tuple(sorted(rows, key=lambda r: (r.name, r.filename))))


# --- formatting --------------------------------------------------------------------------------


def _short_path(filename: str) -> str:
    # Installed packages are best known by their import path, not by the venv they live in.
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    return filename


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 3, 0)] + "..."


def function_cell(row: FunctionRow, room: int) -> str:
    """``name  path:line`` in ``room`` characters: the path loses its start first, then the name."""
    name = row.name or "[unknown]"
    where = _short_path(row.filename)
    if where and row.line:
        where = f"{where}:{row.line}"
    full = f"{name}  {where}" if where else name
    if len(full) <= room or not where:
        return _clip(full, room)
    base = where.rsplit("/", 1)[-1]
    where_room = room - len(name) - 2
    if where_room >= len(base) + 3:
        return f"{name}  ...{where[len(where) - where_room + 3 :]}"
    name_room = room - 2 - len(base)
    if name_room >= 6:
        return f"{_clip(name, name_room)}  {base}"
    return _clip(full, room)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _iso(nanos: int) -> str:
    moment = datetime.fromtimestamp(nanos // 10**9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cells(own: str, own_pct: str, total: str, total_pct: str) -> str:
    v, p = _VALUE_WIDTH, _PCT_WIDTH
    return f"{own:>{v}} {own_pct:>{p}}  {total:>{v}} {total_pct:>{p}}"


def render_table(table: TopTable, sort: str, limit: int, width: int = TABLE_WIDTH) -> List[str]:
    """The column headers and one line per function (the first ``limit``; 0 means all)."""
    rows = table.sorted_rows(sort)
    if limit > 0:
        rows = rows[:limit]
    groups, heads = [], []
    for value_type in table.types:
        label = f" {value_type.type} "
        groups.append(f"{label:-^{_BLOCK_WIDTH - 2}}")
        heads.append(_cells("self", "%", "total", "%"))
    lines = ["  ".join(groups).rstrip(), "  ".join(heads) + "  function  file:line"]
    room = width - len(heads[0]) * len(heads) - 2 * len(heads)
    for row in rows:
        cells = []
        for i, value_type in enumerate(table.types):
            unit, total = value_type.unit, table.totals[i]
            own, every = row.self_values[i], row.total_values[i]
            cells.append(
                _cells(
                    format_value(own, unit),
                    format_percent(own, total),
                    format_value(every, unit),
                    format_percent(every, total),
                )
            )
        lines.append("  ".join(cells) + "  " + function_cell(row, room))
    return lines


def _choose_types(records: Sequence[ProfileRecord], types: Optional[Sequence[str]]) -> List[str]:
    present = sorted({t.type for t in sample_types(records)})
    if types:
        chosen = list(dict.fromkeys(types))
        if len(chosen) > MAX_TYPES:
            raise TopError(f"at most {MAX_TYPES} sample types fit in one table, got {len(chosen)}")
        missing = [t for t in chosen if t not in present]
        if missing:
            have = ", ".join(present) or "none"
            raise TopError(f"no {missing[0]!r} samples in the files (types present: {have})")
        return chosen
    return [t for t in DEFAULT_TYPES if t in present] or present[:1]


def format_top(
    records: Iterable[ProfileRecord],
    *,
    types: Optional[Sequence[str]] = None,
    sort: Optional[str] = None,
    limit: int = DEFAULT_LIMIT,
    trace_id: Optional[str] = None,
    span_id: Optional[str] = None,
    endpoint: Optional[str] = None,
    thread: Optional[str] = None,
    resource: Sequence[Tuple[str, str]] = (),
    width: int = TABLE_WIDTH,
) -> str:
    """The whole report: a summary header, then the table. Raises :class:`TopError`."""
    # Series are named before any filter, so that a name means the same whatever is kept.
    everything = name_series(records)
    files = len({r.source for r in everything})
    header = [f"otelprof top: {_count(files, 'file')}, {_count(len(everything), 'profile')}"]
    type_names = _choose_types(everything, types)
    if not type_names:
        return "\n".join([*header, "no profiles in the files"]) + "\n"
    sort = sort or ("self-cpu" if "cpu" in type_names else f"self-{type_names[0]}")
    _parse_sort(sort, type_names)
    selected = tuple(r for r in everything if r.sample_type.type in type_names)
    filters = []
    for key, value in resource:
        selected = by_resource(selected, key, value)
        filters.append(f"{key}={value}")
    for label, key, wanted in (
        ("endpoint", ENDPOINT_ATTRIBUTE, endpoint),
        ("thread", THREAD_NAME_ATTRIBUTE, thread),
    ):
        if wanted is not None:
            selected = by_sample_attribute(selected, key, wanted)
            filters.append(f"{label}={wanted!r}")
    if trace_id is not None:
        selected = by_trace_id(selected, trace_id)
        filters.append(f"trace_id={trace_id.lower()}")
    if span_id is not None:
        selected = by_span_id(selected, span_id)
        filters.append(f"span_id={span_id.lower()}")
    services = sorted({str(r.resource.get("service.name", "")) for r in selected} - {""})
    if services:
        header[0] += f", service: {', '.join(services)}"
    if filters:
        header.append(f"filter: {', '.join(filters)}")
    if not selected:
        return "\n".join(_clip(h, width) for h in [*header, "no samples match"]) + "\n"
    start = min(r.start_unix_nano for r in selected)
    end = max(r.start_unix_nano + r.duration_nano for r in selected)
    header.append(f"time: {_iso(start)} .. {_iso(end)}")
    table = _top_of_named(selected, type_names)  # named above, before the filters
    kind, index = _parse_sort(sort, type_names)
    shown = len(table.rows) if limit <= 0 else min(limit, len(table.rows))
    totals = ", ".join(
        f"{t.type} {format_value(total, t.unit)}" for t, total in zip(table.types, table.totals)
    )
    header.append(
        f"total: {totals}; sorted by {kind} {type_names[index]}; "
        f"{shown} of {_count(len(table.rows), 'function')}"
    )
    body = render_table(table, sort, limit, width)
    return "\n".join([*(_clip(h, width) for h in header), "", *body]) + "\n"


# --- command line ------------------------------------------------------------------------------


def _limit_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprof top",
        description="Show the hottest functions (self and total, CPU and wall) in OTLP profile "
        "files: .otlp.pb files, the collector's JSON output, or directories of them.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="files or directories (searched recursively)"
    )
    parser.add_argument(
        "--type",
        dest="types",
        action="append",
        metavar="TYPE",
        help="sample type: cpu, wall, alloc_space, calls, wall:precise (a precise window's), ... "
        "(repeat for two; default: cpu and wall)",
    )
    parser.add_argument(
        "--sort",
        metavar="KEY",
        help="self-TYPE or total-TYPE, biggest first (default: self-cpu), e.g. total-wall",
    )
    parser.add_argument(
        "--limit",
        type=_limit_arg,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show the first N functions, 0 for all (default: {DEFAULT_LIMIT})",
    )
    add_filter_arguments(parser)  # --resource, --thread, --endpoint, --trace-id, --span-id
    return parser


def main_top(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``otelprof top``; 0 on success, 2 for bad arguments or no readable file."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the reason already
        return exc.code if isinstance(exc.code, int) else 2
    result = load_profiles(args.paths)
    level = "warning" if result.files else "error"
    for error in result.errors:
        print(f"otelprof top: {level}: {error}", file=sys.stderr)
    if not result.files:
        print("otelprof top: error: no readable profile files", file=sys.stderr)
        return 2
    try:
        report = format_top(
            result.records,
            types=args.types,
            sort=args.sort,
            limit=args.limit,
            trace_id=args.trace_id,
            span_id=args.span_id,
            endpoint=args.endpoint,
            thread=args.thread,
            resource=args.resource,
        )
    except TopError as exc:
        print(f"otelprof top: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(report)
    return 0
