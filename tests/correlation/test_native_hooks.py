"""The C extension's span hooks (``otelprof._native.SpanHooks``) against the Python reference."""

from __future__ import annotations

import logging
import sys
from typing import Any, Dict, List

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otelprof.spans as spans_module
from otelprof.spans import (
    CPU_TIME_ATTRIBUTE,
    CPU_TIME_SOURCE_ATTRIBUTE,
    ProfilingSpanProcessor,
    SpanAccounting,
)


def run_spans(provider: TracerProvider, native: bool, ticks: List[int]) -> Dict[str, Any]:
    """Root, child and grandchild made current in turn; their attributes by name."""
    clock = iter(ticks)
    accounting = SpanAccounting(native=native, thread_cpu_ns=lambda: next(clock))
    assert accounting.native == native
    processor = ProfilingSpanProcessor()
    processor.bind(accounting)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        with tracer.start_as_current_span("child"):
            with tracer.start_as_current_span("grandchild") as grandchild:
                root_id = root.get_span_context().span_id
                assert accounting.root_of(grandchild.get_span_context().span_id) == root_id
                assert accounting.live_root(root_id) is root
    assert accounting.live_root(root_id) is None
    processor.unbind()
    return {"write_failures": accounting.write_failures}


@pytest.mark.parametrize(
    "limits",
    [SpanLimits(), SpanLimits(max_attribute_length=5), SpanLimits(max_span_attributes=1)],
    ids=["default", "value-length-limit", "no-room"],
)
def test_the_c_hooks_write_what_the_python_ones_write(limits: SpanLimits) -> None:
    results = []
    for native in (True, False):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        counters = run_spans(provider, native, [100, 200, 300, 1300, 2300, 3300])
        exported = exporter.get_finished_spans()
        results.append((counters, {span.name: dict(span.attributes or {}) for span in exported}))
    assert results[0] == results[1]
    counters, attributes = results[0]
    if limits.max_span_attributes == 1:
        assert counters["write_failures"] == 3
        assert attributes == {"root": {}, "child": {}, "grandchild": {}}
        return
    assert counters["write_failures"] == 0
    assert attributes["grandchild"][CPU_TIME_ATTRIBUTE] == 1000  # 1300 - 300
    assert attributes["root"][CPU_TIME_ATTRIBUTE] == 3200  # 3300 - 100
    source = attributes["root"][CPU_TIME_SOURCE_ATTRIBUTE]
    assert source == ("threa" if limits.max_attribute_length == 5 else "thread_clock")


def test_a_full_container_is_left_alone_and_counted() -> None:
    for native in (True, False):
        provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2))
        accounting = SpanAccounting(native=native)
        span = provider.get_tracer("t").start_span("full", attributes={"a": 1, "b": 2})
        accounting.on_start(span)
        accounting.on_ending(span)
        assert dict(span.attributes) == {"a": 1, "b": 2}
        assert accounting.write_failures == 1


def test_a_broken_span_never_raises_into_the_sdk(caplog: Any) -> None:
    accounting = SpanAccounting(native=True)
    assert accounting.native
    with caplog.at_level(logging.ERROR, logger="otelprof"):
        for _ in range(3):
            assert accounting.on_start(object()) is None
            assert accounting.on_ending(object()) is None
    assert "on_start" in caplog.text and "_on_ending" in caplog.text


def test_too_many_live_spans_are_not_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spans_module, "MAX_LIVE_SPANS", 2)
    accounting = SpanAccounting(native=True)
    tracer = TracerProvider().get_tracer("t")
    spans = [tracer.start_span(f"s{i}") for i in range(5)]
    for span in spans:
        accounting.on_start(span)
    assert accounting.untracked == 3
    for span in spans:
        accounting.on_ending(span)  # the untracked ones are simply unknown
    assert accounting.root_of(spans[0].get_span_context().span_id) is None


def test_no_reference_is_left_behind() -> None:
    # The hooks run once per span for the life of the process: a leaked reference per span
    # would be unbounded memory.
    accounting = SpanAccounting(native=True)
    tracer = TracerProvider().get_tracer("t")
    root = tracer.start_span("root")
    context = trace.set_span_in_context(root)
    before = sys.getrefcount(root)
    for _ in range(1000):
        child = tracer.start_span("child", context=context)
        child_refs = sys.getrefcount(child)
        accounting.on_start(root)
        accounting.on_start(child)
        accounting.on_ending(child)
        accounting.on_ending(root)
        assert sys.getrefcount(child) == child_refs
    assert sys.getrefcount(root) == before
    assert accounting._live == {}


@pytest.mark.parametrize("native", [True, False])
def test_an_interrupt_is_not_swallowed(native: bool) -> None:
    # Errors stay in the hooks (logged once), as `except Exception` does; Ctrl-C goes on up.
    def interrupted() -> int:
        raise KeyboardInterrupt

    accounting = SpanAccounting(native=native, thread_cpu_ns=interrupted)
    span = TracerProvider().get_tracer("t").start_span("s")
    with pytest.raises(KeyboardInterrupt):
        accounting.on_start(span)
