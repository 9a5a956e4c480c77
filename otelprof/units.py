"""Human units for text tables: durations, bytes and counts in seven characters, percentages."""

from __future__ import annotations

__all__ = ["format_percent", "format_value"]

_EXACT_COUNT_LIMIT = 10_000_000  # counts below this fit the column as they are
_TIME_UNITS_NS = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 10**6, "seconds": 10**9}


def format_value(value: int, unit: str) -> str:
    """At most seven characters: ``12.3ms``, ``4.52s``, ``1.5MiB``, ``12345``; ``-`` for zero.

    Counts are exact while they fit (up to 9999999): a precise window's call counts are there to
    be checked against the program, and ``1.5k`` cannot tell 1500 calls from 1503.
    """
    if value == 0:
        return "-"
    if value < 0:
        return "-" + format_value(-value, unit)
    if unit in _TIME_UNITS_NS:
        return _format_nanos(value * _TIME_UNITS_NS[unit])
    if unit != "bytes" and value < _EXACT_COUNT_LIMIT:
        return str(value)
    steps = ("B", "KiB", "MiB", "GiB", "TiB") if unit == "bytes" else ("", "k", "M", "G", "T")
    base = 1024 if unit == "bytes" else 1000
    amount = float(value)
    for suffix in steps:
        if amount < base or suffix == steps[-1]:
            if suffix in ("", "B"):
                return f"{value}{suffix}"
            return f"{amount:.1f}{suffix}" if amount < 100 else f"{amount:.0f}{suffix}"
        amount /= base
    raise AssertionError("unreachable")  # pragma: no cover


def _format_nanos(nanos: int) -> str:
    millis = nanos / 1e6
    if millis < 0.01:
        return "<0.01ms"
    if millis < 999.5:
        digits = 2 if millis < 9.995 else 1 if millis < 99.95 else 0
        return f"{millis:.{digits}f}ms"
    seconds = nanos / 1e9
    if seconds < 99_999.5:
        digits = 2 if seconds < 9.995 else 1 if seconds < 99.95 else 0
        return f"{seconds:.{digits}f}s"
    return f"{seconds / 3600:.0f}h"


def format_percent(value: int, total: int) -> str:
    if value == 0 or total <= 0:
        return "-"
    percent = 100.0 * value / total
    if percent >= 99.95:
        return "100%"
    return "<0.1%" if percent < 0.05 else f"{percent:.1f}%"
