"""The leak detector names a deliberately leaking function within a few windows, nothing else."""

from __future__ import annotations

import logging
import threading
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


def handle_request_leaky(i: int) -> int:
    payload = b"x" * 2048 + i.to_bytes(4, "big")
    LEAKED.append(payload)  # the bug: every request keeps 2 KiB forever
    return sum(len(str(n)) for n in range(200))


def handle_request_cached(i: int) -> int:
    # A bounded cache at steady state: every request replaces an old entry with a new one.
    CACHE[i % CACHE_SIZE] = b"y" * 2048 + i.to_bytes(4, "big")
    scratch = [str(n) for n in range(200)]  # garbage, freed at once
    return len(scratch)


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
def manager():
    config = resolve_config(leak_min_windows=3, leak_min_bytes_per_second=1024)
    manager = WindowManager(config, standalone=True)
    yield manager
    manager.stop()


def test_the_leaking_function_is_named_within_three_windows(manager, caplog):
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


def test_a_bounded_cache_and_garbage_are_not_reported(manager, caplog):
    with caplog.at_level(logging.WARNING, logger="otelprof"), Service(handle_request_cached):
        handles = _windows(manager, 4, 0.3)
    # The cache retains new entries in every window, yet the heap does not grow.
    assert any("handle_request_cached" in by_leaf(p) for h in handles for p in h.profiles)
    assert [h.leaks for h in handles] == [[], [], [], []]
    assert not [r for r in caplog.records if "leak" in r.getMessage()]


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
