"""Endpoints: the local root's name (or METHOD /route) on its samples, capped, added at collect."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from otelprof.correlation import ENDPOINT_ATTRIBUTE, OTHER
from otelprof.correlation.endpoints import endpoint_name

from .harness import Harness, Parking, attrs, join_all, started_threads


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
    # Memory stays bounded: two collections later the ended root is forgotten.
    harness.collect()
    assert not harness.correlator.endpoints._current
    assert not harness.correlator.endpoints._previous


def run_in_root(harness: Harness, parking: Parking, name: str) -> None:
    with harness.tracer.start_as_current_span(name):
        parking.park("inside")
