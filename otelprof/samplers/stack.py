"""The always-on stack sampler: each tick charges every thread's stack its measured CPU and wall."""

from __future__ import annotations

import gc
import sys
import threading
import time
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Callable, Dict, Hashable, List, Optional, Tuple

from otelprof._threads import AGENT_THREAD_IDENTS, start_agent_thread
from otelprof.frames import FrameResolver
from otelprof.model import (
    CPU_NANOS,
    TRUNCATED_FRAME,
    WALL_NANOS,
    Attributes,
    Profile,
    Sample,
    SampleTag,
    SpanLink,
    Stack,
)

Tagger = Callable[[int], Hashable]
"""Given a thread ident, returns a hashable tag (e.g. the active span) recorded with its sample."""
Observer = Callable[[Hashable, Optional[CodeType], int, int], None]
"""Told of each tagged sample: (tag, innermost code, cpu ns, wall ns), for per-span accounting."""

# A stack key is the flat tuple (id(code0), lasti0, id(code1), lasti1, ...), leaf first: ints hash
# fast (hashing a code object walks its constants), and the code objects themselves are held in
# ``_codes`` so an id cannot be reused while a key naming it is alive.
_StackKey = Tuple[int, ...]
_TRUNCATED = -1

_ThreadMap = Dict[int, threading.Thread]
_NO_TAG = SampleTag()


def _thread_cpu_clock(native_id: Optional[int]) -> Optional[int]:
    """The CPU-time clock of a thread, derived from its kernel thread id (Linux only).

    ``time.pthread_getcpuclockid(ident)`` would dereference a pthread handle, which is undefined
    behaviour once that thread has exited; the kernel's clock id for a tid just fails with EINVAL
    for a dead thread. Encoding: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) in the kernel.
    """
    if native_id is None or not sys.platform.startswith("linux"):
        return None
    return ((~native_id) << 3) | 6


@dataclass(frozen=True)
class ThreadSample:
    """Time charged to one stack of one thread (under one tag) over an interval."""

    stack: Stack
    thread_id: int
    thread_name: str
    tag: Hashable
    cpu_nanos: int
    wall_nanos: int
    count: int


@dataclass(frozen=True)
class StackSnapshot:
    """Everything the sampler recorded between two drains."""

    start_unix_nano: int
    end_unix_nano: int
    samples: Tuple[ThreadSample, ...]
    ticks: int


class _Interval:
    """Mutable aggregates of one export interval (swapped out whole by ``drain``)."""

    def __init__(self, start_unix_nano: int) -> None:
        self.start_unix_nano = start_unix_nano
        # (stack key, thread ident, tag) -> [cpu ns, wall ns, count]
        self.counts: Dict[Tuple[_StackKey, int, Hashable], List[int]] = {}
        self.codes: Dict[int, CodeType] = {}
        self.thread_labels: Dict[int, Tuple[int, str]] = {}  # ident -> (native id, name)
        self.ticks = 0


class StackSampler:
    """Samples all threads but the agent's own; see DESIGN.md "Engines" for the reasoning."""

    def __init__(
        self,
        interval_seconds: float = 0.01,
        max_depth: int = 128,
        tagger: Optional[Tagger] = None,
        observer: Optional[Observer] = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        unix_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.max_depth = max_depth
        self.tagger = tagger
        self.observer = observer
        self._clock_ns = clock_ns
        self._unix_clock_ns = unix_clock_ns
        self._lock = threading.Lock()
        self._interval = _Interval(unix_clock_ns())
        self._last_tick_ns: Optional[int] = None
        # ident -> (Thread object it belonged to, cpu clock id, last cpu reading)
        self._cpu_state: Dict[int, Tuple[object, Optional[int], Optional[int]]] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._last_tick_ns = None
        self._thread = start_agent_thread("otelprof-sampler", self._run)

    def stop(self, timeout_seconds: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_seconds)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def reset_after_fork(self) -> None:
        """In a fork child: forget the parent's data and thread (it does not exist here)."""
        self._lock = threading.Lock()
        self._interval = _Interval(self._unix_clock_ns())
        self._cpu_state.clear()
        self._last_tick_ns = None
        self._thread = None
        self._stop = threading.Event()

    def _run(self) -> None:
        interval = self.interval_seconds
        next_tick = time.monotonic()
        while True:
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:
                # Fell behind (GIL contention, suspended process): don't burst to catch up.
                next_tick = time.monotonic()
                delay = 0.0
            if self._stop.wait(delay):
                return
            self.sample_once()

    # -- the hot path --------------------------------------------------------------------------

    def sample_once(self) -> None:
        """Take one sample of every thread (public so tests can drive it without a thread)."""
        now = self._clock_ns()
        last = self._last_tick_ns
        self._last_tick_ns = now
        # The first tick has no measured interval; charge the nominal one.
        wall_delta = now - last if last is not None else int(self.interval_seconds * 1e9)
        first_tick = last is None
        frames = _current_frames()
        active: _ThreadMap = threading._active  # type: ignore[attr-defined]
        cpu_state = self._cpu_state
        tagger = self.tagger
        observer = self.observer
        max_depth = self.max_depth
        with self._lock:
            interval = self._interval
            interval.ticks += 1
            counts = interval.counts
            for ident, frame in frames.items():
                if ident in AGENT_THREAD_IDENTS:
                    continue
                cpu_delta = self._cpu_delta(ident, active.get(ident), cpu_state, first_tick)
                key, codes = _walk(frame, max_depth)
                tag = tagger(ident) if tagger is not None else None
                if tag is not None and observer is not None:
                    observer(tag, codes[0] if codes else None, cpu_delta, wall_delta)
                entry = counts.get((key, ident, tag))
                if entry is None:
                    counts[(key, ident, tag)] = [cpu_delta, wall_delta, 1]
                    for code in codes:
                        interval.codes[id(code)] = code
                    if ident not in interval.thread_labels:
                        interval.thread_labels[ident] = _thread_label(ident, active.get(ident))
                else:
                    entry[0] += cpu_delta
                    entry[1] += wall_delta
                    entry[2] += 1
        if len(cpu_state) > len(frames):
            for ident in [i for i in cpu_state if i not in frames]:
                del cpu_state[ident]
        del frames  # don't keep other threads' frames alive until the next tick

    @staticmethod
    def _cpu_delta(
        ident: int,
        thread: Optional[threading.Thread],
        cpu_state: Dict[int, Tuple[object, Optional[int], Optional[int]]],
        first_tick: bool,
    ) -> int:
        state = cpu_state.get(ident)
        if state is None or state[0] is not thread:
            # A thread not seen before (or a reused ident). Its CPU clock counts from the
            # thread's creation, so a thread born since the last tick is charged all of it:
            # servers that start a thread per request would otherwise lose most of their CPU.
            # Threads already running when profiling starts only get a baseline.
            clock = _thread_cpu_clock(getattr(thread, "native_id", None))
            previous = None if first_tick else 0
        else:
            _, clock, previous = state
        if clock is None:
            cpu_state[ident] = (thread, None, None)
            return 0
        try:
            current: Optional[int] = time.clock_gettime_ns(clock)
        except OSError:  # the thread exited between _current_frames() and now
            current = None
        cpu_state[ident] = (thread, clock, current)
        if current is None or previous is None or current < previous:
            return 0
        return current - previous

    # -- handing data over -----------------------------------------------------------------------

    def drain(self) -> StackSnapshot:
        """Return what was recorded since the last drain and start a new interval."""
        now_unix = self._unix_clock_ns()
        with self._lock:
            interval, self._interval = self._interval, _Interval(now_unix)
        resolver = FrameResolver()
        codes = interval.codes
        samples = []
        for (key, ident, tag), (cpu, wall, count) in interval.counts.items():
            native_id, name = interval.thread_labels.get(ident, (ident, ""))
            samples.append(
                ThreadSample(
                    stack=_decode(key, codes, resolver),
                    thread_id=native_id,
                    thread_name=name,
                    tag=tag,
                    cpu_nanos=cpu,
                    wall_nanos=wall,
                    count=count,
                )
            )
        return StackSnapshot(interval.start_unix_nano, now_unix, tuple(samples), interval.ticks)


def _current_frames() -> Dict[int, FrameType]:
    """``sys._current_frames()`` with the cyclic GC held off while it runs.

    It holds the interpreter's thread-list lock while it allocates; a collection started there
    runs gc callbacks and finalizers, Python code that may hand the GIL to a thread waiting for
    that same lock (one starting or exiting), and neither can go on (seen with the GC sampler's
    callback on a thread-per-request server). If the application toggles the GC in these few
    microseconds its choice can be lost; that is the lesser evil.
    """
    if not gc.isenabled():
        return sys._current_frames()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        gc.enable()


def _walk(frame: Optional[FrameType], max_depth: int) -> Tuple[_StackKey, List[CodeType]]:
    key: List[int] = []
    codes: List[CodeType] = []
    depth = 0
    while frame is not None:
        if depth == max_depth:
            key.append(_TRUNCATED)
            break
        code = frame.f_code
        codes.append(code)
        key.append(id(code))
        key.append(frame.f_lasti)
        frame = frame.f_back
        depth += 1
    return tuple(key), codes


def _decode(key: _StackKey, codes: Dict[int, CodeType], resolver: FrameResolver) -> Stack:
    frames = []
    for position in range(0, len(key) - 1, 2):
        frames.append(resolver.frame(codes[key[position]], key[position + 1]))
    if key and key[-1] == _TRUNCATED:
        frames.append(TRUNCATED_FRAME)
    return tuple(frames)


def _thread_label(ident: int, thread: Optional[threading.Thread]) -> Tuple[int, str]:
    if thread is None:
        return ident, f"Thread-{ident}"
    return (thread.native_id or ident), thread.name


def snapshot_to_profiles(snapshot: StackSnapshot, period_nanos: int) -> List[Profile]:
    """The ``cpu`` and ``wall`` profiles of a snapshot (thread and tag become attributes/links)."""
    merged: Dict[Tuple[Stack, Attributes, Optional[SpanLink]], List[int]] = {}
    for sample in snapshot.samples:
        tag = sample.tag if isinstance(sample.tag, SampleTag) else _NO_TAG
        attrs: Attributes = tuple(
            sorted(
                (
                    ("thread.id", sample.thread_id),
                    ("thread.name", sample.thread_name),
                    *tag.attributes,
                )
            )
        )
        totals = merged.setdefault((sample.stack, attrs, tag.link), [0, 0])
        totals[0] += sample.cpu_nanos
        totals[1] += sample.wall_nanos
    duration = max(0, snapshot.end_unix_nano - snapshot.start_unix_nano)
    profiles = []
    for column, value_type in ((0, CPU_NANOS), (1, WALL_NANOS)):
        samples = tuple(
            Sample(stack=stack, value=values[column], attributes=attrs, link=link)
            for (stack, attrs, link), values in merged.items()
            if values[column] > 0
        )
        profiles.append(
            Profile(
                sample_type=value_type,
                period_type=value_type,
                period=period_nanos,
                start_unix_nano=snapshot.start_unix_nano,
                duration_nano=duration,
                samples=samples,
            )
        )
    return profiles
