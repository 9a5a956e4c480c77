"""The leak detector names a deliberately leaking function within a few windows, nothing else."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import replace
from typing import Callable, Dict, List, Tuple

import pytest

from otelprof.config import resolve_config
from otelprof.model import Frame
from otelprof.windows.leaks import LeakDetector, leak_profiles
from otelprof.windows.manager import WindowManager
from otelprof.windows.memory import HeapObservation
from tests.windows.helpers import by_leaf

LEAKED: List[bytes] = []
CACHE: Dict[int, bytes] = {}
CACHE_SIZE = 200
IN_FLIGHT = threading.Event()  # never set: something a request waits on


def handle_request_leaky(i: int) -> int:
    payload = b"x" * 2048 + i.to_bytes(4, "big")
    LEAKED.append(payload)  # the bug: every request keeps 2 KiB forever
    return sum(len(str(n)) for n in range(200))


def handle_request_cached(i: int) -> int:
    # A bounded cache at steady state: every request replaces an old entry with a new one.
    CACHE[i % CACHE_SIZE] = b"y" * 2048 + i.to_bytes(4, "big")
    scratch = [str(n) for n in range(200)]  # garbage, freed at once
    return len(scratch)


class Session:
    """A per-request object in a reference cycle, as request handlers and frames often are."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.myself = self


def handle_request_cyclic(i: int) -> int:
    # Garbage once the request returns, but only the collector frees it.
    session = Session(b"z" * 2048 + i.to_bytes(4, "big"))
    return len(session.payload)


def handle_request_slow(i: int) -> int:
    # A request that holds its buffer while it waits (on a database, say): one is nearly
    # always in flight, so its buffer is live whenever a window closes.
    buffer = b"w" * 4096 + i.to_bytes(4, "big")
    IN_FLIGHT.wait(0.01)
    return len(buffer)


def handle_request_slow_and_leaky(i: int) -> int:
    return handle_request_leaky(i) + handle_request_slow(i)


def handle_request_leaky_and_cyclic(i: int) -> int:
    return handle_request_leaky(i) + handle_request_cyclic(i)


class Service:
    """Serves requests on a thread until stopped, as a web server's worker would."""

    def __init__(self, handler: Callable[[int], int]) -> None:
        self.handler = handler
        self.stop = threading.Event()
        self.warm = threading.Event()  # set once the cache has filled: steady state from then on
        self.thread = threading.Thread(target=self._serve, name="service")

    def _serve(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.handler(i)
            i += 1
            if i == 2 * CACHE_SIZE:
                self.warm.set()
            self.stop.wait(0.0005)  # pacing: a request every half millisecond or so

    def __enter__(self) -> Service:
        self.thread.start()
        assert self.warm.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _windows(manager: WindowManager, count: int, seconds: float):
    handles = []
    for _ in range(count):
        handle = manager.request("memory", seconds)
        assert handle.wait(60) and handle.error is None
        handles.append(handle)
    return handles


@pytest.fixture(autouse=True)
def _clean() -> None:
    LEAKED.clear()
    CACHE.clear()


@pytest.fixture
def rare_collections():
    """The collector's automatic passes held off, as a busy service's full ones are for minutes."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(10**9)
    yield
    gc.set_threshold(*thresholds)
    gc.collect()


@pytest.fixture
def manager():
    config = resolve_config(leak_min_windows=3, leak_min_bytes_per_second=1024)
    manager = WindowManager(config, standalone=True)
    yield manager
    manager.stop()


@pytest.fixture(params=["small heap", "large heap"])
def heap(request):
    """A large heap makes each full collection take a good part of a short window."""
    kept = [{"k": [i]} for i in range(1_000_000)] if request.param == "large heap" else []
    yield
    del kept


def test_the_leaking_function_is_named_within_three_windows(manager, caplog, heap):
    with caplog.at_level(logging.WARNING, logger="otelprof"), Service(handle_request_leaky):
        handles = _windows(manager, 3, 0.3)
    assert not handles[0].leaks and not handles[1].leaks
    leaks = handles[2].leaks
    assert leaks, "no leak reported after three windows"
    assert leaks[0].stack[0].function == "handle_request_leaky"
    assert leaks[0].bytes_per_second > 1024
    lines = [r.getMessage() for r in caplog.records if "leak" in r.getMessage()]
    assert len(lines) == 1
    line = handle_request_leaky.__code__.co_firstlineno + 1  # where the payload is made
    assert f"handle_request_leaky ({__file__}:{line})" in lines[0]
    assert "/s" in lines[0]
    leak_profile = next(
        p
        for p in handles[2].profiles
        if dict(p.attributes).get("otelprof.profile") == "leak_candidates"
        and p.sample_type.type == "inuse_space"
    )
    assert "handle_request_leaky" in by_leaf(leak_profile)
    assert leak_profile.period_type.type == "leak"


def test_a_bounded_cache_and_garbage_are_not_reported(manager, caplog, heap):
    with caplog.at_level(logging.WARNING, logger="otelprof"), Service(handle_request_cached):
        handles = _windows(manager, 4, 0.3)
    # The cache retains new entries in every window, yet the heap does not grow.
    assert any("handle_request_cached" in by_leaf(p) for h in handles for p in h.profiles)
    assert [h.leaks for h in handles] == [[], [], [], []]
    assert not [r for r in caplog.records if "leak" in r.getMessage()]


def test_garbage_of_reference_cycles_is_not_reported(manager, caplog, rare_collections):
    with caplog.at_level(logging.WARNING, logger="otelprof"), Service(handle_request_cyclic):
        handles = _windows(manager, 5, 0.3)
    # (Before the windows collected the garbage, handle_request_cyclic was reported.)
    assert [h.leaks for h in handles] == [[], [], [], [], []]
    assert not [r for r in caplog.records if "leak" in r.getMessage()]


def test_what_requests_in_flight_hold_is_not_a_leak_beside_a_real_one(manager, caplog):
    # The real leak grows the heap, so the heap check cannot tell the in-flight buffers apart:
    # measuring each window from its middle does (both ends catch about one request in flight).
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        with Service(handle_request_slow_and_leaky):
            handles = _windows(manager, 4, 0.3)
    # (Before windows were measured from their middle, handle_request_slow was reported too.)
    assert {c.stack[0].function for c in handles[2].leaks} == {"handle_request_leaky"}
    assert {c.stack[0].function for c in handles[3].leaks} <= {"handle_request_leaky"}
    lines = [r.getMessage() for r in caplog.records if "leak" in r.getMessage()]
    assert lines and all("handle_request_leaky (" in line for line in lines)


def test_a_leak_among_cyclic_garbage_is_still_named(manager, caplog, rare_collections):
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        with Service(handle_request_leaky_and_cyclic):
            handles = _windows(manager, 3, 0.3)
    assert {c.stack[0].function for c in handles[2].leaks} == {"handle_request_leaky"}
    lines = [r.getMessage() for r in caplog.records if "leak" in r.getMessage()]
    assert len(lines) == 1 and "handle_request_leaky (" in lines[0]


def test_with_the_collector_off_cyclic_garbage_is_a_leak(manager, caplog):
    # The application chose never to collect: its cycles are never freed, and the agent does
    # not collect behind its back.
    gc.disable()
    try:
        with caplog.at_level(logging.WARNING, logger="otelprof"), Service(handle_request_cyclic):
            handles = _windows(manager, 3, 0.3)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.collect()
    # (Before Python 3.11 each Session's __dict__ is a block of its own, made in __init__.)
    leaking = {c.stack[0].function for c in handles[2].leaks}
    assert "handle_request_cyclic" in leaking and leaking <= {"handle_request_cyclic", "__init__"}


# -- the detector on its own ---------------------------------------------------------------------

STACK_A = (Frame("grow", "a.py", 3, 1),)
STACK_B = (Frame("churn", "b.py", 9, 7),)


def _observation(
    start: float,
    growth: Dict[Tuple[Frame, ...], Tuple[int, int]],
    heap_blocks_per_second: float,
    contiguous: bool = False,
    seconds: float = 1.0,
    heap_blocks_error: float = 0.0,
) -> HeapObservation:
    return HeapObservation(
        start, start + seconds, growth, contiguous, heap_blocks_per_second, heap_blocks_error
    )


def test_growth_must_be_positive_in_every_observation():
    detector = LeakDetector(min_observations=3, min_bytes_per_second=100)
    assert detector.observe(_observation(0, {STACK_A: (500, 5)}, 5.0)) == []
    assert detector.observe(_observation(10, {STACK_A: (500, 5)}, 5.0)) == []
    found = detector.observe(_observation(20, {STACK_A: (500, 5)}, 5.0))
    assert [c.stack for c in found] == [STACK_A]
    assert found[0].bytes_per_second == pytest.approx(500.0)
    assert found[0].growth_bytes == 1500
    # One window without growth and the candidate is gone.
    assert detector.observe(_observation(30, {STACK_B: (800, 8)}, 5.0)) == []


def test_windowed_growth_without_heap_growth_is_not_a_leak():
    detector = LeakDetector(min_observations=3, min_bytes_per_second=100)
    for start in (0, 10, 20):
        found = detector.observe(_observation(start, {STACK_A: (500, 5)}, 1.0))
    assert found == []


def test_a_stack_must_grow_in_second_halves_as_it_held_at_middles():
    def window(start: float, held: int, grown: int) -> HeapObservation:
        return replace(
            _observation(start, {STACK_A: (grown, grown // 100)}, 100.0),
            first_half={STACK_A: (held, held // 100)},
            first_half_seconds=1.0,
        )

    # In-flight work: 2000 bytes live at the middle, a little more at the end each time.
    detector = LeakDetector(min_observations=3, min_bytes_per_second=100)
    found = [detector.observe(window(t, 2000, 300)) for t in (0, 10, 20)]
    assert found == [[], [], []]
    # A leak: as much again in each second half as in the first.
    detector = LeakDetector(min_observations=3, min_bytes_per_second=100)
    found = [detector.observe(window(t, 2000, 1900)) for t in (0, 10, 20)]
    assert [c.stack for c in found[2]] == [STACK_A]


def test_slow_growth_is_below_the_reporting_threshold():
    detector = LeakDetector(min_observations=2, min_bytes_per_second=1000)
    for start in (0, 10):
        found = detector.observe(_observation(start, {STACK_A: (500, 5)}, 1000.0))
    assert found == []


def test_continuous_observations_need_no_heap_confirmation():
    detector = LeakDetector(min_observations=2, min_bytes_per_second=100)
    detector.observe(_observation(0, {STACK_A: (500, 5)}, 0.0, contiguous=True))
    found = detector.observe(_observation(1, {STACK_A: (500, 5)}, 0.0, contiguous=True))
    assert [c.stack for c in found] == [STACK_A]


def test_leak_profiles_carry_the_growth_of_each_candidate():
    detector = LeakDetector(min_observations=2, min_bytes_per_second=1)
    detector.observe(_observation(0, {STACK_A: (300, 3), STACK_B: (100, 1)}, 100.0))
    found = detector.observe(_observation(1, {STACK_A: (300, 3), STACK_B: (50, 1)}, 100.0))
    profiles = leak_profiles(found, 1_000, 3_000)
    space = next(p for p in profiles if p.sample_type.type == "inuse_space")
    assert by_leaf(space) == {"grow": 600, "churn": 150}
    assert space.duration_nano == 2_000 and space.period == 1
