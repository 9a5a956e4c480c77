"""The adaptive sampling rate: slower while the agent is over its share of the budget, then back."""

from __future__ import annotations

import logging
from typing import List

import pytest

from otelprof.config import resolve_config
from otelprof.profiler import Profiler
from otelprof.samplers.rate import (
    CHECK_SECONDS,
    MAX_FIRST_STEP,
    OWN_SHARE_OF_BUDGET,
    RateController,
)


class Usage:
    """Injected clocks: the process burns ``app`` CPU-seconds per second, the agent ``cost``
    CPU-seconds per tick (so the agent's CPU follows the rate, as a real sampler's does)."""

    def __init__(self, app: float, cost: float) -> None:
        self.app = app
        self.cost = cost
        self.now = 0.0
        self.process = 0.0
        self.agent_total = 0.0
        self.agent_read = 0.0

    def clock(self) -> float:
        return self.now

    def process_cpu(self) -> float:
        return self.process

    def agent_cpu(self) -> float:
        delta, self.agent_read = self.agent_total - self.agent_read, self.agent_total
        return delta

    def run_second(self, controller: RateController) -> None:
        ticks = round(1.0 / controller.interval)
        self.agent_total += ticks * self.cost
        self.process += self.app + ticks * self.cost
        self.now += CHECK_SECONDS
        controller.update()


def controller(usage: Usage, budget: float = 0.01, max_rate: float = 100.0) -> RateController:
    return RateController(
        max_rate, budget, usage.agent_cpu, process_cpu_seconds=usage.process_cpu, clock=usage.clock
    )


def share(usage: Usage, rate_hz: float) -> float:
    return rate_hz * usage.cost / usage.app


def test_an_expensive_workload_gets_the_highest_rate_within_the_target() -> None:
    # 100 us per tick against one busy core: 1 % at 100 Hz, the target is 0.35 %.
    usage = Usage(app=1.0, cost=100e-6)
    steering = controller(usage)
    seen: List[float] = []
    for _ in range(30):
        usage.run_second(steering)
        seen.append(steering.rate_hz)
    target = 0.01 * OWN_SHARE_OF_BUDGET
    assert share(usage, seen[-1]) <= target * 1.05
    assert share(usage, seen[-1]) >= target * 0.6  # not needlessly slow
    assert min(seen) >= 10.0


def test_a_cheap_workload_keeps_the_configured_rate() -> None:
    usage = Usage(app=1.0, cost=10e-6)  # 0.1 % at 100 Hz
    steering = controller(usage)
    for _ in range(20):
        usage.run_second(steering)
    assert steering.rate_hz == 100.0
    assert steering.adjustments == 0


def test_the_rate_comes_back_when_the_load_changes() -> None:
    usage = Usage(app=0.05, cost=100e-6)  # a quiet program: far over, down to the floor
    steering = controller(usage)
    for _ in range(20):
        usage.run_second(steering)
    assert steering.rate_hz == 10.0
    usage.app, usage.cost = 2.0, 20e-6  # busy now, and ticks got cheaper
    for _ in range(20):
        usage.run_second(steering)
    assert steering.rate_hz == 100.0


def test_the_first_tick_takes_the_baselines_and_the_first_check_may_step_further() -> None:
    usage = Usage(app=1.0, cost=1e-3)  # 40 % at 400 Hz: far over the target
    steering = controller(usage, max_rate=400.0)
    assert steering.update() == 1 / 400  # the sampler's first tick: baselines only
    usage.now += CHECK_SECONDS / 2
    assert steering.update() == 1 / 400  # between checks the interval does not move
    usage.run_second(steering)  # one second after the first tick: the first check
    assert steering.rate_hz == pytest.approx(400.0 / MAX_FIRST_STEP)
    usage.run_second(steering)  # still over (5 %): later steps are at most halvings
    assert steering.rate_hz == pytest.approx(400.0 / MAX_FIRST_STEP / 2)


def test_later_steps_are_at_most_a_factor_of_two() -> None:
    usage = Usage(app=1.0, cost=100e-6)  # 1 %: over the target, so the first step is small
    steering = controller(usage)
    steering.update()
    usage.run_second(steering)
    first = steering.rate_hz
    assert 50.0 <= first < 100.0
    usage.cost = 1e-3  # ten times dearer now
    usage.run_second(steering)
    assert steering.rate_hz == pytest.approx(first / 2)


def test_adjustments_are_logged_once_per_halving(caplog: pytest.LogCaptureFixture) -> None:
    usage = Usage(app=0.05, cost=100e-6)
    steering = controller(usage)
    with caplog.at_level(logging.INFO, logger="otelprof"):
        for _ in range(20):
            usage.run_second(steering)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines and all("to keep the agent's CPU within its budget" in line for line in lines)
    assert len(lines) <= 4  # 100 -> 10 Hz is a little over three halvings


def test_reset_forgets_the_baselines() -> None:
    usage = Usage(app=1.0, cost=1e-3)
    steering = controller(usage)
    usage.run_second(steering)
    steering.reset()
    usage.process = 0.0  # a fork child's process clock starts over
    usage.run_second(steering)
    assert steering.rate_hz == 100.0  # baselines again, no bogus share


def test_a_fork_child_starts_at_the_maximum_rate() -> None:
    usage = Usage(app=0.05, cost=100e-6)  # an idle parent: down to the floor
    steering = controller(usage)
    for _ in range(10):
        usage.run_second(steering)
    assert steering.rate_hz == 10.0
    steering.reset()  # what the sampler does in a fork child
    assert steering.rate_hz == 100.0


def test_the_profiler_uses_it_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Profiler(resolve_config()).sampler.rate is not None
    assert Profiler(adaptive_rate=False).sampler.rate is None
    monkeypatch.setenv("OTEL_PYTHON_PROFILER_ADAPTIVE_RATE", "false")
    assert resolve_config().adaptive_rate is False


def test_idle_seconds_are_judged_against_one_core_and_the_next_busy_one_afresh() -> None:
    # A service that starts idle: the agent's share of almost no CPU is huge and meaningless;
    # 50 us per tick is 0.5 % of one core at 100 Hz, within the 0.7 % target.
    usage = Usage(app=0.001, cost=50e-6)  # 1 ms of application CPU a second
    steering = controller(usage)
    for _ in range(10):
        usage.run_second(steering)
    assert steering.rate_hz == 100.0 and steering.adjustments == 0
    usage.app, usage.cost = 1.0, 100e-6  # requests: 1 % at 100 Hz, over the 0.7 % target
    usage.run_second(steering)
    first = steering.rate_hz
    assert 50.0 <= first < 100.0  # one step, as a first check may take
    for _ in range(10):
        usage.run_second(steering)
    target = 0.01 * OWN_SHARE_OF_BUDGET
    assert share(usage, steering.rate_hz) <= target * 1.05
    usage.app, usage.cost = 0.001, 50e-6  # idle again: the maximum rate comes back
    for _ in range(5):
        usage.run_second(steering)
    assert steering.rate_hz == 100.0


def test_idle_ticks_are_held_to_the_target_share_of_one_core() -> None:
    usage = Usage(app=0.0, cost=500e-6)  # hundreds of idle threads: 5 % of a core at 100 Hz
    steering = controller(usage)
    for _ in range(10):
        usage.run_second(steering)
    assert usage.cost * steering.rate_hz <= 0.01 * OWN_SHARE_OF_BUDGET * 1.05
