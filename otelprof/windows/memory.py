"""Memory windows: tracemalloc, bounded in depth and in its own memory, turned into heap profiles.

tracemalloc keeps a record of every *live* traced block and forgets a block when it is freed,
so what a window can see is what is still alive when it closes:

- ``alloc_space`` / ``alloc_objects``: blocks allocated during the window and still live at its
  end (when the application was already tracing, the per-stack increase: a lower bound);
- ``inuse_space`` / ``inuse_objects``: the net growth of live bytes per stack from the window's
  start to its end (only stacks that grew). When the window started tracemalloc itself nothing
  was traced at the start, so both pairs hold the same numbers.

Short-lived allocations that were freed before the window closed leave no record at all.
"""

from __future__ import annotations

import array
import gc
import logging
import math
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar

from otelprof._threads import application_gc_enabled
from otelprof.model import TRUNCATED_FRAME, Attributes, Profile, Sample, Stack, ValueType
from otelprof.windows.names import AGENT_DIR, FunctionNames

_logger = logging.getLogger("otelprof")

ALLOC_SPACE = ValueType("alloc_space", "bytes")
ALLOC_OBJECTS = ValueType("alloc_objects", "count")
INUSE_SPACE = ValueType("inuse_space", "bytes")
INUSE_OBJECTS = ValueType("inuse_objects", "count")
SPACE_PERIOD = ValueType("space", "bytes")
"""pprof heap profiles (Go's among them) use ``space``/``bytes`` as period type of all four."""

Heap = Dict[Stack, Tuple[int, int]]
"""Stack (leaf first) -> (bytes, blocks)."""
K = TypeVar("K")


@dataclass(frozen=True)
class HeapObservation:
    """The per-stack change of the live heap over one window (or one snapshot period).

    ``contiguous`` is True when tracing went on between observations (``otelprof run
    --memory``), so successive observations see every change; windowed observations each see
    only what was allocated while they were open. ``heap_blocks_per_second`` is the trend of the
    process's count of live memory blocks (``sys.getallocatedblocks()``, sampled throughout the
    period, or a window's first half when it is measured from its middle; with its standard
    error): it sees frees that tracemalloc, started with the window, cannot. ``end_seconds`` is
    when the application last ran in the period: before the collection that ends it, if any.
    """

    start_seconds: float
    end_seconds: float
    growth: Mapping[Any, Tuple[int, int]]
    contiguous: bool
    heap_blocks_per_second: float
    heap_blocks_error: float
    start_unix_nano: int = 0
    end_unix_nano: int = 0
    attributes: Attributes = field(default=())
    # For a window measured from its middle: the growth of its first half, and how long that
    # was. A leak grows a stack in both halves alike; what requests in flight hold is there at
    # the middle as at the end, and grows it in the first half only.
    first_half: Optional[Mapping[Any, Tuple[int, int]]] = None
    first_half_seconds: float = 0.0
    # Growth keys -> named stacks (None: the agent's own); keys may be raw tracebacks.
    name: Callable[[Any], Optional[Stack]] = field(default=lambda key: key, compare=False)

    @property
    def seconds(self) -> float:
        return max(1e-9, self.end_seconds - self.start_seconds)


class StackCache:
    """tracemalloc tracebacks -> leaf-first stacks of named frames, kept across snapshots.

    A snapshot of a large heap holds hundreds of thousands of traces but far fewer distinct
    tracebacks, and the same ones come back snapshot after snapshot.
    """

    def __init__(self, names: Optional[FunctionNames] = None, max_entries: int = 200_000) -> None:
        self.names = names if names is not None else FunctionNames()
        self._stacks: Dict[Tuple[Any, ...], Optional[Stack]] = {}
        self._max_entries = max_entries

    def stack(self, frames: Tuple[Tuple[str, int], ...], total_nframe: int) -> Optional[Stack]:
        """None for the agent's own allocations."""
        key = (frames, total_nframe)
        if key in self._stacks:
            return self._stacks[key]
        if len(self._stacks) >= self._max_entries:
            self._stacks.clear()
        stack: Optional[Stack] = None
        if not any(filename.startswith(AGENT_DIR) for filename, _ in frames):
            # tracemalloc's raw tracebacks are most recent first: leaf first, like ours.
            stack = tuple(self.names.frame(filename, line) for filename, line in frames)
            if total_nframe > len(frames):
                stack += (TRUNCATED_FRAME,)
        self._stacks[key] = stack
        return stack


RawKey = Tuple[Tuple[Tuple[str, int], ...], int]
"""A tracemalloc traceback as it comes (frames most recent first) and its total depth."""
RawHeap = Dict[RawKey, Tuple[int, int]]


def raw_heap(snapshot: Any) -> RawHeap:
    """A ``tracemalloc.Snapshot`` summed per traceback, before any naming.

    Reads the snapshot's raw trace tuples ``(domain, size, traceback, total_nframe)``: building
    ``Statistic`` and ``Traceback`` objects for every trace costs several times more. Under
    ``otelprof run --memory`` this runs while tracemalloc traces every allocation (this loop's
    too), so it allocates as little as it can: tuples hash without allocating, and sizes are
    collected per traceback and summed in C rather than kept as running sums of new ints.
    """
    raw = getattr(getattr(snapshot, "traces", None), "_traces", None)
    if raw is None:  # a future tracemalloc without the raw list: the public, slower path
        raw = [
            (0, trace.size, tuple((f.filename, f.lineno) for f in reversed(trace.traceback)),
             trace.traceback.total_nframe or len(trace.traceback))
            for trace in snapshot.traces
        ]  # fmt: skip
    grouped: Dict[Any, List[int]] = {}
    depths: Dict[Any, int] = {}
    for _domain, size, frames, total_nframe in raw:
        sizes = grouped.get(frames)
        if sizes is None:
            grouped[frames] = sizes = []
            depths[frames] = total_nframe
        sizes.append(size)
    return {
        (frames, depths[frames] or len(frames)): (sum(sizes), len(sizes))
        for frames, sizes in grouped.items()
    }


def name_heap(raw: RawHeap, stacks: StackCache) -> Heap:
    """Name the tracebacks of ``raw`` (only those: naming is the expensive part)."""
    # Stacks come out of the cache as shared objects: group by identity (hashing a stack
    # would hash every frame in it, in Python).
    heap: Dict[int, List[Any]] = {}
    for (frames, total_nframe), (size, count) in raw.items():
        stack = stacks.stack(frames, total_nframe)
        if stack is None:
            continue
        totals = heap.get(id(stack))
        if totals is None:
            heap[id(stack)] = [stack, size, count]
        else:
            totals[1] += size
            totals[2] += count
    return {stack: (size, count) for stack, size, count in heap.values()}


def heap_difference(
    end: Mapping[K, Tuple[int, int]], start: Mapping[K, Tuple[int, int]]
) -> Dict[K, Tuple[int, int]]:
    """Net change per key (negative when it shrank); unchanged keys are left out."""
    out: Dict[K, Tuple[int, int]] = {}
    for stack in set(end) | set(start):
        size_end, count_end = end.get(stack, (0, 0))
        size_start, count_start = start.get(stack, (0, 0))
        if size_end != size_start or count_end != count_start:
            out[stack] = (size_end - size_start, count_end - count_start)
    return out


def positive(heap: Mapping[K, Tuple[int, int]]) -> Dict[K, Tuple[int, int]]:
    return {
        stack: (max(0, size), max(0, count))
        for stack, (size, count) in heap.items()
        if size > 0 or count > 0
    }


def heap_profiles(
    alloc: Heap, inuse: Heap, start_unix_nano: int, duration_nano: int, attributes: Attributes
) -> List[Profile]:
    profiles = []
    for heap, column, sample_type in (
        (alloc, 0, ALLOC_SPACE),
        (alloc, 1, ALLOC_OBJECTS),
        (inuse, 0, INUSE_SPACE),
        (inuse, 1, INUSE_OBJECTS),
    ):
        samples = tuple(
            Sample(stack=stack, value=values[column])
            for stack, values in heap.items()
            if values[column] > 0
        )
        profiles.append(
            Profile(
                sample_type=sample_type,
                period_type=SPACE_PERIOD,
                period=1,
                start_unix_nano=start_unix_nano,
                duration_nano=duration_nano,
                samples=samples,
                attributes=attributes,
            )
        )
    return profiles


class BlocksTrend:
    """Least-squares slope of ``sys.getallocatedblocks()`` samples, in blocks per second.

    A single start/end difference would be dominated by whatever requests happen to be in
    flight at those two instants; a slope over many samples averages that out.
    """

    def __init__(self) -> None:
        # Flat arrays, not a list of tuples: storing a sample must not itself add live blocks.
        self._times = array.array("d")
        self._blocks = array.array("d")

    def sample(self, now: float) -> None:
        self._times.append(now)
        self._blocks.append(sys.getallocatedblocks())

    def slope(self) -> Tuple[float, float]:
        """``(blocks per second, its standard error)``; the error is infinite below 3 samples."""
        times, blocks = self._times, self._blocks
        count = len(times)
        if count < 2:
            return 0.0, math.inf
        mean_t = sum(times) / count
        mean_b = sum(blocks) / count
        spread = sum((t - mean_t) ** 2 for t in times)
        if spread <= 0:
            return 0.0, math.inf
        slope = sum((t - mean_t) * (b - mean_b) for t, b in zip(times, blocks)) / spread
        if count < 3:
            return slope, math.inf
        residuals = sum((b - mean_b - slope * (t - mean_t)) ** 2 for t, b in zip(times, blocks))
        return slope, math.sqrt(residuals / (count - 2) / spread)


def _clear_method_cache() -> None:
    # Python 3.13 deprecates _clear_type_cache for _clear_internal_caches (which also clears
    # the JIT's caches); both only make the next lookups slower, for a moment.
    clear = getattr(sys, "_clear_internal_caches", None) or getattr(sys, "_clear_type_cache", None)
    if clear is not None:
        clear()


class MemoryEngine:
    """Starts tracemalloc for a window (unless the application already traces) and reads it.

    ``checkpoint()`` (``otelprof run --memory``) only sums the heap per raw traceback while
    tracing goes on: naming stacks allocates a lot, and every allocation is traced then; the
    names are looked up for leak candidates only, and for the profiles once tracing stopped.
    """

    kind = "memory"
    cost_key = "memory"

    def __init__(
        self,
        traceback_depth: int = 8,
        cap_bytes: int = 16 * 1024 * 1024,
        stacks: Optional[StackCache] = None,
        monotonic: Any = None,
    ) -> None:
        import time

        self.traceback_depth = traceback_depth
        self.cap_bytes = cap_bytes
        self.stacks = stacks if stacks is not None else StackCache()
        self._monotonic = monotonic or time.monotonic
        self._unix_ns = time.time_ns
        self._tracemalloc: Any = None
        self.own_tracing = False
        self._raw_start: RawHeap = {}  # the heap when the window opened
        self._raw_last: RawHeap = {}  # ... and at the last checkpoint
        self._opened = (0.0, 0)  # (monotonic seconds, unix ns)
        self._since = (0.0, 0)
        self._trend = BlocksTrend()
        self.checkpoints = 0
        self._first_half: Optional[Tuple[Dict[RawKey, Tuple[int, int]], float]] = None
        self._settled_at = 0.0  # when the last settling began: the application's time ends there
        # Held while tracemalloc is read or stopped: a restore() from another thread (a stop at
        # exit) waits for a snapshot in progress.
        self._lock = threading.RLock()
        self.running = False

    def open(self) -> None:
        import tracemalloc

        self._tracemalloc = tracemalloc
        self.own_tracing = not tracemalloc.is_tracing()
        if self.own_tracing:
            tracemalloc.start(self.traceback_depth)
            self._raw_start = {}
        else:
            # The application traces already: leave it be, and diff against what it holds now.
            self._raw_start = raw_heap(tracemalloc.take_snapshot())
        self._raw_last = self._raw_start
        self.running = True
        self._opened = self._since = (self._monotonic(), self._unix_ns())
        self._trend = BlocksTrend()
        self._trend.sample(self._since[0])
        self.checkpoints = 0
        self._first_half = None

    def midpoint(self) -> None:
        """Halfway through a window: the baseline its leak observation is measured from.

        Objects of requests in flight when the window closes were allocated inside it and are
        still live, so measured from the window's start every stack that serves requests would
        grow in every window. Measured from its middle, they are matched by the objects of the
        requests that were in flight then: a leak still grows the stack, serving does not.
        """
        self._settle()
        with self._lock:
            if self._tracemalloc is None or not self._tracemalloc.is_tracing():
                return  # stopped meanwhile: should_close() says so next
            snapshot = self._tracemalloc.take_snapshot()
        raw = raw_heap(snapshot)
        del snapshot
        self._raw_last = raw
        self._since = (self._monotonic(), self._unix_ns())
        # From here on the heap trend is no longer sampled (see sample()). A collection of a
        # large heap takes tens of milliseconds, during which the application allocates
        # nothing: each half's rates are over the time before its settling began.
        self._first_half = (
            heap_difference(raw, self._raw_start),
            self._settled_at - self._opened[0],
        )

    def sample(self, at: Optional[float] = None) -> None:
        """Called while the window is open: one more point of the live-blocks trend (now, or
        at ``at`` on the monotonic clock).

        Only until the middle, if the window has one: the heap trend is the first half's, as a
        full collection empties the interpreter's free lists (tens of thousands of blocks), and
        refilling them would read as growth."""
        if self._first_half is None:
            self._trend.sample(self._monotonic() if at is None else at)

    def should_close(self) -> Optional[str]:
        tracemalloc = self._tracemalloc
        if tracemalloc is None or not tracemalloc.is_tracing():
            return "tracemalloc was stopped by the application"
        used = tracemalloc.get_tracemalloc_memory()
        if used > self.cap_bytes:
            return (
                f"tracemalloc's own memory reached {used / 2**20:.1f} MiB"
                f" (cap {self.cap_bytes / 2**20:.0f} MiB)"
            )
        return None

    def checkpoint(self, attributes: Attributes = ()) -> HeapObservation:
        """The heap's change since the previous checkpoint; tracing goes on."""
        self._settle()
        with self._lock:
            if self._tracemalloc is None or not self._tracemalloc.is_tracing():
                raise RuntimeError("tracemalloc is not tracing")
            snapshot = self._tracemalloc.take_snapshot()
        raw = raw_heap(snapshot)
        del snapshot
        observation = self._observation(raw, True, attributes)
        self.checkpoints += 1
        return observation

    def close(self, attributes: Attributes = ()) -> Tuple[List[Profile], HeapObservation]:
        """Profiles of the whole window and the change since the last checkpoint (or its start).

        Tracing stops (if the window started it) right after the snapshot, before any naming.
        """
        try:
            contiguous = self.checkpoints > 0
            self._settle()
            with self._lock:
                if self._tracemalloc is None:
                    raise RuntimeError("the window was stopped from outside")
                snapshot = self._tracemalloc.take_snapshot()
                started_empty = self.own_tracing
                self._restore()
            raw = raw_heap(snapshot)
            del snapshot
            observation = self._observation(raw, contiguous, attributes)
            raw_growth = heap_difference(raw, self._raw_start)
            growth = name_heap(raw_growth, self.stacks)
            alloc = growth if started_empty else name_heap(positive(raw_growth), self.stacks)
            _, start_ns = self._opened
            profiles = heap_profiles(
                alloc, positive(growth), start_ns, observation.end_unix_nano - start_ns, attributes
            )
            return profiles, observation
        finally:
            self.restore()
            self._raw_start = self._raw_last = {}

    def _settle(self) -> None:
        """Free what is live only until the interpreter gets round to it.

        Objects in reference cycles stay live until a collection of the oldest generation,
        which on a busy service can be minutes apart: without one, per-request garbage looks
        like a leak to every window in between. An application that turned the collector off
        keeps that garbage for good, so it is left alone, and its cycles are reported like any
        other growth. CPython's method cache (4096 entries) holds a reference to each attribute
        name it caches, and a name built per call (``getattr(self, "do_" + command)`` in
        ``http.server``) takes a new entry each time: thousands of them fill up over minutes,
        which every window would see as growth of the line that built the name. The heap trend
        gets its last point just before.
        """
        started = self._settled_at = self._monotonic()
        self.sample(started)
        found = gc.collect() if application_gc_enabled() else 0
        _clear_method_cache()
        _logger.debug(
            "otelprof: heap settled for the leak detector: %.1f ms, %d objects collected",
            (self._monotonic() - started) * 1000,
            found,
        )

    def _observation(
        self,
        raw: RawHeap,
        contiguous: bool,
        attributes: Attributes,
    ) -> HeapObservation:
        """``raw`` was taken right after :meth:`_settle`."""
        start_s, start_ns = self._since
        now_s, now_ns = self._monotonic(), self._unix_ns()
        # The period ends where the settling began: the application stood still after that, and
        # the trend's last point is from just before it (a collection empties the interpreter's
        # free lists, whose blocks are no part of the heap's trend).
        end_s = self._settled_at
        heap_blocks_per_second, heap_blocks_error = self._trend.slope()
        observation = HeapObservation(
            start_s,
            end_s,
            heap_difference(raw, self._raw_last),
            contiguous,
            heap_blocks_per_second,
            heap_blocks_error,
            start_ns,
            now_ns,
            attributes,
            first_half=None if self._first_half is None else self._first_half[0],
            first_half_seconds=0.0 if self._first_half is None else self._first_half[1],
            name=self._name,
        )
        self._first_half = None
        self._raw_last = raw
        self._since = (now_s, now_ns)
        self._trend = BlocksTrend()
        self._trend.sample(now_s)
        return observation

    def _name(self, key: RawKey) -> Optional[Stack]:
        return self.stacks.stack(*key)

    def restore(self) -> None:
        """Idempotent, from any thread: stop tracemalloc if (and only if) this engine started it."""
        with self._lock:
            self._restore()

    def _restore(self) -> None:
        tracemalloc, self._tracemalloc = self._tracemalloc, None
        self.running = False
        if tracemalloc is not None and self.own_tracing and tracemalloc.is_tracing():
            try:
                tracemalloc.stop()
            except Exception:
                _logger.exception("otelprof: could not stop tracemalloc")
