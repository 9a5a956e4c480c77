"""The way back: CPU time, hot functions and pyroscope.profile.id on the spans themselves."""

from __future__ import annotations

import asyncio
import threading
import time
import types
from typing import Any, Dict

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

import otelprof.spans as spans_module
from otelprof.correlation import LOCAL_ROOT_SPAN_ID_ATTRIBUTE, SpanTag
from otelprof.spans import (
    CPU_TIME_ATTRIBUTE,
    CPU_TIME_SOURCE_ATTRIBUTE,
    HOT_FUNCTIONS_ATTRIBUTE,
    PYROSCOPE_PROFILE_ID_ATTRIBUTE,
    ProfilingSpanProcessor,
    SpanAccounting,
    processor_for,
    set_ending_attributes,
)

from .harness import (
    Harness,
    LoopThread,
    Parking,
    attrs,
    hex_id,
    join_all,
    link,
    python_calls,
    started_threads,
)


def burn(cpu_ns: int) -> None:
    end = time.thread_time_ns() + cpu_ns
    while time.thread_time_ns() < end:
        pass


def test_a_synchronous_span_gets_its_exact_thread_cpu(harness: Harness) -> None:
    before = time.thread_time_ns()
    with harness.tracer.start_as_current_span("work"):
        inside_start = time.thread_time_ns()
        burn(3_000_000)
        inside = time.thread_time_ns() - inside_start
    around = time.thread_time_ns() - before
    span = harness.finished("work")
    cpu = span.attributes[CPU_TIME_ATTRIBUTE]
    # The span's clock readings lie between the outer and inner ones: bounds, not a tolerance.
    assert inside <= cpu <= around
    assert span.attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "thread_clock"


@pytest.mark.parametrize("native", [True, False])
def test_cpu_is_read_from_the_thread_clock_at_start_and_end(native: bool) -> None:
    readings = iter([1_000, 4_500])
    harness = Harness(native=native, thread_cpu_ns=lambda: next(readings))
    assert harness.correlator.accounting.native == native
    with harness:
        with harness.tracer.start_as_current_span("clocked"):
            pass
    assert harness.finished("clocked").attributes[CPU_TIME_ATTRIBUTE] == 3_500


def test_a_span_ended_on_another_thread_gets_no_cpu_time(harness: Harness) -> None:
    span = harness.tracer.start_span("handed over")
    (thread,) = started_threads([span.end], "ender")
    join_all([thread])
    assert CPU_TIME_ATTRIBUTE not in harness.finished("handed over").attributes


def hot_leaf(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(0.0005)  # C sleep: the innermost Python frame stays hot_leaf


def test_a_local_root_gets_its_hot_functions(harness: Harness) -> None:
    stop = threading.Event()
    parking = Parking()

    def request() -> None:
        with harness.tracer.start_as_current_span("GET /report"):
            with harness.tracer.start_as_current_span("render"):
                parking.arrivals.put("spinning")
                hot_leaf(stop)

    (thread,) = started_threads([request], "request")
    parking.arrived()
    for _ in range(20):
        harness.sampler.sample_once()
    stop.set()
    join_all([thread])
    root = harness.finished("GET /report")
    hot = root.attributes[HOT_FUNCTIONS_ATTRIBUTE]
    assert hot[0].startswith("hot_leaf (correlation/test_span_attributes.py:")
    assert HOT_FUNCTIONS_ATTRIBUTE not in harness.finished("render").attributes  # roots only


def test_asyncio_spans_get_the_cpu_of_their_samples(harness: Harness) -> None:
    parking = Parking()
    charged: Dict[int, int] = {}

    async def job() -> None:
        with harness.tracer.start_as_current_span("async parent"):
            for _ in range(3):
                burn(200_000)  # charged to the parent at the next tick
                parking.park("parent")
                await asyncio.sleep(0)
            with harness.tracer.start_as_current_span("async child"):
                for _ in range(3):
                    burn(200_000)
                    parking.park("child")
                    await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.create_task(job())

    with LoopThread(main) as loop:
        for _ in range(6):
            place = parking.arrived()
            for sample in harness.tick():
                if sample.thread_name == loop.thread.name:
                    span_id = getattr(sample.tag, "span_id", 0)
                    charged[span_id] = charged.get(span_id, 0) + sample.cpu_nanos
            parking.release(place)
    parent = harness.finished("async parent")
    child = harness.finished("async child")
    assert child.attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "sampled"
    assert parent.attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "sampled"
    own = {s.context.span_id: charged.get(s.context.span_id, 0) for s in (parent, child)}
    # Exactly the CPU of the samples taken in it; the parent's includes its child's.
    assert child.attributes[CPU_TIME_ATTRIBUTE] == own[child.context.span_id]
    assert parent.attributes[CPU_TIME_ATTRIBUTE] == sum(own.values())
    assert own[child.context.span_id] >= 3 * 200_000


def test_pyroscope_mode_links_samples_to_the_local_root() -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}

    def request() -> None:
        with harness.tracer.start_as_current_span("GET /a") as root:
            spans["root"] = root
            with harness.tracer.start_as_current_span("child"):
                parking.park("child")

    with Harness(pyroscope_profile_id=True) as harness:
        (thread,) = started_threads([request], "pyro")
        parking.arrived()
        sample = harness.tick_thread(thread)
        parking.release("child")
        join_all([thread])
    root_id = spans["root"].get_span_context().span_id
    assert link(sample).span_id == root_id.to_bytes(8, "big")  # type: ignore[union-attr]
    assert LOCAL_ROOT_SPAN_ID_ATTRIBUTE not in attrs(sample)  # the link says it already
    assert harness.finished("GET /a").attributes[PYROSCOPE_PROFILE_ID_ATTRIBUTE] == hex_id(
        spans["root"]
    )
    assert PYROSCOPE_PROFILE_ID_ATTRIBUTE not in harness.finished("child").attributes


def test_span_attributes_can_be_turned_off() -> None:
    with Harness(span_attributes=False) as harness:
        with harness.tracer.start_as_current_span("plain"):
            pass
    assert not any(k.startswith("otelprof.") for k in harness.finished("plain").attributes)


def test_a_full_attribute_container_is_not_evicted() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2))
    span = provider.get_tracer("t").start_span("full", attributes={"a": 1, "b": 2})
    span.end()
    assert not set_ending_attributes(span, {"otelprof.cpu_time_ns": 5})
    assert dict(span.attributes) == {"a": 1, "b": 2}


def test_attributes_written_in_on_ending_reach_the_exported_span(harness: Harness) -> None:
    # SDK 1.45 freezes the span before _on_ending (opentelemetry-python#5614); the write still
    # lands in the container the exporter reads.
    with harness.tracer.start_as_current_span("exported"):
        pass
    assert CPU_TIME_ATTRIBUTE in harness.finished("exported").attributes


def test_without_on_ending_the_bookkeeping_still_happens_at_on_end() -> None:
    accounting = SpanAccounting()
    processor = ProfilingSpanProcessor()
    processor.bind(accounting)
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("root")
    processor.on_start(span)
    span_id = span.get_span_context().span_id
    accounting.observe(SpanTag(span_id=span_id, root_id=span_id), burn.__code__, 10, 10)
    span.end()
    assert accounting.live_root(span_id) is span
    processor.on_end(span)  # as an SDK without _on_ending would call it
    assert accounting.live_root(span_id) is None


def test_one_processor_per_provider_is_reused_across_profilers() -> None:
    provider = TracerProvider()
    assert processor_for(provider) is processor_for(provider)
    assert len(provider._active_span_processor._span_processors) == 1


def test_once_the_sdk_calls_on_ending_on_end_costs_no_python_call() -> None:
    provider = TracerProvider()
    processor = processor_for(provider)
    accounting = SpanAccounting()
    processor.bind(accounting)
    assert processor.on_end == accounting.on_end  # until the SDK is seen calling _on_ending
    provider.get_tracer("t").start_span("first").end()
    assert isinstance(processor.on_end, types.BuiltinFunctionType)
    provider.get_tracer("t").start_span("second").end()  # still ends cleanly
    processor.unbind()
    assert "on_end" not in vars(processor) and accounting.on_first_ending is None


@pytest.mark.parametrize("native", [True, False])
def test_span_bookkeeping_makes_no_python_call_into_the_sdk(native: bool) -> None:
    # The span's ids are read with C getters (the SDK's layout is checked at import): through
    # the public API each read is a Python call, several per span on every request. The C
    # extension's hooks make no Python call at all in this, the common case.
    assert spans_module.FAST_SPAN_ACCESS
    provider = TracerProvider()
    accounting = SpanAccounting(native=native)
    assert accounting.native == native
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root")
    child = tracer.start_span("child", context=trace.set_span_in_context(root))
    for span in (root, child):
        expected = [] if native else ["otelprof.spans:on_start"]
        assert python_calls(accounting.on_start, span) == expected
    assert accounting.root_of(child.get_span_context().span_id) == root.get_span_context().span_id
    for span in (child, root):
        span._end_time = 1  # as the SDK's end() leaves it before calling _on_ending
        expected = (
            []
            if native
            else [
                "otelprof.spans:on_ending",
                "otelprof.spans:_end",
                "otelprof.spans:_write",
                "otelprof.spans:set_ending_attributes",
            ]
        )
        assert python_calls(accounting.on_ending, span) == expected
        assert span.attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "thread_clock"
        assert span.attributes[CPU_TIME_ATTRIBUTE] >= 0
    assert accounting.live_root(root.get_span_context().span_id) is None


def test_through_the_public_span_api_the_bookkeeping_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What an SDK with another span layout gets.
    getters = spans_module.span_getters(fast=False)
    for name, getter in zip(
        ("_context_of", "_parent_of", "_span_id", "_is_remote", "_flags"), getters
    ):
        monkeypatch.setattr(spans_module, name, getter)
    monkeypatch.setattr(spans_module, "FAST_SPAN_ACCESS", False)  # (the C hooks need it)
    with Harness() as harness:
        assert not harness.correlator.accounting.native
        with harness.tracer.start_as_current_span("root") as root:
            root_id = root.get_span_context().span_id
            with harness.tracer.start_as_current_span("child") as child:
                child_id = child.get_span_context().span_id
                assert harness.correlator.accounting.root_of(child_id) == root_id
                assert harness.correlator.accounting.live_root(root_id) is root
    for name in ("root", "child"):
        assert harness.finished(name).attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "thread_clock"
    assert harness.correlator.accounting.live_root(root_id) is None
