"""The sampling rate that keeps the agent inside its CPU budget on the workload it is in.

A tick's cost depends on the application: how many threads it has, how busy they keep the GIL
(on a shared 2-vCPU machine, taking the GIL back from three busy threads costs the sampler
50-60 us of CPU per wake-up before it has done anything), how often their stacks change. A fixed
rate is either too slow for quiet programs or over budget for busy thread-per-request servers
(docs/benchmarks.md measures both). So the configured rate is the maximum, and once a second
the controller compares the agent threads' CPU with the process's and stretches the interval
when the agent's share is above its target, or shortens it back towards the maximum rate when
there is room. The cost of a tick is close to proportional to the rate, so one correction
nearly converges; each step is limited to a factor of two and smoothed over a few seconds so
an export burst does not make the rate jump. The first step may go further (a factor of
eight): the baselines are taken at the first tick, so one second after start the controller
knows what the maximum rate costs, and a busy server should not pay it for several seconds
while the rate halves its way down (on the web benchmark's ~10 s runs, 100 Hz for the first
two seconds was about a third of the agent threads' CPU).

The target is a fraction of the overhead budget, the rest being left to the precise and
memory windows (their governor fits them in what remains). What the agent costs outside its
own threads (GIL hand-offs, span hooks) cannot be measured from inside and is not steered
here; ``benchmarks/ab_blocks.py`` measures it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

_logger = logging.getLogger("otelprof")

CHECK_SECONDS = 1.0
"""How often the controller looks at the CPU shares."""
OWN_SHARE_OF_BUDGET = 0.7
"""The agent threads' target, as a fraction of the overhead budget (the rest: see above)."""
MIN_RATE_HZ = 10.0
"""Never slower than this: wall-time profiles of a quiet program stay useful."""
SMOOTHING = 0.5
"""Weight of the newest second in the smoothed share."""
MAX_STEP = 2.0
"""The most one check changes the interval by."""
MAX_FIRST_STEP = 8.0
"""The most the first check changes it by (nothing is smoothed yet; see above)."""
IDLE_CORE_SHARE = 0.01
"""A second in which the application used less than this much of one core is idle: the agent's
share of almost nothing says nothing about what a tick will cost under load. Idle seconds hold
the agent's threads to the same target share of one core instead (a service that starts idle
keeps a high rate for its first requests, rather than meeting them at the floor a meaningless
share put it at; on the 2-vCPU test machine a few idle threads cost about 0.5-1 % of one core
at 100 Hz, mostly the wake-ups), and the next busy second is judged afresh, as a first one."""


class RateController:
    """Decides the sampling interval from measured CPU; called by the sampler thread."""

    def __init__(
        self,
        max_rate_hz: float,
        budget: float,
        agent_cpu_seconds: Callable[[], float],
        process_cpu_seconds: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        min_rate_hz: float = MIN_RATE_HZ,
    ) -> None:
        self.min_interval = 1.0 / max_rate_hz
        self.max_interval = max(self.min_interval, 1.0 / min_rate_hz)
        self.target = budget * OWN_SHARE_OF_BUDGET
        self.interval = self.min_interval
        self._agent_cpu_seconds = agent_cpu_seconds  # agent-thread CPU since the last call
        self._process_cpu_seconds = process_cpu_seconds
        self._clock = clock
        self._next_check = clock() + CHECK_SECONDS
        self._last_check = clock()
        self._last_process: Optional[float] = None
        self.share: Optional[float] = None  # smoothed agent CPU / application CPU
        self._logged_rate = max_rate_hz
        self.adjustments = 0

    def reset(self) -> None:
        """Start afresh at the maximum rate (a fork child: its process CPU clock started over,
        and a short-lived child must not inherit a rate its parent lowered while idle)."""
        self.interval = self.min_interval
        self._logged_rate = 1.0 / self.min_interval
        self._last_process = None
        self._next_check = self._clock() + CHECK_SECONDS
        self._last_check = self._clock()
        self.share = None

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.interval

    def update(self) -> float:
        """The interval to wait before the next tick (cheap except once a second)."""
        now = self._clock()
        if self._last_process is None:
            # The first call (the sampler's first tick): baselines, first check a second later.
            self._last_process = self._process_cpu_seconds()
            self._agent_cpu_seconds()
            self._next_check = now + CHECK_SECONDS
            self._last_check = now
            return self.interval
        if now < self._next_check:
            return self.interval
        self._next_check = now + CHECK_SECONDS
        elapsed, self._last_check = now - self._last_check, now
        process = self._process_cpu_seconds()
        agent = self._agent_cpu_seconds()
        last, self._last_process = self._last_process, process
        if self.target <= 0:
            return self.interval
        application = process - last - agent
        if application < IDLE_CORE_SHARE * elapsed:
            # Idle (see IDLE_CORE_SHARE): the agent's CPU against one core instead, so that a
            # process with hundreds of idle threads still keeps its ticks cheap.
            self.share = None
            self._adjust(agent / max(elapsed, 1e-6), MAX_STEP)
            return self.interval
        share = agent / application
        previous = self.share
        first = previous is None
        self.share = share if previous is None else SMOOTHING * share + (1 - SMOOTHING) * previous
        self._adjust(self.share, MAX_FIRST_STEP if first else MAX_STEP)
        return self.interval

    def _adjust(self, share: float, max_step: float) -> None:
        # Over target: stretch in proportion. Well under it: shorten, towards the maximum rate.
        if share > self.target:
            factor = min(max_step, share / self.target)
        elif share < 0.7 * self.target and self.interval > self.min_interval:
            factor = max(1.0 / max_step, share / (0.85 * self.target))
        else:
            return
        interval = min(self.max_interval, max(self.min_interval, self.interval * factor))
        if interval == self.interval:
            return
        self.interval = interval
        self.adjustments += 1
        rate = self.rate_hz
        # One info line per halving or doubling, debug otherwise: the rate moves with the load.
        if rate < self._logged_rate / 2 or rate > self._logged_rate * 2:
            self._logged_rate = rate
            _logger.info(
                "otelprof: sampling at %.0f Hz to keep the agent's CPU within its budget"
                " (agent threads at %.2f%% of the application's CPU)",
                rate,
                share * 100,
            )
        else:
            _logger.debug("otelprof: sampling rate now %.1f Hz", rate)
