"""Time in the cyclic garbage collector, charged to a ``[gc]`` frame on the stack that caused it.

``gc.callbacks`` runs on the thread whose allocation triggered the collection, before and after
it, so ``sys._getframe(1)`` in the callback is the code that triggered it. Walking that stack on
every collection would cost more than many young-generation collections do, so the time is
sampled: each thread accumulates its collection time and, once that passes ``period_nanos``,
the accumulated time is charged to the stack of the collection that crossed the line (the
chance of being charged is proportional to a collection's duration, as in a sampling profiler).

The stack sampler cannot run during a collection (the collecting thread holds the GIL), so it
charges that time to whatever the thread runs at its next tick. :meth:`GCSampler.fold_into`
moves it: each thread's cpu and wall samples are scaled down by the thread's GC time, and the
``[gc]`` samples are added, so totals stay what was measured. GC time counts as both CPU and
wall time (a collection computes while holding the GIL; it only stops if the OS preempts it).
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import threading
import time
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from otelprof import _unpatched
from otelprof._threads import AGENT_THREAD_IDENTS, native_id_of
from otelprof.frames import shared_resolver
from otelprof.model import (
    CPU_NANOS,
    WALL_NANOS,
    Attributes,
    Frame,
    Profile,
    Sample,
    SampleTag,
    Stack,
)
from otelprof.samplers.stack import Tagger, _decode, _walk

GC_FRAME = Frame("[gc]", "", 0, 0)
"""The synthetic leaf frame of garbage-collection time."""

_NO_TAG = SampleTag()


class GCSampler:
    """Measures collections through ``gc.callbacks``; :meth:`fold_into` adds them to profiles."""

    def __init__(
        self,
        period_nanos: int = 1_000_000,
        max_depth: int = 128,
        tagger: Callable[[], Optional[Tagger]] = lambda: None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.period_nanos = period_nanos
        self.max_depth = max_depth
        self._tagger = tagger
        self._clock_ns = clock_ns
        self._lock = _unpatched.allocate_lock()
        self._started_ns = 0
        self._debt: Dict[int, int] = {}
        # (stack key, thread ident, tag) -> [nanoseconds, the key's code objects]
        self._counts: Dict[Tuple[Tuple[int, ...], int, Hashable], List[Any]] = {}
        self._labels: Dict[int, Tuple[int, str]] = {}
        self.collections = 0
        self.total_nanos = 0
        self._resolver = shared_resolver()  # kept across drains, as the stack sampler's

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        while self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def reset_after_fork(self) -> None:
        self._lock = _unpatched.allocate_lock()
        self._started_ns = 0
        self._debt = {}
        self._counts = {}
        self._labels = {}

    # -- the callback (application threads, GIL held) ------------------------------------------

    def _callback(self, phase: str, info: Dict[str, int]) -> None:
        if phase == "start":
            # Collections never nest and hold the GIL throughout: one slot is enough.
            self._started_ns = self._clock_ns()
            return
        started = self._started_ns
        if not started:
            return
        self._started_ns = 0
        elapsed = self._clock_ns() - started
        ident = _unpatched.get_ident()  # the OS thread's, as the sampler's (not a greenlet's)
        if ident in AGENT_THREAD_IDENTS:
            return
        self.collections += 1
        self.total_nanos += elapsed
        debt = self._debt.get(ident, 0) + elapsed
        if debt < self.period_nanos:
            self._debt[ident] = debt
            return
        self._debt[ident] = 0
        key, codes = _walk(sys._getframe(1), self.max_depth)
        tagger = self._tagger()
        tag = tagger(ident) if tagger is not None else None
        with self._lock:
            entry = self._counts.get((key, ident, tag))
            if entry is None:
                self._counts[(key, ident, tag)] = [debt, codes]
            else:
                entry[0] += debt
            if ident not in self._labels:
                thread = threading.current_thread()
                self._labels[ident] = (native_id_of(ident, thread) or ident, thread.name)

    # -- handing data over ---------------------------------------------------------------------

    def drain(self) -> List[Tuple[Stack, int, str, Hashable, int]]:
        """``(stack with [gc] on top, thread.id, thread.name, tag, nanoseconds)`` since last."""
        with self._lock:
            counts, self._counts = self._counts, {}
            labels = dict(self._labels)
            self._labels.clear()
        resolver = self._resolver
        out = []
        for (key, ident, tag), (nanos, codes) in counts.items():
            native_id, name = labels.get(ident, (ident, ""))
            stack = (GC_FRAME, *_decode(key, codes, resolver))
            out.append((stack, native_id, name, tag, nanos))
        return out

    def fold_into(
        self,
        profiles: List[Profile],
        period_nanos: int,
        retag: Optional[Callable[[Hashable], Hashable]] = None,
    ) -> List[Profile]:
        """The sampler's cpu/wall profiles with the GC time moved onto ``[gc]`` stacks."""
        drained = self.drain()
        if not drained:
            return profiles
        gc_samples: List[Sample] = []
        gc_by_thread: Dict[int, int] = {}
        for stack, thread_id, thread_name, raw_tag, nanos in drained:
            tag = retag(raw_tag) if retag is not None else raw_tag
            sample_tag = tag if isinstance(tag, SampleTag) else _NO_TAG
            attrs: Attributes = tuple(
                sorted(
                    (("thread.id", thread_id), ("thread.name", thread_name), *sample_tag.attributes)
                )
            )
            gc_samples.append(Sample(stack, nanos, attrs, sample_tag.link))
            gc_by_thread[thread_id] = gc_by_thread.get(thread_id, 0) + nanos
        out = []
        folded = set()
        for profile in profiles:
            if (
                profile.sample_type in (CPU_NANOS, WALL_NANOS)
                and profile.period_type == profile.sample_type
                and profile.sample_type not in folded
            ):
                folded.add(profile.sample_type)
                out.append(_carve(profile, gc_by_thread, gc_samples))
            else:
                out.append(profile)
        now = time.time_ns()
        for value_type in (CPU_NANOS, WALL_NANOS):
            if value_type not in folded:
                out.append(Profile(value_type, value_type, period_nanos, now, 0, tuple(gc_samples)))
        return out


_MISSING = object()


def _carve(profile: Profile, gc_by_thread: Dict[int, int], gc_samples: List[Sample]) -> Profile:
    """Scale each thread's samples down by its GC time and add the ``[gc]`` samples."""
    by_thread: Dict[object, int] = {}
    thread_of: Dict[int, object] = {}  # id(attributes) -> thread.id: samples share attributes
    threads = []
    for sample in profile.samples:
        thread_id = thread_of.get(id(sample.attributes), _MISSING)
        if thread_id is _MISSING:
            thread_id = thread_of[id(sample.attributes)] = dict(sample.attributes).get("thread.id")
        threads.append(thread_id)
        by_thread[thread_id] = by_thread.get(thread_id, 0) + sample.value
    scale: Dict[object, float] = {}
    for thread_id, gc_nanos in gc_by_thread.items():
        total = by_thread.get(thread_id, 0)
        if total > 0:
            scale[thread_id] = max(0, total - gc_nanos) / total
    samples = []
    for sample, thread_id in zip(profile.samples, threads):
        factor = scale.get(thread_id)
        samples.append(
            sample
            if factor is None
            else Sample(sample.stack, int(sample.value * factor), sample.attributes, sample.link)
        )
    return dataclasses.replace(profile, samples=tuple(samples) + tuple(gc_samples))
