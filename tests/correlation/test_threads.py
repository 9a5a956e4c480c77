"""Ground truth by construction for threads: each worker parks at known places, the test samples.

A sample is "in span-bearing code" when its stack holds a function that only ever runs inside a
known span; the expected link is that span's. Everything else must carry no link at all.
"""

from __future__ import annotations

import threading
from typing import Any, Dict

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otelprof.correlation import ENDPOINT_ATTRIBUTE, LOCAL_ROOT_SPAN_ID_ATTRIBUTE
from otelprof.model import SpanLink

from .harness import (
    Harness,
    Parking,
    Score,
    attrs,
    functions,
    hex_id,
    join_all,
    link,
    link_of,
    started_threads,
)

WORKERS = 4
TICKS = 40  # per phase: 4 workers x 40 ticks = 160 samples in spans, 160 outside


def parked_in_span(parking: Parking, place: str) -> None:
    parking.park(place)


def parked_outside(parking: Parking, place: str) -> None:
    parking.park(place)


def test_threads_each_in_their_own_span(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[int, Any] = {}

    def worker(index: int) -> None:
        with harness.tracer.start_as_current_span(f"worker-{index}") as span:
            spans[index] = span
            parked_in_span(parking, f"in-{index}")
        parked_outside(parking, f"out-{index}")

    threads = started_threads([lambda i=i: worker(i) for i in range(WORKERS)], "worker")
    score = Score()
    for phase in ("in", "out"):
        for _ in range(WORKERS):
            parking.arrived()
        for _ in range(TICKS):
            for sample in harness.tick():
                if not sample.thread_name.startswith("worker-"):
                    continue
                index = int(sample.thread_name.rsplit("-", 1)[1])
                names = functions(sample)
                if "parked_in_span" in names:
                    score.expect(sample, link_of(spans[index]), sample.thread_name)
                else:
                    assert "parked_outside" in names
                    score.expect(sample, None, sample.thread_name)
        for index in range(WORKERS):
            parking.release(f"{phase}-{index}")
    join_all(threads)
    score.check(min_in_span=WORKERS * TICKS, min_outside=WORKERS * TICKS)


def before_child(parking: Parking) -> None:
    parking.park("before-child")


def in_child(parking: Parking) -> None:
    parking.park("in-child")


def after_child(parking: Parking) -> None:
    parking.park("after-child")


def test_nested_spans_and_the_local_root(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}

    def worker() -> None:
        with harness.tracer.start_as_current_span("GET /checkout") as outer:
            spans["outer"] = outer
            before_child(parking)
            with harness.tracer.start_as_current_span("charge card") as inner:
                spans["inner"] = inner
                in_child(parking)
            after_child(parking)

    (thread,) = started_threads([worker], "nested")
    for place in ("before-child", "in-child", "after-child"):
        assert parking.arrived() == place
        for _ in range(3):
            harness.sampler.sample_once()  # not drained: collected after the root has ended
        parking.release(place)
    join_all([thread])
    expected = {"before_child": "outer", "in_child": "inner", "after_child": "outer"}
    score = Score()
    collected = [s for s in harness.collect() if s.thread_name == thread.name]
    for sample in collected:
        (place,) = [f for f in functions(sample) if f in expected]
        score.expect(sample, link_of(spans[expected[place]]), place)
        assert attrs(sample)[LOCAL_ROOT_SPAN_ID_ATTRIBUTE] == hex_id(spans["outer"])
        # The root ended before the collection: every sample names its endpoint.
        assert attrs(sample)[ENDPOINT_ATTRIBUTE] == "GET /checkout"
    assert sum(s.count for s in collected) == 9
    score.check(min_in_span=3)


def test_spans_not_made_current_are_not_attributed(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}

    def worker() -> None:
        detached = harness.tracer.start_span("started, never current")
        parking.park("only-detached")
        with harness.tracer.start_as_current_span("current") as current:
            spans["current"] = current
            side = harness.tracer.start_span("side span, not current")
            parking.park("current-plus-side")
            side.end()
        detached.end()

    (thread,) = started_threads([worker], "detached")
    assert parking.arrived() == "only-detached"
    assert link(harness.tick_thread(thread)) is None
    parking.release("only-detached")
    assert parking.arrived() == "current-plus-side"
    assert link(harness.tick_thread(thread)) == link_of(spans["current"])
    parking.release("current-plus-side")
    join_all([thread])


def test_no_span_remote_parent_and_unsampled_spans_carry_no_link(harness: Harness) -> None:
    parking = Parking()
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("off")
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

    def worker() -> None:
        parking.park("no-span")
        token = otel_context.attach(TraceContextTextMapPropagator().extract(carrier))
        parking.park("remote-parent")  # a propagated parent is not a span of this process
        otel_context.detach(token)
        with unsampled.start_as_current_span("dropped by the sampler"):
            parking.park("unsampled")

    (thread,) = started_threads([worker], "nospan")
    for place in ("no-span", "remote-parent", "unsampled"):
        assert parking.arrived() == place
        for _ in range(5):
            assert link(harness.tick_thread(thread)) is None, place
        parking.release(place)
    join_all([thread])


def test_a_child_of_a_remote_parent_is_a_local_root(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

    def worker() -> None:
        parent = TraceContextTextMapPropagator().extract(carrier)
        with harness.tracer.start_as_current_span("server", context=parent) as server:
            spans["server"] = server
            parking.park("server")

    (thread,) = started_threads([worker], "remote")
    parking.arrived()
    sample = harness.tick_thread(thread)
    server_id = spans["server"].get_span_context().span_id.to_bytes(8, "big")
    assert link(sample) == SpanLink(bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), server_id)
    assert attrs(sample)[LOCAL_ROOT_SPAN_ID_ATTRIBUTE] == hex_id(spans["server"])
    parking.release("server")
    join_all([thread])


def test_the_starting_thread_is_recorded_when_already_in_a_span() -> None:
    harness = Harness()
    with harness.tracer.start_as_current_span("already open") as span:
        with harness:
            sample = harness.tick_thread(threading.current_thread())
            assert link(sample) == link_of(span)
