"""Windows open as scheduled: one per interval per kind, at a random offset, on demand first."""

from __future__ import annotations

import math
import random

from otelprof.windows.scheduler import (
    MEMORY,
    ON_DEMAND,
    PRECISE,
    SCHEDULED,
    WindowScheduler,
    WindowSpec,
)
from tests.windows.helpers import FakeClock


def _scheduler(clock: FakeClock, seed: int = 7, length: float = 2.0, interval: float = 60.0):
    specs = [WindowSpec(PRECISE, length, interval)]
    return WindowScheduler(specs, clock, random.Random(seed))


def test_one_window_per_interval_at_its_random_offset():
    clock = FakeClock(1000.0)
    scheduler = _scheduler(clock)
    offset = scheduler.seconds_until_next()
    assert 0 <= offset <= 58.0  # the window fits inside its interval
    if offset > 0:
        clock.advance(offset - 0.001)
        assert scheduler.due() is None
    clock.now = 1000.0 + offset
    planned = scheduler.due()
    assert planned is not None
    assert (planned.kind, planned.length_seconds, planned.trigger) == (PRECISE, 2.0, SCHEDULED)
    # Taken: nothing more until the next interval begins.
    assert scheduler.due() is None
    clock.now = 1059.9
    assert scheduler.due() is None
    assert math.isclose(scheduler.seconds_until_next(), 0.1, abs_tol=1e-9)


def test_every_interval_gets_exactly_one_window_and_offsets_vary():
    clock = FakeClock(0.0)
    scheduler = _scheduler(clock, seed=3, length=1.0, interval=10.0)
    opened = []
    while clock.now < 100.0:
        planned = scheduler.due()
        if planned is not None:
            opened.append(clock.now)
        clock.advance(0.05)
    intervals = [int(t // 10.0) for t in opened]
    assert intervals == list(range(10))
    offsets = {round(t % 10.0, 1) for t in opened}
    assert len(offsets) > 5  # random placement, not a fixed phase
    assert all(t % 10.0 <= 9.0 + 0.05 for t in opened)  # each window fits its interval


def test_offsets_come_from_the_injected_random_source():
    first = [_scheduler(FakeClock(0.0), seed=11).seconds_until_next() for _ in range(2)]
    other = _scheduler(FakeClock(0.0), seed=12).seconds_until_next()
    assert first[0] == first[1]
    assert other != first[0]


def test_on_demand_windows_come_first_in_request_order():
    clock = FakeClock(0.0)
    scheduler = WindowScheduler(
        [WindowSpec(PRECISE, 1.0, 10.0), WindowSpec(MEMORY, 1.0, 10.0)], clock, random.Random(1)
    )
    clock.advance(10.0)  # both scheduled windows are due by now
    scheduler.request(MEMORY, 3.0, ON_DEMAND, "first")
    scheduler.request(PRECISE, None, ON_DEMAND, "second")
    assert scheduler.seconds_until_next() == 0.0
    got = [scheduler.due() for _ in range(2)]
    assert [(p.kind, p.length_seconds, p.request) for p in got if p] == [
        (MEMORY, 3.0, "first"),
        (PRECISE, None, "second"),
    ]


def test_a_cancelled_request_never_opens():
    scheduler = _scheduler(FakeClock(0.0))
    scheduler.request(MEMORY, 1.0, ON_DEMAND, "handle")
    assert scheduler.cancel("handle")
    assert not scheduler.cancel("handle")
    assert not scheduler.has_demands


def test_a_window_delayed_past_its_interval_is_missed_not_moved():
    clock = FakeClock(0.0)
    scheduler = _scheduler(clock, length=1.0, interval=10.0)
    # Another window kept the runner busy for 25 s: intervals 0 and 1 passed unused.
    clock.advance(25.0)
    planned = scheduler.due()
    assert scheduler.missed[PRECISE] == 2
    # Whatever opens now belongs to interval 2 (20..30 s), never two at once.
    if planned is None:
        clock.now = 20.0 + 9.0
        planned = scheduler.due()
    assert planned is not None
    assert scheduler.due() is None


def test_a_zero_length_disables_the_kind():
    clock = FakeClock(0.0)
    scheduler = WindowScheduler([WindowSpec(PRECISE, 0.0, 10.0)], clock, random.Random(1))
    for _ in range(100):
        clock.advance(1.0)
        assert scheduler.due() is None
    assert scheduler.seconds_until_next() == math.inf
