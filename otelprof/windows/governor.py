"""The overhead governor: keeps the agent's own CPU, windows included, inside a budget."""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Optional, Tuple

from otelprof import _unpatched
from otelprof._threads import AGENT_THREAD_IDENTS
from otelprof.model import Attributes
from otelprof.samplers.stack import _thread_cpu_clock

_logger = logging.getLogger("otelprof")

# What a window costs, as extra application CPU per second of application CPU while it is open
# (slowdown - 1). Priors until a window of that kind has been measured in this process: the
# slowdowns measured on the web workload (benchmarks/windows_overhead.py, docs/windows.md).
PRIOR_COST_FACTORS: Dict[str, float] = {"precise:wall": 4.0, "precise:cpu": 6.0, "memory": 17.0}
MIN_HORIZON_SECONDS = 600.0
_EWMA_WEIGHT = 0.5  # weight of the newest measurement: windows are rare, adapt quickly


@dataclass(frozen=True)
class Admission:
    """The governor's answer for a planned window: ``seconds`` 0 means skip it."""

    seconds: float
    predicted_cpu_seconds: float
    allowed_cpu_seconds: float
    reason: str = ""


@dataclass
class _Entry:
    at: float
    process_cpu: float
    spent_cpu: float


class OverheadGovernor:
    """Budget accounting over a sliding horizon, and the admission of windows.

    Spent CPU is the agent threads' own CPU plus each window's measured extra application CPU
    (what the application burned above its usual rate while the window was open). Within any
    ``horizon_seconds`` the agent may spend ``budget`` times the process CPU of that span; a
    window whose predicted cost does not fit is shortened to what fits, or skipped when that
    would leave less than ``min_window_seconds``.
    """

    def __init__(
        self,
        budget: float,
        horizon_seconds: float = 600.0,
        min_window_seconds: float = 0.2,
        warm_up_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        prior_cost_factors: Optional[Dict[str, float]] = None,
    ) -> None:
        self.budget = budget
        self.horizon_seconds = horizon_seconds
        self.min_window_seconds = min_window_seconds
        self.warm_up_seconds = warm_up_seconds
        self._clock = clock
        self._lock = _unpatched.allocate_lock()
        self._entries: Deque[_Entry] = collections.deque()
        self._process_cpu = 0.0  # sums over the entries in the horizon
        self._spent_cpu = 0.0
        self._app_seconds_outside_windows = 0.0
        self._app_cpu_outside_windows = 0.0
        self.cost_factors: Dict[str, float] = dict(prior_cost_factors or PRIOR_COST_FACTORS)
        self.measured: Dict[str, int] = {}
        self.opened: Dict[str, int] = collections.defaultdict(int)
        self.shortened: Dict[str, int] = collections.defaultdict(int)
        self.skipped: Dict[str, int] = collections.defaultdict(int)
        self.agent_cpu_total = 0.0
        self.window_cpu_total = 0.0
        self.process_cpu_total = 0.0

    # -- measurements ----------------------------------------------------------------------------

    def record_usage(
        self, process_cpu: float, agent_cpu: float, elapsed: float, in_window: bool = False
    ) -> None:
        """CPU seconds the process and the agent's threads used over the last ``elapsed`` s."""
        with self._lock:
            self._add(process_cpu, agent_cpu)
            self.agent_cpu_total += agent_cpu
            if not in_window and elapsed > 0:
                self._app_seconds_outside_windows += elapsed
                self._app_cpu_outside_windows += max(0.0, process_cpu - agent_cpu)

    def record_window(
        self, kind: str, seconds: float, app_cpu: float, slowdown: Optional[float] = None
    ) -> float:
        """Account a finished window from the application CPU it saw; returns its extra CPU.

        The extra is the larger of two estimates. The application CPU above its usual rate
        (measured outside windows) sees the cost when the load is fixed, but nothing when the
        application was already using all the CPU it could (then a slower application just
        serves less). ``slowdown``, measured by timing a fixed probe inside and outside the
        window, sees it either way: of ``app_cpu``, a share ``1 - 1/slowdown`` was overhead.
        """
        with self._lock:
            rate = self._usual_app_rate()
            expected = rate * seconds
            extra = max(0.0, app_cpu - expected)
            if slowdown is not None and slowdown > 1.0:
                extra = max(extra, app_cpu * (1.0 - 1.0 / slowdown))
            if expected > 0.01 * seconds:  # an idle application tells nothing about the cost
                measured = extra / expected
                old = self.cost_factors.get(kind)
                if kind not in self.measured or old is None:
                    self.cost_factors[kind] = measured
                else:
                    self.cost_factors[kind] = _EWMA_WEIGHT * measured + (1 - _EWMA_WEIGHT) * old
                self.measured[kind] = self.measured.get(kind, 0) + 1
            self._add(0.0, extra)
            self.window_cpu_total += extra
            return extra

    def _add(self, process_cpu: float, spent_cpu: float) -> None:
        now = self._clock()
        self._entries.append(_Entry(now, process_cpu, spent_cpu))
        self._process_cpu += process_cpu
        self._spent_cpu += spent_cpu
        self.process_cpu_total += process_cpu
        horizon_start = now - self.horizon_seconds
        while self._entries and self._entries[0].at < horizon_start:
            old = self._entries.popleft()
            self._process_cpu -= old.process_cpu
            self._spent_cpu -= old.spent_cpu

    def _usual_app_rate(self) -> float:
        if self._app_seconds_outside_windows <= 0:
            return 0.0
        return self._app_cpu_outside_windows / self._app_seconds_outside_windows

    # -- decisions -------------------------------------------------------------------------------

    def admit(self, kind: str, seconds: float) -> Admission:
        """How long a scheduled window of ``kind`` may stay open (0: skip it)."""
        with self._lock:
            factor = self.cost_factors.get(kind, max(self.cost_factors.values(), default=1.0))
            cost_per_second = factor * self._usual_app_rate()
            predicted = cost_per_second * seconds
            allowed = self.budget * self._process_cpu - self._spent_cpu
            if self._app_seconds_outside_windows < self.warm_up_seconds:
                # The application's usual rate is not known yet, so neither is the cost.
                self.skipped[kind] += 1
                return Admission(0.0, predicted, allowed, "warming up")
            if predicted <= allowed and allowed > 0:
                self.opened[kind] += 1
                return Admission(seconds, predicted, allowed)
            fits = allowed / cost_per_second if allowed > 0 and cost_per_second > 0 else 0.0
            if fits >= self.min_window_seconds:
                self.opened[kind] += 1
                self.shortened[kind] += 1
                return Admission(fits, cost_per_second * fits, allowed, "shortened")
            self.skipped[kind] += 1
            return Admission(0.0, predicted, allowed, "skipped")

    def note_on_demand(self, kind: str) -> None:
        """On-demand windows bypass admission but are counted (their cost is accounted)."""
        with self._lock:
            self.opened[kind] += 1

    @property
    def overhead_ratio(self) -> float:
        """Spent CPU / process CPU over the horizon."""
        with self._lock:
            return self._spent_cpu / self._process_cpu if self._process_cpu > 0 else 0.0

    def attributes(self) -> Attributes:
        """Counters exported as profile attributes."""
        with self._lock:
            ratio = self._spent_cpu / self._process_cpu if self._process_cpu > 0 else 0.0
            total = self.process_cpu_total
            agent_ratio = self.agent_cpu_total / total if total > 0 else 0.0
            return (
                ("otelprof.overhead.agent_cpu_ratio", round(agent_ratio, 6)),
                ("otelprof.overhead.budget", self.budget),
                ("otelprof.overhead.cpu_ratio", round(ratio, 6)),
                ("otelprof.windows.opened", sum(self.opened.values())),
                ("otelprof.windows.shortened", sum(self.shortened.values())),
                ("otelprof.windows.skipped", sum(self.skipped.values())),
            )


def log_admission(kind: str, planned: float, admission: Admission, budget: float) -> None:
    """One line per adjustment the governor makes."""
    if not admission.reason:
        return
    if admission.reason == "warming up":
        _logger.debug("otelprof: %s window skipped: overhead not measured yet", kind)
    elif admission.reason == "skipped":
        _logger.info(
            "otelprof: %s window skipped to stay within the %.3g%% CPU budget"
            " (predicted cost %.3f CPU s, budget left %.3f CPU s)",
            kind,
            budget * 100,
            admission.predicted_cpu_seconds,
            max(0.0, admission.allowed_cpu_seconds),
        )
    else:
        _logger.info(
            "otelprof: %s window shortened from %.3g s to %.3g s to stay within the %.3g%% CPU"
            " budget (budget left %.3f CPU s)",
            kind,
            planned,
            admission.seconds,
            budget * 100,
            admission.allowed_cpu_seconds,
        )


class AgentCpuMeter:
    """Reads the CPU time of the agent's own threads from their kernel per-thread clocks.

    The sampler and the exporter are other modules' threads, so their CPU is read from outside,
    the way the stack sampler reads application threads (Linux only; elsewhere it reads 0 and
    the governor budgets windows alone).
    """

    def __init__(self) -> None:
        self._last: Dict[int, Tuple[object, int]] = {}
        self.available = sys.platform.startswith("linux")

    def delta_seconds(self) -> float:
        """Agent-thread CPU since the previous call."""
        if not self.available:
            return 0.0
        total = 0
        seen = set()
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is None or ident not in AGENT_THREAD_IDENTS or thread.native_id is None:
                continue
            seen.add(ident)
            clock = _thread_cpu_clock(thread.native_id)
            if clock is None:
                continue
            try:
                now = time.clock_gettime_ns(clock)
            except OSError:  # exited meanwhile
                continue
            last = self._last.get(ident)
            if last is not None and last[0] is thread and now >= last[1]:
                total += now - last[1]
            elif last is None or last[0] is not thread:
                total += now  # a new agent thread: everything it used so far is ours
            self._last[ident] = (thread, now)
        for ident in [i for i in self._last if i not in seen]:
            del self._last[ident]
        return total / 1e9


def _probe_work(rounds: int) -> int:
    # Calls and small allocations, the two things yappi and tracemalloc make slower.
    total = 0
    for i in range(rounds):
        total += len(_probe_item(i))
    return total


def _probe_item(i: int) -> Dict[str, object]:
    return {"i": i, "items": [i, i + 1], "name": "probe"}


class SlowdownProbe:
    """Times a fixed piece of Python on the window thread, outside and inside windows.

    Thread CPU time (not wall time) so waiting for the GIL does not count; the median of a few
    runs so one preemption does not either. A run takes well under a millisecond when no window
    is open. The probe is the agent's own code: its frames and allocations are left out of the
    window profiles.
    """

    def __init__(self, rounds: int = 200, repeats: int = 5) -> None:
        self.rounds = rounds
        self.repeats = repeats
        self.baseline_nanos: Optional[int] = None

    def measure(self) -> int:
        timings = []
        for _ in range(self.repeats):
            started = time.thread_time_ns()
            _probe_work(self.rounds)
            timings.append(time.thread_time_ns() - started)
        timings.sort()
        return timings[len(timings) // 2]

    def calibrate(self) -> None:
        """Outside windows: the reference time (kept as the lowest seen, the least disturbed)."""
        nanos = self.measure()
        if self.baseline_nanos is None or nanos < self.baseline_nanos:
            self.baseline_nanos = nanos

    def slowdown(self) -> Optional[float]:
        """Inside a window: how many times slower the probe runs than outside."""
        if not self.baseline_nanos:
            return None
        return self.measure() / self.baseline_nanos
