"""Endpoints: the local root's name (or METHOD /route) on its samples, capped, added at collect."""

from __future__ import annotations

import gc
from typing import Any, Dict, List, Optional

from opentelemetry import context, trace

from otelprof.correlation import ENDPOINT_ATTRIBUTE, OTHER
from otelprof.correlation.endpoints import endpoint_name
from otelprof.samplers.gc import GCSampler

from .harness import Harness, Parking, attrs, join_all, link, started_threads


class _Span:
    def __init__(self, name: str, attributes: Optional[Dict[str, Any]] = None) -> None:
        self.name = name
        self.attributes = attributes or {}


def test_endpoint_names() -> None:
    assert endpoint_name(_Span("checkout")) == "checkout"
    route = {"http.route": "/items/<id>", "http.request.method": "GET"}
    assert endpoint_name(_Span("GET", route)) == "GET /items/<id>"
    assert endpoint_name(_Span("GET /items/7", {"http.route": "/items/<id>"})) == "/items/<id>"
    old = {"http.route": "/a", "http.method": "POST"}
    assert endpoint_name(_Span("x", old)) == "POST /a"
    assert endpoint_name(_Span("")) is None


def run_requests(harness: Harness, names: List[str], parking: Parking, ticks: int = 2) -> None:
    """Each request parks inside its root span while the test samples it."""

    def request(name: str) -> None:
        with harness.tracer.start_as_current_span(name):
            parking.park(name)

    for name in names:
        (thread,) = started_threads([lambda n=name: request(n)], "request")
        parking.arrived()
        for _ in range(ticks):
            harness.sampler.sample_once()
        parking.release(name)
        join_all([thread])


def endpoints_seen(harness: Harness) -> List[Optional[str]]:
    return sorted(
        {
            attrs(s).get(ENDPOINT_ATTRIBUTE)
            for s in harness.collect()
            if s.thread_name == "request-0"
        },
        key=str,
    )


def test_ended_roots_name_their_samples_and_the_rest_become_other() -> None:
    parking = Parking()
    with Harness(max_endpoints=2) as harness:
        run_requests(harness, ["GET /a", "GET /b", "GET /c", "GET /a"], parking)
        assert endpoints_seen(harness) == ["GET /a", "GET /b", OTHER]


def test_endpoints_can_be_turned_off() -> None:
    parking = Parking()
    with Harness(max_endpoints=0) as harness:
        run_requests(harness, ["GET /a"], parking)
        assert endpoints_seen(harness) == [None]


def test_a_root_still_running_at_collect_gets_its_current_name(harness: Harness) -> None:
    parking = Parking()

    def request() -> None:
        with harness.tracer.start_as_current_span("GET /long") as span:
            span.set_attribute("http.route", "/long")
            span.set_attribute("http.request.method", "GET")
            parking.park("long")

    (thread,) = started_threads([request], "request")
    parking.arrived()
    harness.sampler.sample_once()
    assert endpoints_seen(harness) == ["GET /long"]
    parking.release("long")
    join_all([thread])


def test_a_root_ending_after_a_collect_still_names_its_later_samples(harness: Harness) -> None:
    parking = Parking()
    (thread,) = started_threads([lambda: run_in_root(harness, parking, "GET /straddle")], "request")
    parking.arrived()
    harness.sampler.sample_once()
    harness.collect()  # an export in the middle of the request
    harness.sampler.sample_once()
    parking.release("inside")
    join_all([thread])
    assert endpoints_seen(harness) == ["GET /straddle"]
    # Memory stays bounded: two collections later no cached tag holds the ended root.
    harness.collect()
    harness.collect()
    assert not harness.correlator.active._tags
    assert not harness.correlator.active._old_tags


def test_a_root_sampled_only_between_its_end_and_the_context_reset_is_named(
    harness: Harness,
) -> None:
    # Instrumentations end the server span, then detach its context: a tick in between
    # samples a span the processor no longer tracks (seen under load in the Flask e2e test).
    parking = Parking()

    def request() -> None:
        span = harness.tracer.start_span("GET /late")
        token = context.attach(trace.set_span_in_context(span))
        span.end()
        parking.park("ended")
        context.detach(token)

    (thread,) = started_threads([request], "request")
    parking.arrived()
    harness.sampler.sample_once()
    parking.release("ended")
    join_all([thread])
    assert endpoints_seen(harness) == ["GET /late"]


def test_a_root_ending_between_tagging_and_charging_is_named(harness: Harness) -> None:
    # The tag is built while the root is live; the root ends before the observer charges
    # the sample (a GIL switch on the sampler thread): the tag alone must name the endpoint.
    parking = Parking()
    ended = []

    def request() -> None:
        with harness.tracer.start_as_current_span("GET /race"):
            parking.park("inside")
            ended.append(True)

    (thread,) = started_threads([request], "request")
    parking.arrived()
    real_observer = harness.sampler.observer

    def observe_after_the_end(*args: Any) -> None:
        parking.release("inside")
        join_all([thread])
        assert ended
        if real_observer is not None:
            real_observer(*args)

    harness.sampler.observer = observe_after_the_end
    harness.sampler.sample_once()
    harness.sampler.observer = real_observer
    # (the thread is gone before its sample is stored, so it is found by its link, not name)
    linked = [s for s in harness.collect() if link(s) is not None]
    assert [attrs(s).get(ENDPOINT_ATTRIBUTE) for s in linked] == ["GET /race"]


def run_in_root(harness: Harness, parking: Parking, name: str) -> None:
    with harness.tracer.start_as_current_span(name):
        parking.park("inside")


def test_gc_samples_name_their_endpoint_like_the_samplers(harness: Harness) -> None:
    collector = GCSampler(period_nanos=1, tagger=lambda: harness.correlator.tag)

    def request() -> None:
        with harness.tracer.start_as_current_span("GET /churn"):
            collector.start()
            try:
                gc.collect()  # charged to this stack, under this span
            finally:
                collector.stop()

    join_all(started_threads([request], "request"))
    profiles = collector.fold_into([], 10_000_000, harness.correlator.endpoint_tag)
    linked = [s for p in profiles for s in p.samples if s.link is not None]
    assert linked
    assert {dict(s.attributes).get(ENDPOINT_ATTRIBUTE) for s in linked} == {"GET /churn"}
