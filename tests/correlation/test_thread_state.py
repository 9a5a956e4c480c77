"""Reading another thread's current context from its interpreter state (``otelprof._native``)."""

from __future__ import annotations

import contextvars
import sys
import threading
from typing import Any, List, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace

from otelprof.correlation import SpanCorrelator
from otelprof.correlation.thread_state import ThreadContext, native_thread_context

from .harness import TIMEOUT, Harness, Parking, link, link_of, python_calls

VARIABLE: contextvars.ContextVar[str] = contextvars.ContextVar("otelprof_test_variable")


def reader() -> ThreadContext:
    # `make test` installs the package with its C extension; a build that lost it would
    # otherwise pass every test on the fallback alone.
    thread_context = native_thread_context()
    assert thread_context is not None, "otelprof._native was not built"
    return thread_context


def test_reads_the_context_current_on_another_thread_now() -> None:
    thread_context = reader()
    parking = Parking()
    seen: List[Optional[str]] = []

    def worker() -> None:
        VARIABLE.set("outer")
        parking.park("set")
        # Entering another context (as asyncio does for every task step) is seen too.
        contextvars.Context().run(lambda: (VARIABLE.set("inner"), parking.park("inside")))
        parking.park("back")

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert thread.ident is not None
    for place in ("set", "inside", "back"):
        assert parking.arrived() == place
        context = thread_context(thread.ident)
        seen.append(context.get(VARIABLE) if context is not None else None)
        parking.release(place)
    thread.join(TIMEOUT)
    assert seen == ["outer", "inner", "outer"]
    # Gone threads and unknown idents have no context.
    assert thread_context(thread.ident) is None
    assert thread_context(0) is None


def test_the_calling_thread_reads_its_own_context() -> None:
    token = VARIABLE.set("mine")
    try:
        context = reader()(threading.get_ident())
        assert context is not None and context.get(VARIABLE) == "mine"
    finally:
        VARIABLE.reset(token)


def test_once_the_processor_is_attached_the_request_path_runs_no_agent_code() -> None:
    # Where the reader exists, the agent neither wraps OpenTelemetry's runtime context nor
    # runs anything on attach/detach: the application makes exactly the calls it makes
    # without the agent.
    holding = otel_context.set_value("k", 1)

    def attach_detach() -> None:
        otel_context.detach(otel_context.attach(holding))

    before = python_calls(attach_detach)
    runtime = otel_context._RUNTIME_CONTEXT
    with Harness() as harness:
        assert harness.correlator.active.reads_thread_state
        assert otel_context._RUNTIME_CONTEXT is runtime
        assert python_calls(attach_detach) == before
        with harness.tracer.start_as_current_span("request") as span:
            sample = next(s for s in harness.tick() if s.thread_id == threading.get_native_id())
            assert link(sample) == link_of(span)


def test_until_the_provider_is_set_a_hook_watches_for_the_first_span(monkeypatch: Any) -> None:
    # `otelprof run` starts before the application sets its TracerProvider: a hook watches
    # for the first span (so the processor sees that request's child spans start), then goes.
    harness = Harness()
    current: List[Any] = [trace.NoOpTracerProvider()]
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: current[0])
    runtime = otel_context._RUNTIME_CONTEXT
    correlator = SpanCorrelator(clock=lambda: 0.0)
    correlator.start()
    try:
        assert correlator.active.reads_thread_state
        assert otel_context._RUNTIME_CONTEXT is not runtime  # the watching hook
        current[0] = harness.provider
        with harness.tracer.start_as_current_span("first"):
            assert correlator._processor is not None
            assert otel_context._RUNTIME_CONTEXT is runtime  # gone at that first span
            with harness.tracer.start_as_current_span("child"):
                pass
    finally:
        correlator.stop()
    child = next(s for s in harness.exporter.get_finished_spans() if s.name == "child")
    assert "otelprof.cpu_time_ns" in child.attributes


def test_native_false_keeps_the_context_hook() -> None:
    runtime = otel_context._RUNTIME_CONTEXT
    with Harness(native=False) as harness:
        assert not harness.correlator.active.reads_thread_state
        assert otel_context._RUNTIME_CONTEXT is not runtime


def test_a_context_copied_into_a_thread_without_an_attach_has_its_span() -> None:
    # asyncio.to_thread and anyio's to_thread.run_sync (FastAPI's `def` endpoints) run the
    # work in a copy of the caller's context: no attach tells a hook, the thread state does.
    parking = Parking()
    with Harness() as harness:
        span = harness.tracer.start_span("endpoint")
        with trace.use_span(span, end_on_exit=True):
            copied = contextvars.copy_context()
            thread = threading.Thread(
                target=copied.run, args=(parking.park, "working"), name="to-thread", daemon=True
            )
            thread.start()
            assert parking.arrived() == "working"
            try:
                assert link(harness.tick_thread(thread)) == link_of(span)
            finally:
                parking.release("working")
                thread.join(TIMEOUT)


def test_without_the_extension_or_the_gil_the_context_hook_is_used(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "otelprof._native", None)  # as if it was never built
    assert native_thread_context() is None
    with Harness() as harness:
        assert not harness.correlator.active.reads_thread_state
        with harness.tracer.start_as_current_span("request") as span:
            sample = next(s for s in harness.tick() if s.thread_id == threading.get_native_id())
            assert link(sample) == link_of(span)
    monkeypatch.undo()
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert native_thread_context() is None
