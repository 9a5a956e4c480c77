"""The always-on stack sampler: each tick charges every thread's stack its measured CPU and wall."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

from otelprof import _unpatched
from otelprof._threads import (
    AGENT_THREAD_IDENTS,
    AgentThread,
    gc_held_off,
    native_id_of,
    start_agent_thread,
    thread_of,
)
from otelprof.frames import FrameResolver, shared_resolver
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
from otelprof.samplers.rate import RateController

Tagger = Callable[[int], Hashable]
"""Given a thread ident, returns a hashable tag (e.g. the active span) recorded with its sample."""
Observer = Callable[[Hashable, Optional[CodeType], int, int], None]
"""Told of each tagged sample: (tag, innermost code, cpu ns, wall ns), for per-span accounting."""

# A stack key is the flat tuple (id(code0), lasti0, id(code1), lasti1, ...), leaf first: ints hash
# fast (hashing a code object walks its constants), and the code objects themselves are held in
# ``_codes`` so an id cannot be reused while a key naming it is alive.
_StackKey = Tuple[int, ...]
_TRUNCATED = -1

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
        # (stack key, thread ident, tag) -> [cpu ns, wall ns, count, the key's code objects]
        self.counts: Dict[Tuple[_StackKey, int, Hashable], List[object]] = {}
        self.thread_labels: Dict[int, Tuple[int, str]] = {}  # ident -> (native id, name)
        self.ticks = 0


class _ThreadState:
    """What the sampler keeps about one thread between ticks."""

    __slots__ = ("clock", "codes", "cpu_ns", "key", "native_id", "tag", "thread")

    def __init__(self, thread: Optional[threading.Thread], native_id: Optional[int]) -> None:
        self.thread = thread  # the Thread object (an ident can be reused by a new thread)
        self.native_id = native_id  # its kernel thread id, None where unknown
        self.clock = _thread_cpu_clock(native_id)  # its CPU clock id, None where there is none
        self.cpu_ns: Optional[int] = None  # the clock's reading at the last tick
        # The last tick's walk of its stack: reused while the thread uses no CPU (below).
        self.key: Optional[_StackKey] = None
        self.codes: List[CodeType] = []
        self.tag: Hashable = None  # and its tag then (the same reasoning holds for both)


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
        rate: Optional[RateController] = None,
        native: bool = True,
    ) -> None:
        self.interval_seconds = interval_seconds
        # The C walk where the extension has one (native=False: always the Python one), and
        # what it walks from: per thread ident, a frame, or the ident itself for walk_thread.
        walk = (_native_walk() if native else None) or walk_named("python")
        self._handles, self._walk = walk
        # For threads threading has no Thread for: their kernel id from their thread state.
        self._kernel_id_of = _native_thread_ids() if native else None
        self.rate = rate  # None: a fixed interval
        self.max_depth = max_depth
        self.tagger = tagger
        self.observer = observer
        self._clock_ns = clock_ns
        self._unix_clock_ns = unix_clock_ns
        self._lock = _unpatched.allocate_lock()
        self._interval = _Interval(unix_clock_ns())
        self._last_tick_ns: Optional[int] = None
        self._cpu_state: Dict[int, _ThreadState] = {}  # by thread ident
        self._stop = _unpatched.Event()
        self._stopping_ident: Optional[int] = None  # the thread in stop(), left out meanwhile
        self._thread: Optional[AgentThread] = None
        # Kept across drains: a code object's frames are decoded once while it lives.
        self._resolver = shared_resolver()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._stopping_ident = None
        self._last_tick_ns = None
        self._thread = start_agent_thread("otelprof-sampler", self._run)

    def stop(self, timeout_seconds: float = 2.0) -> None:
        # The thread stopping us may be walked by a tick still running (it hands the GIL over
        # while it waits): its stack is the agent's shutdown, not the application's work.
        self._stopping_ident = _unpatched.get_ident()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and not thread.is_current():
            thread.join(timeout_seconds)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def reset_after_fork(self) -> None:
        """In a fork child: forget the parent's data and thread (it does not exist here)."""
        self._lock = _unpatched.allocate_lock()
        self._interval = _Interval(self._unix_clock_ns())
        self._cpu_state.clear()
        self._last_tick_ns = None
        if self.rate is not None:
            self.rate.reset()
        self._thread = None
        self._stop = _unpatched.Event()
        self._stopping_ident = None

    @property
    def current_interval_seconds(self) -> float:
        """The interval between ticks now (longer than configured while the rate is lowered)."""
        return self.rate.interval if self.rate is not None else self.interval_seconds

    def _run(self) -> None:
        next_tick = time.monotonic()
        rate = self.rate
        while True:
            interval = rate.update() if rate is not None else self.interval_seconds
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
        with gc_held_off():  # other threads' frames are read: see gc_held_off for why
            handles = self._handles()
            self._sample_threads(handles)
            del handles  # don't keep other threads' frames alive until the next tick

    def _sample_threads(self, handles: Dict[int, Any]) -> None:
        now = self._clock_ns()
        last = self._last_tick_ns
        self._last_tick_ns = now
        # The first tick has no measured interval; charge the nominal one.
        wall_delta = now - last if last is not None else int(self.interval_seconds * 1e9)
        first_tick = last is None
        cpu_state = self._cpu_state
        tagger = self.tagger
        observer = self.observer
        max_depth = self.max_depth
        walk = self._walk
        with self._lock:
            interval = self._interval
            interval.ticks += 1
            counts = interval.counts
            for ident, handle in handles.items():
                if ident in AGENT_THREAD_IDENTS or ident == self._stopping_ident:
                    continue
                state = cpu_state.get(ident)
                thread = thread_of(ident)
                if state is None or state.thread is not thread:
                    state = cpu_state[ident] = _new_thread_state(ident, thread, self._kernel_id_of)
                    # A thread not seen before (or a reused ident). Its CPU clock counts from
                    # the thread's creation, so a thread born since the last tick is charged
                    # all of it: servers that start a thread per request would otherwise lose
                    # most of their CPU. Threads already running at the first tick only get a
                    # baseline.
                    if not first_tick:
                        state.cpu_ns = 0
                cpu_delta = _read_cpu(state)
                key = state.key
                if cpu_delta or key is None or state.clock is None:
                    # A thread that used no CPU since the last tick ran no bytecode, so its
                    # stack is the one walked then, and its span too (entering or leaving a
                    # span, or the loop switching tasks, runs bytecode on that thread): idle
                    # threads, most of a server's, cost a clock read instead of a walk and a
                    # tag. (Exact, and no frame is kept between ticks: holding one would keep
                    # its locals alive past its return.)
                    walked = walk(handle, max_depth)
                    if walked is None:
                        # It ran no Python code any more: between the list of threads and
                        # this walk the sampler ran bytecode, so other threads ran too.
                        continue
                    key, codes = walked
                    tag = tagger(ident) if tagger is not None else None
                    state.key, state.codes, state.tag = key, codes, tag
                else:
                    codes = state.codes
                    tag = state.tag
                if tag is not None and observer is not None:
                    observer(tag, codes[0] if codes else None, cpu_delta, wall_delta)
                entry = counts.get((key, ident, tag))
                if entry is None:
                    counts[(key, ident, tag)] = [cpu_delta, wall_delta, 1, codes]
                    if ident not in interval.thread_labels:
                        interval.thread_labels[ident] = _thread_label(ident, thread, state)
                else:
                    entry[0] += cpu_delta  # type: ignore[operator]
                    entry[1] += wall_delta  # type: ignore[operator]
                    entry[2] += 1  # type: ignore[operator]
        if len(cpu_state) > len(handles):
            for ident in [i for i in cpu_state if i not in handles]:
                del cpu_state[ident]

    # -- handing data over -----------------------------------------------------------------------

    def drain(self) -> StackSnapshot:
        """Return what was recorded since the last drain and start a new interval."""
        now_unix = self._unix_clock_ns()
        with self._lock:
            interval, self._interval = self._interval, _Interval(now_unix)
        stacks = StackInterner(self._resolver)
        samples = []
        for (key, ident, tag), (cpu, wall, count, codes) in interval.counts.items():
            native_id, name = interval.thread_labels.get(ident, (ident, ""))
            samples.append(
                ThreadSample(
                    stack=stacks.stack(key, codes),  # type: ignore[arg-type]
                    thread_id=native_id,
                    thread_name=name,
                    tag=tag,
                    cpu_nanos=cpu,  # type: ignore[arg-type]
                    wall_nanos=wall,  # type: ignore[arg-type]
                    count=count,  # type: ignore[arg-type]
                )
            )
        return StackSnapshot(interval.start_unix_nano, now_unix, tuple(samples), interval.ticks)


Walk = Callable[[Any, int], Optional[Tuple[_StackKey, List[CodeType]]]]
"""(handle, max depth) -> (stack key, code objects), None for a thread that ran no more code."""
Handles = Callable[[], Dict[int, Any]]
"""() -> per thread ident, the handle its walk takes."""


def _walk(frame: Optional[FrameType], max_depth: int) -> Tuple[_StackKey, List[CodeType]]:
    """A thread's stack key and code objects, leaf first (``otelprof._native.walk_stack`` is the
    same in C, and this stays its reference)."""
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


def walk_named(name: str) -> Tuple[Handles, Walk]:
    """A stack walk and what it walks from: ``thread``, ``stack`` or ``python``.

    ``thread``: ``otelprof._native.walk_thread`` (CPython 3.11-3.13 with a GIL) reads each
    thread's interpreter frames and makes no frame object. ``stack``: ``walk_stack`` (3.11+
    with a GIL) follows frame objects from ``sys._current_frames()``, which makes one for every
    running frame it reaches, for the application's threads to free when their functions
    return. ``python``: ``_walk``, the same from Python. ImportError for a C walk the extension
    was built without.
    """
    if name == "thread":
        from otelprof._native import thread_handles, walk_thread

        return thread_handles, walk_thread
    if name == "stack":
        from otelprof._native import walk_stack

        return sys._current_frames, walk_stack
    if name == "python":
        return sys._current_frames, _walk
    raise ValueError(f"no stack walk named {name!r} (thread, stack or python)")


def _native_walk() -> Optional[Tuple[Handles, Walk]]:
    """The best C walk the extension was built with, None without one."""
    for name in ("thread", "stack"):
        try:
            return walk_named(name)
        except ImportError:
            pass
    return None


def _new_thread_state(
    ident: int,
    thread: Optional[threading.Thread],
    kernel_id_of: Optional[Callable[[int], Optional[int]]],
) -> _ThreadState:
    native_id = native_id_of(ident, thread)
    if native_id is None and thread is None and kernel_id_of is not None:
        # Started by C code or _thread (gevent's thread pool among them): no Thread, so no
        # native_id, but its CPU clock is its own all the same.
        native_id = kernel_id_of(ident)
    return _ThreadState(thread, native_id)


def _native_thread_ids() -> Optional[Callable[[int], Optional[int]]]:
    """``otelprof._native.thread_native_id`` where the extension has it (3.11+), else None."""
    try:
        from otelprof._native import thread_native_id
    except ImportError:
        return None
    lookup: Callable[[int], Optional[int]] = thread_native_id
    return lookup


def _read_cpu(state: _ThreadState) -> int:
    """The thread's CPU time since the last reading (0 when unknown), and a new reading."""
    clock = state.clock
    if clock is None:
        return 0
    try:
        current: Optional[int] = time.clock_gettime_ns(clock)
    except OSError:
        # The thread exited between the listing and now, or the clock names no thread of this
        # process (a stale thread id): stop trusting it, so the thread is walked at every tick
        # instead of keeping a stack that "used no CPU".
        current = None
        state.clock = None
    previous, state.cpu_ns = state.cpu_ns, current
    if current is None or previous is None or current < previous:
        return 0
    return current - previous


def _decode(key: _StackKey, codes: Sequence[CodeType], resolver: FrameResolver) -> Stack:
    """The frames of a stack key; ``codes`` are its code objects, leaf first, as walked."""
    frames = [resolver.frame(code, key[2 * i + 1]) for i, code in enumerate(codes)]
    if key and key[-1] == _TRUNCATED:
        frames.append(TRUNCATED_FRAME)
    return tuple(frames)


class StackInterner:
    """Decodes each distinct stack key once and hands out one object per distinct stack.

    A thread-per-request server records the same stack under many (thread, span) pairs, so
    one export decodes each key once instead of once per pair; and equal stacks being the same
    object lets later steps (merging, the builder's stack table) find them by identity instead
    of hashing a tuple of frames every time.
    """

    def __init__(self, resolver: FrameResolver) -> None:
        self._resolver = resolver
        self._by_key: Dict[_StackKey, Stack] = {}
        self._by_value: Dict[Stack, Stack] = {}

    def stack(self, key: _StackKey, codes: Sequence[CodeType]) -> Stack:
        stack = self._by_key.get(key)
        if stack is None:
            decoded = _decode(key, codes, self._resolver)
            # Keys that differ only in instruction offsets within one line decode alike.
            stack = self._by_key[key] = self._by_value.setdefault(decoded, decoded)
        return stack


def _thread_label(
    ident: int, thread: Optional[threading.Thread], state: _ThreadState
) -> Tuple[int, str]:
    if thread is None:
        return state.native_id or ident, f"Thread-{ident}"
    return (state.native_id or ident), thread.name


def snapshot_to_profiles(snapshot: StackSnapshot, period_nanos: int) -> List[Profile]:
    """The ``cpu`` and ``wall`` profiles of a snapshot (thread and tag become attributes/links)."""
    merged: Dict[Tuple[int, Attributes, Optional[SpanLink]], List[Any]] = {}
    # Equal stacks as one object, found by identity (hashing a stack hashes every frame), and
    # one attribute tuple per (thread, tag), so the builder can intern both by identity too.
    stacks: Dict[int, Stack] = {}
    by_value: Dict[Stack, Stack] = {}
    labels: Dict[Tuple[int, str, int], Tuple[Attributes, Optional[SpanLink]]] = {}
    for sample in snapshot.samples:
        stack = stacks.get(id(sample.stack))
        if stack is None:
            stack = stacks[id(sample.stack)] = by_value.setdefault(sample.stack, sample.stack)
        label_key = (sample.thread_id, sample.thread_name, id(sample.tag))
        label = labels.get(label_key)
        if label is None:
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
            label = labels[label_key] = (attrs, tag.link)
        key = (id(stack), *label)
        totals = merged.get(key)
        if totals is None:
            totals = merged[key] = [0, 0, stack]
        totals[0] += sample.cpu_nanos
        totals[1] += sample.wall_nanos
    duration = max(0, snapshot.end_unix_nano - snapshot.start_unix_nano)
    profiles = []
    for column, value_type in ((0, CPU_NANOS), (1, WALL_NANOS)):
        samples = tuple(
            Sample(stack=values[2], value=values[column], attributes=attrs, link=link)
            for (_, attrs, link), values in merged.items()
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
