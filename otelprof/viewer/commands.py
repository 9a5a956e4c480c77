"""The ``otelprof view``, ``otelprof diff`` and ``otelprof export`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from otelprof.model import ValueType
from otelprof.records import ProfileRecord, by_resource
from otelprof.viewer.selection import (
    SelectionError,
    add_filter_arguments,
    apply_filters,
    choose_type,
    key_value,
    load_or_report,
    type_names,
)

__all__ = ["main_diff", "main_export", "main_view"]

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2
EXPORT_FORMATS = ("pprof", "speedscope", "collapsed")

_DIFF_EPILOG = """\
BASE and NEW are files or directories of OTLP profiles. To compare two selections inside one
set of files instead, give the files and select each side by resource attribute:

  otelprof diff v1/ v2/ --type cpu --fail-above 5 -o diff.html
  otelprof diff profiles.jsonl --base-select service.version=1.4 --new-select service.version=1.5

Shares are percentages of each side's total for the type. --fail-above PCT exits with status 1
when any function's SELF share (time in its own code, callees excluded) grew by more than PCT
percentage points; status 0 otherwise, 2 on errors.
"""


def _parse(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]
) -> Union[argparse.Namespace, int]:
    """The arguments, or the exit status argparse chose (0 after --help, 2 for bad usage)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the reason already
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


def _fail(command: str, message: str) -> int:
    print(f"otelprof {command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _value_types(records: Sequence[ProfileRecord], names: Sequence[str]) -> List[ValueType]:
    chosen = []
    for name in names:
        units = sorted({r.sample_type.unit for r in records if r.sample_type.type == name})
        if len(units) > 1:
            raise SelectionError(f"sample type {name!r} comes in several units: {', '.join(units)}")
        chosen.append(ValueType(name, units[0]))
    return chosen


def _services(records: Sequence[ProfileRecord]) -> str:
    names = sorted({str(r.resource.get("service.name", "")) for r in records} - {""})
    return ", ".join(names) or "profiles"


def _describe(records: Sequence[ProfileRecord]) -> str:
    """``3 files, 12 profiles, service checkout, 2026-01-02 10:00:00 .. 10:05:00 UTC``."""
    files = len({r.source for r in records})
    text = f"{files} file{'s' * (files != 1)}, {len(records)} profiles"
    services = _services(records)
    if services != "profiles":
        text += f", service {services}"
    if records:
        start = min(r.start_unix_nano for r in records)
        end = max(r.start_unix_nano + r.duration_nano for r in records)
        first, last = (datetime.fromtimestamp(t // 10**9, tz=timezone.utc) for t in (start, end))
        text += f", {first:%Y-%m-%d %H:%M:%S} .. {last:%H:%M:%S} UTC"
    return text


class OutputError(Exception):
    """The output file could not be written; the message names it and says why."""


def _write_output(path: str, data: Union[str, bytes]) -> None:
    if path == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    try:
        if isinstance(data, bytes):
            Path(path).write_bytes(data)
        else:
            Path(path).write_text(data, encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


# --- view --------------------------------------------------------------------------------------


def _view_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprof view",
        description="Write an interactive flame graph of OTLP profile files as one HTML file "
        "that opens offline: click to zoom, search, switch profile type, filter by service, "
        "thread, endpoint, trace id and time.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument(
        "-o", "--output", default="profile.html", metavar="FILE", help="default: profile.html"
    )
    parser.add_argument("--type", metavar="TYPE", help="profile type shown first (default: cpu)")
    parser.add_argument("--title", help="page title (default: the services and files)")
    add_filter_arguments(parser)
    return parser


def main_view(argv: Optional[Sequence[str]] = None) -> int:
    from otelprof.viewer.dataset import build_document
    from otelprof.viewer.html import AssetMissing, render_page

    args = _parse(_view_parser(), argv)
    if isinstance(args, int):
        return args
    records = load_or_report("view", args.paths)
    if records is None:
        return EXIT_ERROR
    selected = apply_filters(records, args)
    try:
        default_type = choose_type(selected, args.type)
    except SelectionError as exc:
        return _fail("view", str(exc))
    summary = _describe(selected)
    document = build_document(
        [("profile", selected)],
        title=args.title or f"otelprof: {_services(selected)}",
        subtitle=summary,
        default_type=default_type,
    )
    try:
        page = render_page(document)
    except AssetMissing as exc:
        return _fail("view", str(exc))
    try:
        _write_output(args.output, page)
    except OutputError as exc:
        return _fail("view", str(exc))
    print(f"otelprof view: wrote {args.output} ({summary})", file=sys.stderr)
    return EXIT_OK


# --- diff --------------------------------------------------------------------------------------


def _diff_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprof diff",
        description="Compare two profile sets: a table of the functions whose share changed "
        "most, a differential flame graph (-o), and a regression gate (--fail-above).",
        epilog=_DIFF_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="BASE NEW, or the files to select from"
    )
    parser.add_argument("--type", metavar="TYPE", help="sample type to compare (default: cpu)")
    parser.add_argument(
        "--base-select",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="base = profiles with this resource attribute (repeatable: all must match)",
    )
    parser.add_argument(
        "--new-select",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="new = profiles with this resource attribute (repeatable: all must match)",
    )
    parser.add_argument(
        "--fail-above",
        type=float,
        metavar="PCT",
        help="exit 1 if any function's self share grew by more than PCT percentage points",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="also write the diff flame graph")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="table rows, 0 = all")
    add_filter_arguments(parser)
    return parser


def _select(
    records: Sequence[ProfileRecord], pairs: Sequence[Tuple[str, str]]
) -> Tuple[ProfileRecord, ...]:
    selected = tuple(records)
    for key, value in pairs:
        selected = by_resource(selected, key, value)
    return selected


def _diff_sides(
    args: argparse.Namespace,
) -> Tuple[
    Optional[Tuple[str, Tuple[ProfileRecord, ...]]],
    Optional[Tuple[str, Tuple[ProfileRecord, ...]]],
    str,
]:
    """(base, new, error): each side a label and its filtered records."""
    if args.base_select or args.new_select:
        if not (args.base_select and args.new_select):
            return None, None, "give both --base-select and --new-select"
        records = load_or_report("diff", args.paths)
        if records is None:
            return None, None, ""
        records = apply_filters(records, args)
        sides = []
        for pairs in (args.base_select, args.new_select):
            label = ",".join(f"{k}={v}" for k, v in pairs)
            sides.append((label, _select(records, pairs)))
        return sides[0], sides[1], ""
    if len(args.paths) != 2:
        return None, None, "give BASE and NEW, or --base-select and --new-select"
    loaded = []
    for path in args.paths:
        records = load_or_report("diff", [path])
        if records is None:
            return None, None, ""
        loaded.append((path, apply_filters(records, args)))
    return loaded[0], loaded[1], ""


def main_diff(argv: Optional[Sequence[str]] = None) -> int:
    """0: no regression beyond --fail-above (or no gate); 1: regression; 2: errors."""
    from otelprof.viewer.diff import compute_diff, format_diff, regressions

    args = _parse(_diff_parser(), argv)
    if isinstance(args, int):
        return args
    if args.fail_above is not None and not args.fail_above >= 0:  # also refuses nan
        return _fail("diff", f"--fail-above must be 0 or more points, got {args.fail_above:g}")
    base, new, problem = _diff_sides(args)
    if base is None or new is None:
        return _fail("diff", problem) if problem else EXIT_ERROR
    for (label, records), name in ((base, "base"), (new, "new")):
        if not records:
            return _fail("diff", f"no profiles selected for the {name} side ({label})")
    try:
        type_name = choose_type(new[1], args.type)
        choose_type(base[1], type_name)
    except SelectionError as exc:
        return _fail("diff", str(exc))
    table = compute_diff(base[1], new[1], type_name)
    print(f"otelprof diff: base {_describe(base[1])}; new {_describe(new[1])}")
    print("\n".join(format_diff(table, base[0], new[0], limit=args.limit)))
    if args.output:
        status = _write_diff_page(args.output, base, new, type_name)
        if status != EXIT_OK:
            return status
    if args.fail_above is None:
        return EXIT_OK
    grown = regressions(table, args.fail_above)
    if not grown:
        print(f"\nno function's self share grew by more than {args.fail_above:g} points (ok)")
        return EXIT_OK
    print(f"\nREGRESSION: self share grew by more than {args.fail_above:g} points:")
    for row in grown:
        where = f"{row.filename}:{row.line}" if row.line else row.filename
        print(f"  {row.name}  {where}  {table.self_change_points(row):+.1f} points")
    return EXIT_REGRESSION


def _write_diff_page(
    output: str,
    base: Tuple[str, Sequence[ProfileRecord]],
    new: Tuple[str, Sequence[ProfileRecord]],
    type_name: str,
) -> int:
    from otelprof.viewer.dataset import build_document
    from otelprof.viewer.html import AssetMissing, render_page

    document = build_document(
        [base, new],
        title=f"otelprof diff: {base[0]} -> {new[0]}",
        subtitle=f"base {base[0]}: {_describe(base[1])}; new {new[0]}: {_describe(new[1])}",
        default_type=type_name,
        keep_lines=False,
    )
    try:
        page = render_page(document)
    except AssetMissing as exc:
        return _fail("diff", str(exc))
    try:
        _write_output(output, page)
    except OutputError as exc:
        return _fail("diff", str(exc))
    print(f"otelprof diff: wrote {output}", file=sys.stderr)
    return EXIT_OK


# --- export ------------------------------------------------------------------------------------


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprof export",
        description="Convert OTLP profile files to pprof (gzip, for go tool pprof), speedscope "
        "JSON, or collapsed stacks (flamegraph.pl).",
    )
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")
    parser.add_argument(
        "--type",
        dest="types",
        action="append",
        metavar="TYPE",
        help="sample types to export (repeatable; default: all, cpu first; collapsed: one, cpu)",
    )
    add_filter_arguments(parser)
    return parser


def main_export(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(_export_parser(), argv)
    if isinstance(args, int):
        return args
    records = load_or_report("export", args.paths)
    if records is None:
        return EXIT_ERROR
    selected = apply_filters(records, args)
    try:
        if args.format == "collapsed":
            if args.types and len(args.types) > 1:
                raise SelectionError("collapsed stacks hold one sample type; give one --type")
            names = [choose_type(selected, args.types[0] if args.types else None)]
        else:
            names = [choose_type(selected, name) for name in args.types or [None]]
            if not args.types:
                names = type_names(selected)
        types = _value_types(selected, list(dict.fromkeys(names)))
    except SelectionError as exc:
        return _fail("export", str(exc))
    data: Union[str, bytes]
    if args.format == "pprof":
        from otelprof.viewer.pprof import pprof_bytes

        data = pprof_bytes(selected, types)
    elif args.format == "speedscope":
        from otelprof.viewer.speedscope import speedscope_document

        document = speedscope_document(selected, types, _describe(selected))
        data = json.dumps(document, separators=(",", ":")) + "\n"
    else:
        from otelprof.viewer.collapsed import collapsed_lines

        data = "".join(line + "\n" for line in collapsed_lines(selected, types[0]))
    try:
        _write_output(args.output, data)
    except OutputError as exc:
        return _fail("export", str(exc))
    written = ", ".join(f"{t.type} ({t.unit})" for t in types)
    print(f"otelprof export: wrote {args.output} as {args.format}: {written}", file=sys.stderr)
    return EXIT_OK
