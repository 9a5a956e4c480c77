"""Runs precise and memory windows one at a time on an agent thread, within the overhead budget."""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import time
from typing import Callable, Deque, Hashable, List, Optional, Set, Tuple, Union

from otelprof import _unpatched
from otelprof._threads import AgentThread, start_agent_thread
from otelprof.config import ProfilerConfig
from otelprof.model import Attributes, Profile
from otelprof.samplers.gc import GCSampler
from otelprof.samplers.stack import Tagger
from otelprof.windows import signals
from otelprof.windows.governor import (
    MIN_HORIZON_SECONDS,
    AgentCpuMeter,
    OverheadGovernor,
    SlowdownProbe,
    log_admission,
)
from otelprof.windows.handle import WindowHandle, window_seconds
from otelprof.windows.leaks import LeakCandidate, LeakDetector, leak_profiles
from otelprof.windows.memory import HeapObservation, MemoryEngine, StackCache
from otelprof.windows.precise import PreciseEngine, SpanToTag, WindowUnavailable
from otelprof.windows.scheduler import (
    KINDS,
    MEMORY,
    PRECISE,
    SCHEDULED,
    SIGNAL,
    WHOLE_RUN,
    PlannedWindow,
    WindowScheduler,
    WindowSpec,
)

_logger = logging.getLogger("otelprof")

Engine = Union[PreciseEngine, MemoryEngine]

USAGE_PERIOD_SECONDS = 5.0  # how often the governor's CPU accounting is refreshed when idle
# How often an open memory window checks tracemalloc's own memory and samples the live-blocks
# trend (the more samples, the less the trend depends on what happens to be in flight).
MEMORY_POLL_SECONDS = 0.025
WHOLE_RUN_MEMORY_CAP_MIB = 256.0  # whole programs trace their entire heap: a larger default cap
WHOLE_RUN_CLOSE_SECONDS = 60.0  # at exit, how long a whole-run window may take to close
_MAX_COLLECTED = 256


class WindowManager:
    """Owns the scheduler, the governor, the engines, the leak detector and the GC sampler.

    With a :class:`~otelprof.profiler.Profiler`, window profiles are handed over at each export
    by :meth:`contribute`. ``standalone`` managers (``otelprof.precise()`` without a running
    profiler) schedule nothing and keep results only in the handles; their thread exits when idle.
    """

    def __init__(
        self,
        config: ProfilerConfig,
        tagger: Callable[[], Optional[Tagger]] = lambda: None,
        span_to_tag: Optional[SpanToTag] = None,
        standalone: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.config = config
        self.standalone = standalone
        self.span_to_tag = span_to_tag
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.governor = self._new_governor()
        self.meter = AgentCpuMeter()
        self.probe = SlowdownProbe()
        self.leaks = LeakDetector(config.leak_min_windows, config.leak_min_bytes_per_second)
        self.gc: Optional[GCSampler] = None
        if config.gc_profiling and not standalone:
            self.gc = GCSampler(max_depth=config.max_stack_depth, tagger=tagger)
        self.scheduler = WindowScheduler(self._specs(), clock, self._rng)
        self._stacks = StackCache()
        self._collected: Deque[Profile] = collections.deque(maxlen=_MAX_COLLECTED)
        self._unavailable_logged: Set[str] = set()
        self._init_runtime_state()

    def _init_runtime_state(self) -> None:
        self._lock = _unpatched.allocate_lock()
        # The runner waits on these: real locks, also under gevent (see _unpatched).
        self._wake = _unpatched.Event()
        self._window_wake = _unpatched.Event()
        self._stopping = _unpatched.Event()
        self._thread: Optional[AgentThread] = None
        self._current: Optional[Engine] = None
        self._last_usage: Optional[Tuple[float, float]] = None
        self._usage_lock = _unpatched.allocate_lock()
        self._window_app_cpu = 0.0  # application CPU seen while the current window is open
        if not hasattr(self, "_signal"):  # a fork child keeps the handler its parent installed
            self._signal = signals.WindowSignal()

    def _new_governor(self) -> OverheadGovernor:
        # The budget holds over at least two of the longest intervals, so that a rare but
        # expensive window (an hourly memory window) can be paid for by the time between.
        config = self.config
        longest = max(config.precise_interval_seconds, config.memory_interval_seconds)
        horizon = max(MIN_HORIZON_SECONDS, 2 * longest)
        return OverheadGovernor(config.overhead_budget, horizon, clock=self._clock)

    def _specs(self) -> List[WindowSpec]:
        config = self.config
        if self.standalone or config.whole_run:
            return []
        return [
            WindowSpec(PRECISE, config.precise_window_seconds, config.precise_interval_seconds),
            WindowSpec(MEMORY, config.memory_window_seconds, config.memory_interval_seconds),
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the runner, the GC sampler and the signal; failures are logged, never raised."""
        try:
            self._start()
        except Exception:
            _logger.exception("otelprof: windows could not start; the stack sampler runs on")

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self.scheduler = WindowScheduler(self._specs(), self._clock, self._rng)
            if self.gc is not None:
                self.gc.start()
            if self.config.window_signal:
                self._signal.install(self.config.window_signal)
            if not self.standalone:
                self._thread = start_agent_thread("otelprof-windows", self._run)
        whole_run = self.config.whole_run
        if whole_run is not None and not self.standalone:
            handle = self.request(whole_run, None, WHOLE_RUN)
            # The program should be measured from its first line on: wait until tracing runs.
            if not handle.wait_opened():
                _logger.warning("otelprof: the whole-run %s window did not open", whole_run)

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Close the open window (its profiles are kept for the last export) and stop."""
        self._stopping.set()
        self._wake.set()
        self._window_wake.set()
        thread = self._thread
        if thread is not None and not thread.is_current():
            # A whole-run window holds the program's only profile: worth a longer wait.
            whole_run = self.config.whole_run is not None and not self.standalone
            thread.join(
                max(timeout_seconds, WHOLE_RUN_CLOSE_SECONDS) if whole_run else timeout_seconds
            )
        engine = self._current
        if engine is not None:
            if thread is not None and thread.is_alive():
                _logger.warning("otelprof: a window did not close in time; stopping its engine")
            # Safe from this thread: the engines lock their reads against it.
            engine.restore()
        self._thread = None
        if self.gc is not None:
            self.gc.stop()
        self._signal.uninstall()
        for planned in self.scheduler.pending():
            if self.scheduler.cancel(planned.request) and isinstance(planned.request, WindowHandle):
                planned.request.finish(error="the profiler stopped before the window opened")

    def reset_after_fork(self) -> None:
        """In a fork child: undo an engine inherited mid-window, forget the parent's state."""
        engine = self._current
        if engine is not None:
            engine.restore()
        self._init_runtime_state()
        self._collected.clear()
        self.governor = self._new_governor()
        self.leaks.reset()
        if self.gc is not None:
            self.gc.reset_after_fork()

    # -- requests ------------------------------------------------------------------------------

    def request(
        self, kind: str, seconds: Optional[float], trigger: str = "on_demand"
    ) -> WindowHandle:
        """Queue a window; it opens as soon as no other window is open.

        Raises TypeError or ValueError for a ``seconds`` that is not None or a number of seconds
        greater than 0 and at most 86400 (see :func:`window_seconds`).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        seconds = window_seconds(seconds)
        handle = WindowHandle(kind, seconds, trigger)
        handle._on_close = lambda: self._close(handle)
        with self._lock:
            self.scheduler.request(kind, seconds, trigger, handle)
            if self.standalone and (self._thread is None or not self._thread.is_alive()):
                self._stopping.clear()
                self._thread = start_agent_thread("otelprof-windows", self._run)
        self._wake.set()
        return handle

    def _close(self, handle: WindowHandle) -> None:
        if self.scheduler.cancel(handle):
            handle.finish(error="closed before it opened")
        self._window_wake.set()

    # -- the runner thread ---------------------------------------------------------------------

    def _run(self) -> None:
        self._account_usage(in_window=False)
        while not self._stopping.is_set():
            self._wake.clear()
            if self._signal.consume():
                self._queue_signal_windows()
            self._account_usage(in_window=False)
            planned = self.scheduler.due()
            if planned is not None:
                self._run_window(planned)
                continue
            if self.standalone:
                with self._lock:
                    if not self.scheduler.has_demands:
                        self._thread = None
                        return
                continue
            timeout = min(self.scheduler.seconds_until_next(), USAGE_PERIOD_SECONDS)
            if self._signal.installed:
                timeout = min(timeout, signals.POLL_SECONDS)
            self._wake.wait(timeout)

    def _queue_signal_windows(self) -> None:
        default = ProfilerConfig()
        precise = self.config.precise_window_seconds or default.precise_window_seconds
        memory = self.config.memory_window_seconds or default.memory_window_seconds
        _logger.info("otelprof: window signal received: opening a precise and a memory window")
        self.scheduler.request(PRECISE, precise, SIGNAL)
        self.scheduler.request(MEMORY, memory, SIGNAL)

    def _make_engine(self, kind: str, trigger: str) -> Engine:
        config = self.config
        if kind == PRECISE:
            return PreciseEngine(config.precise_clock, span_to_tag=self.span_to_tag)
        cap_mib = config.memory_overhead_cap_mib
        if trigger == WHOLE_RUN and cap_mib == ProfilerConfig.memory_overhead_cap_mib:
            cap_mib = WHOLE_RUN_MEMORY_CAP_MIB
        return MemoryEngine(config.memory_traceback_depth, int(cap_mib * 2**20), self._stacks)

    def _run_window(self, planned: PlannedWindow) -> None:
        handle = planned.request if isinstance(planned.request, WindowHandle) else None
        if handle is not None and handle.close_requested:
            handle.finish(error="closed before it opened")
            return
        engine = self._make_engine(planned.kind, planned.trigger)
        length = planned.length_seconds
        if planned.trigger == SCHEDULED and length is not None:
            admission = self.governor.admit(engine.cost_key, length)
            log_admission(planned.kind, length, admission, self.governor.budget)
            if admission.seconds <= 0:
                return
            length = admission.seconds
        else:
            self.governor.note_on_demand(engine.cost_key)
        attributes: Attributes = (
            ("otelprof.engine", "yappi" if planned.kind == PRECISE else "tracemalloc"),
            ("otelprof.window.kind", planned.kind),
            ("otelprof.window.trigger", planned.trigger),
        )
        self._account_usage(in_window=False)
        self.probe.calibrate()
        self._window_app_cpu = 0.0
        started = self._clock()
        started_unix = time.time_ns()
        try:
            engine.open()
        except WindowUnavailable as error:
            self._log_unavailable(planned.kind, str(error))
            if handle is not None:
                handle.finish(error=str(error))
            return
        except Exception as error:
            _logger.exception("otelprof: could not open a %s window", planned.kind)
            engine.restore()
            if handle is not None:
                handle.finish(error=repr(error))
            return
        self._current = engine  # from here on, usage is accounted as the window's
        profiles: List[Profile] = []
        leaks: List[LeakCandidate] = []
        error_text: Optional[str] = None
        slowdown: Optional[float] = None
        try:
            if handle is not None:
                handle.mark_opened()
            checkpoint = isinstance(engine, MemoryEngine) and planned.trigger == WHOLE_RUN
            closed_early = self._hold_open(engine, started, length, handle, checkpoint)
            if handle is not None:
                handle.closed_early = closed_early
            slowdown = self.probe.slowdown() if engine.running else None
            if isinstance(engine, PreciseEngine):
                duration = time.time_ns() - started_unix
                profiles = engine.close(started_unix, duration, attributes)
            else:
                profiles, observation = engine.close(attributes)
                leaks = self._observe(observation, profiles)
        except Exception as error:
            _logger.exception("otelprof: the %s window failed; its data is dropped", planned.kind)
            error_text = repr(error)
        finally:
            engine.restore()
            self._account_usage(in_window=True)
            self._current = None
            self.governor.record_window(
                engine.cost_key, self._clock() - started, self._window_app_cpu, slowdown
            )
        self._deliver(profiles, handle, error_text, leaks)

    def _hold_open(
        self,
        engine: Engine,
        started: float,
        length: Optional[float],
        handle: Optional[WindowHandle],
        checkpoint: bool,
    ) -> Optional[str]:
        """Wait until the window's time is up, it is closed, or the engine must stop early."""
        deadline = None if length is None else started + length
        # A memory window's leak observation starts halfway (see MemoryEngine.midpoint).
        midpoint = None
        if isinstance(engine, MemoryEngine) and not checkpoint and length is not None:
            midpoint = started + length / 2
        snapshot_every = self.config.memory_snapshot_interval_seconds
        next_checkpoint = started + snapshot_every
        poll = MEMORY_POLL_SECONDS if isinstance(engine, MemoryEngine) else USAGE_PERIOD_SECONDS
        while not self._stopping.is_set() and not (handle is not None and handle.close_requested):
            if isinstance(engine, MemoryEngine):
                engine.sample()
            reason = engine.should_close()
            if reason is not None:
                _logger.info("otelprof: %s window closed early: %s", engine.kind, reason)
                return reason
            now = self._clock()
            if deadline is not None and now >= deadline:
                return None
            if midpoint is not None and now >= midpoint and isinstance(engine, MemoryEngine):
                engine.midpoint()
                midpoint = None
                # The application stood still while the heap was collected and read: give the
                # second half as much of its time as the first had.
                if deadline is not None:
                    deadline += self._clock() - now
                continue
            if checkpoint and now >= next_checkpoint and isinstance(engine, MemoryEngine):
                profiles: List[Profile] = []
                observation = engine.checkpoint()
                self._deliver_partial(profiles, self._observe(observation, profiles))
                next_checkpoint = now + snapshot_every
            wait = poll
            if deadline is not None:
                wait = min(wait, deadline - now)
            if midpoint is not None:
                wait = min(wait, midpoint - now)
            if checkpoint:
                wait = min(wait, max(0.0, next_checkpoint - now))
            self._window_wake.wait(max(0.0, wait))
            self._window_wake.clear()
        return None

    def _observe(
        self, observation: HeapObservation, profiles: List[Profile]
    ) -> List[LeakCandidate]:
        candidates = self.leaks.observe(observation)
        if candidates:
            what = "heap snapshots" if observation.contiguous else "memory windows"
            self.leaks.log(candidates, what)
            profiles.extend(
                leak_profiles(
                    candidates,
                    observation.start_unix_nano,
                    observation.end_unix_nano,
                    (("otelprof.leak.observations", candidates[0].observations),),
                )
            )
        return candidates

    def _deliver_partial(self, profiles: List[Profile], leaks: List[LeakCandidate]) -> None:
        if not self.standalone:
            with self._lock:
                self._collected.extend(profiles)

    def _deliver(
        self,
        profiles: List[Profile],
        handle: Optional[WindowHandle],
        error: Optional[str],
        leaks: List[LeakCandidate],
    ) -> None:
        self._deliver_partial(profiles, leaks)
        if handle is not None:
            handle.finish(profiles, error, leaks)

    def _account_usage(self, in_window: bool) -> None:
        """Feed the governor the process and agent CPU since the last call (any thread)."""
        with self._usage_lock:
            now, cpu = time.monotonic(), time.process_time()
            agent = self.meter.delta_seconds()
            last, self._last_usage = self._last_usage, (now, cpu)
            if last is None:
                return
            process = max(0.0, cpu - last[1])
            self.governor.record_usage(process, agent, now - last[0], in_window)
            if in_window:
                self._window_app_cpu += max(0.0, process - agent)

    def _log_unavailable(self, kind: str, reason: str) -> None:
        if reason not in self._unavailable_logged:
            self._unavailable_logged.add(reason)
            _logger.info("otelprof: %s window skipped: %s", kind, reason)

    # -- export ----------------------------------------------------------------------------------

    def contribute(
        self,
        profiles: List[Profile],
        period_nanos: int,
        retag: Optional[Callable[[Hashable], Hashable]] = None,
    ) -> List[Profile]:
        """At each export: GC folded into cpu/wall, window profiles added, governor counters.

        ``retag`` completes the GC samples' tags as the sampler's were (their endpoint)."""
        if self.gc is not None:
            profiles = self.gc.fold_into(profiles, period_nanos, retag)
        with self._lock:
            extra = list(self._collected)
            self._collected.clear()
        if not self.standalone and self._last_usage is not None:
            self._account_usage(in_window=self._current is not None)  # counters up to date
        counters = self.governor.attributes()
        return [_stamp(profile, counters) for profile in [*profiles, *extra]]


def _stamp(profile: Profile, counters: Attributes) -> Profile:
    merged = dict(profile.attributes)
    merged.update(counters)
    return dataclasses.replace(profile, attributes=tuple(sorted(merged.items())))
