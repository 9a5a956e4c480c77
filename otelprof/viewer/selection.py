"""Loading profile files and narrowing them down: options shared by view, diff and export."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from otelprof.model import Frame, Stack
from otelprof.reader import load_profiles
from otelprof.records import (
    ENDPOINT_ATTRIBUTE,
    SPAN_ID_BYTES,
    THREAD_NAME_ATTRIBUTE,
    TRACE_ID_BYTES,
    DecodedSample,
    ProfileRecord,
    by_resource,
    by_sample_attribute,
    by_span_id,
    by_trace_id,
    name_series,
    parse_hex_id,
    sample_types,
)

__all__ = [
    "NO_STACK",
    "SelectionError",
    "add_filter_arguments",
    "apply_filters",
    "choose_type",
    "key_value",
    "load_or_report",
    "sample_stack",
]

NO_STACK = Frame("[no stack]", "", 0, 0, "synthetic")
"""Stands in for an empty stack, so its value still shows (as ``otelprof top`` does)."""

DEFAULT_TYPE_ORDER = ("cpu", "wall")


class SelectionError(ValueError):
    """The records cannot be narrowed as asked (an unknown sample type, nothing selected)."""


def sample_stack(sample: DecodedSample) -> Stack:
    """The sample's stack, leaf first; never empty."""
    return sample.stack or (NO_STACK,)


def key_value(text: str) -> Tuple[str, str]:
    """argparse type for ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, got {text!r}")
    return key, value


def _hex(size: int, what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return parse_hex_id(text, size, what).hex()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resource``, ``--thread``, ``--endpoint``, ``--trace-id``, ``--span-id``."""
    parser.add_argument(
        "--resource",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only profiles with this resource attribute, e.g. service.name=checkout (repeatable)",
    )
    parser.add_argument(
        "--thread", metavar="NAME", help=f"only samples whose {THREAD_NAME_ATTRIBUTE} is NAME"
    )
    parser.add_argument(
        "--endpoint",
        metavar="NAME",
        help=f"only samples whose {ENDPOINT_ATTRIBUTE} is NAME, e.g. 'GET /checkout'",
    )
    parser.add_argument(
        "--trace-id",
        type=_hex(TRACE_ID_BYTES, "trace id"),
        metavar="HEX",
        help="only samples taken in this trace (32 hex digits)",
    )
    parser.add_argument(
        "--span-id",
        type=_hex(SPAN_ID_BYTES, "span id"),
        metavar="HEX",
        help="only samples taken in this span (16 hex digits)",
    )


def apply_filters(
    records: Sequence[ProfileRecord], args: argparse.Namespace
) -> Tuple[ProfileRecord, ...]:
    """The records narrowed by the options :func:`add_filter_arguments` added."""
    selected = tuple(records)
    for key, value in args.resource:
        selected = by_resource(selected, key, value)
    if args.thread is not None:
        selected = by_sample_attribute(selected, THREAD_NAME_ATTRIBUTE, args.thread)
    if args.endpoint is not None:
        selected = by_sample_attribute(selected, ENDPOINT_ATTRIBUTE, args.endpoint)
    if args.trace_id is not None:
        selected = by_trace_id(selected, args.trace_id)
    if args.span_id is not None:
        selected = by_span_id(selected, args.span_id)
    return selected


def type_names(records: Sequence[ProfileRecord]) -> List[str]:
    """Sample type names present, cpu and wall first."""
    present = sorted({t.type for t in sample_types(records)})
    first = [t for t in DEFAULT_TYPE_ORDER if t in present]
    return first + [t for t in present if t not in first]


def choose_type(records: Sequence[ProfileRecord], wanted: Optional[str]) -> str:
    """``wanted`` if the records have it, else cpu, wall or the first present."""
    present = type_names(records)
    if not present:
        raise SelectionError("no samples to show")
    if wanted is None:
        return present[0]
    if wanted not in present:
        raise SelectionError(
            f"no {wanted!r} samples in the files (types present: {', '.join(present)})"
        )
    return wanted


def load_or_report(command: str, paths: Sequence[str]) -> Optional[Tuple[ProfileRecord, ...]]:
    """Load files, print every problem to stderr; ``None`` when no file could be read."""
    result = load_profiles(paths)
    level = "warning" if result.files else "error"
    for error in result.errors:
        print(f"otelprof {command}: {level}: {error}", file=sys.stderr)
    if not result.files:
        print(f"otelprof {command}: error: no readable profile files", file=sys.stderr)
        return None
    # A precise window's wall is "wall:precise" here: never added into the sampler's wall.
    return name_series(result.records)
