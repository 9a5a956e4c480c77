"""The runtime-context hook: installed and removed cleanly, whatever else wraps the context."""

from __future__ import annotations

import sys
import threading
from typing import Any, List

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from otelprof.correlation import ENDPOINT_ATTRIBUTE, SpanCorrelator, context_hook
from otelprof.samplers.stack import StackSampler
from otelprof.spans import ProfilingSpanProcessor

from .harness import Harness, link, link_of, python_calls


def test_every_attach_and_detach_is_reported_with_the_now_current_context() -> None:
    seen: List[Context] = []
    hook = context_hook.install(seen.append)
    try:
        outer = otel_context.set_value("k", 1)
        token = otel_context.attach(outer)
        inner_token = otel_context.attach(otel_context.set_value("k", 2))
        otel_context.detach(inner_token)
        otel_context.detach(token)
    finally:
        context_hook.uninstall(hook)
    assert [c.get("k") for c in seen] == [1, 2, 1, None]


def test_uninstall_leaves_a_later_wrapper_in_place_but_inert() -> None:
    original = otel_context._RUNTIME_CONTEXT
    seen: List[Context] = []
    ours = context_hook.install(seen.append)
    theirs = context_hook.RecordingRuntimeContext(ours, lambda context: None)
    otel_context._RUNTIME_CONTEXT = theirs
    context_hook.uninstall(ours)
    assert otel_context._RUNTIME_CONTEXT is theirs
    otel_context.detach(otel_context.attach(Context()))
    assert seen == []
    otel_context._RUNTIME_CONTEXT = original


def test_a_failing_callback_never_reaches_the_application() -> None:
    def broken(context: Context) -> None:
        raise RuntimeError("bookkeeping bug")

    hook = context_hook.install(broken)
    try:
        token = otel_context.attach(otel_context.set_value("k", 1))
        assert otel_context.get_value("k") == 1
        otel_context.detach(token)
    finally:
        context_hook.uninstall(hook)


def test_the_task_context_path_matches_the_python_version() -> None:
    # With the context hook, 3.12+ reads each task's own context; before, per-task records
    # (and create_task's span). Read from the thread's state, a running task's context is its
    # thread's on every version.
    with Harness(native=False) as harness:
        assert harness.correlator.active.tasks.read_context == (sys.version_info >= (3, 12))
    with Harness() as harness:
        assert harness.correlator.active.tasks.read_context


def test_a_provider_set_after_start_gets_the_span_processor(monkeypatch: Any) -> None:
    harness = Harness()
    provider = harness.provider
    current: List[Any] = [trace.NoOpTracerProvider()]
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: current[0])
    now = [0.0]
    correlator = SpanCorrelator(clock=lambda: now[0])
    correlator.start()
    try:
        assert correlator._processor is None
        current[0] = provider  # the application configures its SDK after the profiler started
        sampler = StackSampler(tagger=correlator.tag, observer=correlator.observe)
        with harness.tracer.start_as_current_span("first"):
            # Its attach made the correlator look for the provider again (the span itself
            # started before the processor was there).
            sampler.sample_once()
        assert isinstance(correlator._processor, ProfilingSpanProcessor)
        early = [s for s in correlator.collect(sampler.drain()).samples if s.tag is not None]
        assert [dict(s.tag.attributes)[ENDPOINT_ATTRIBUTE] for s in early] == ["first"]
        assert correlator._processor.target is correlator.accounting
        with harness.tracer.start_as_current_span("second") as span:
            sample = [
                s for s in _tick(correlator) if s.thread_name == threading.current_thread().name
            ]
            assert link(sample[0]) == link_of(span)
    finally:
        correlator.stop()
    second = next(s for s in harness.exporter.get_finished_spans() if s.name == "second")
    assert "otelprof.cpu_time_ns" in second.attributes


def _tick(correlator: SpanCorrelator) -> List[Any]:
    sampler = StackSampler(tagger=correlator.tag, observer=correlator.observe)
    sampler.sample_once()
    return list(sampler.drain().samples)


def test_on_the_stock_runtime_context_the_hook_adds_only_its_callback() -> None:
    # An instrumented request reads and changes the context a dozen times: the hook calls the
    # ContextVar itself (C) instead of the runtime context's one-line Python methods, so it adds
    # no Python call but its own, and reading the context costs no Python call at all.
    seen: List[Context] = []
    hook = context_hook.install(seen.append)
    try:
        holding = otel_context.set_value("k", 1)

        def attach_detach() -> None:
            otel_context.detach(otel_context.attach(holding))

        calls = python_calls(attach_detach)
        reads = python_calls(otel_context.get_current)
    finally:
        context_hook.uninstall(hook)
    ours = "otelprof.correlation.context_hook"
    assert calls == [
        f"{__name__}:attach_detach",
        "opentelemetry.context:attach",
        f"{ours}:attach",
        "opentelemetry.context:detach",
        f"{ours}:detach",
    ]
    assert reads == ["opentelemetry.context:get_current"]
    assert [c.get("k") for c in seen] == [1, None]


def test_any_other_runtime_context_is_delegated_to() -> None:
    class Counting(ContextVarsRuntimeContext):
        def __init__(self) -> None:
            super().__init__()
            self.calls: List[str] = []

        def attach(self, context: Context) -> Any:
            self.calls.append("attach")
            return super().attach(context)

        def get_current(self) -> Context:
            self.calls.append("get_current")
            return super().get_current()

        def detach(self, token: Any) -> None:
            self.calls.append("detach")
            super().detach(token)

    runtime = Counting()
    seen: List[Context] = []
    hook = context_hook.RecordingRuntimeContext(runtime, seen.append)
    hook.detach(hook.attach(otel_context.set_value("k", 1)))
    # detach reports the context now current, read from the runtime context it wraps
    assert runtime.calls == ["attach", "detach", "get_current"]
    assert [c.get("k") for c in seen] == [1, None]
