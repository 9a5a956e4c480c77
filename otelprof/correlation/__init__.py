"""Span correlation: every sample knows its span, every span its hot code (docs/correlation.md)."""

from __future__ import annotations

from otelprof.correlation.correlator import SpanCorrelator
from otelprof.correlation.tags import (
    ENDPOINT_ATTRIBUTE,
    LOCAL_ROOT_SPAN_ID_ATTRIBUTE,
    OTHER,
    TASK_NAME_ATTRIBUTE,
    SpanTag,
)

__all__ = [
    "ENDPOINT_ATTRIBUTE",
    "LOCAL_ROOT_SPAN_ID_ATTRIBUTE",
    "OTHER",
    "TASK_NAME_ATTRIBUTE",
    "SpanCorrelator",
    "SpanTag",
]
