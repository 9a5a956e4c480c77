"""Garbage collection shows up as a ``[gc]`` frame on the stack that triggered it."""

from __future__ import annotations

import gc
import threading
from typing import Iterator

import pytest

from otelprof.conformance import check_request
from otelprof.decode import decode_request
from otelprof.model import CPU_NANOS, WALL_NANOS, Frame, Profile, Sample
from otelprof.samplers.gc import GC_FRAME, GCSampler
from otelprof.testing import capture_profiles


class Node:
    def __init__(self) -> None:
        self.other: object = None


def allocate_cycles(count: int) -> int:
    made = 0
    for _ in range(count):
        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle: only the cyclic GC frees it
        made += 1
    return made


def collect_explicitly(times: int) -> None:
    for _ in range(times):
        allocate_cycles(200)
        gc.collect()


@pytest.fixture
def low_threshold() -> Iterator[None]:
    old = gc.get_threshold()
    gc.set_threshold(50)  # young collections every 50 container allocations
    try:
        yield
    finally:
        gc.set_threshold(*old)


def test_collections_are_charged_to_the_stack_that_triggered_them(low_threshold: None):
    sampler = GCSampler(period_nanos=1)  # charge every collection: deterministic for the test
    sampler.start()
    try:
        allocate_cycles(20_000)
        collect_explicitly(3)
    finally:
        sampler.stop()
    drained = sampler.drain()
    assert sampler.collections > 0 and sampler.total_nanos > 0
    assert all(stack[0] == GC_FRAME for stack, *_ in drained)
    below_gc = [[frame.function for frame in stack[1:]] for stack, *_ in drained]
    # Automatic collections, triggered by allocation. Up to 3.11 the collection runs inside the
    # allocation, so allocate_cycles (or Node.__init__, allocating the instance dict) is on top;
    # from 3.12 it runs at the next eval-breaker check, a few instructions later, which can be
    # the entry of the Node.__init__ call: either way allocate_cycles is on the charged stack.
    assert any(
        "allocate_cycles" in functions[:2] and "collect_explicitly" not in functions
        for functions in below_gc
    ), below_gc
    # gc.collect() is C code: its caller is on top.
    assert any(functions[0] == "collect_explicitly" for functions in below_gc), below_gc
    thread_ids = {thread_id for _, thread_id, *_ in drained}
    assert thread_ids == {threading.get_native_id()}
    assert sum(nanos for *_, nanos in drained) == sampler.total_nanos
    assert sampler.drain() == []


def test_short_collections_are_sampled_in_proportion_to_their_time(low_threshold: None):
    sampler = GCSampler(period_nanos=10_000_000)  # 10 ms between charges
    sampler.start()
    try:
        allocate_cycles(20_000)
    finally:
        sampler.stop()
    charged = sum(nanos for *_, nanos in sampler.drain())
    assert sampler.collections > 100
    # Only whole periods are charged; what is left waits for the next collection.
    assert 0 <= sampler.total_nanos - charged < 10_000_000


def test_the_callback_is_removed_on_stop():
    sampler = GCSampler()
    sampler.start()
    sampler.start()
    assert gc.callbacks.count(sampler._callback) == 1
    sampler.stop()
    assert sampler._callback not in gc.callbacks


def _sample(function: str, thread_id: int, value: int) -> Sample:
    stack = (Frame(function, "app.py", 1, 1),)
    return Sample(stack, value, (("thread.id", thread_id), ("thread.name", f"t{thread_id}")))


def test_folding_moves_gc_time_out_of_the_samplers_stacks_and_keeps_totals():
    sampler = GCSampler(period_nanos=1)
    key = ((), 1, None)
    sampler._counts[key] = [300, []]
    sampler._labels[1] = (42, "t42")
    cpu = Profile(
        CPU_NANOS, CPU_NANOS, 10_000_000, 0, 10, (_sample("work", 42, 600), _sample("io", 42, 400))
    )
    wall = Profile(WALL_NANOS, WALL_NANOS, 10_000_000, 0, 10, (_sample("idle", 43, 1000),))
    folded = sampler.fold_into([cpu, wall], 10_000_000)
    values = {(p.sample_type.type, s.stack[0].function): s.value for p in folded for s in p.samples}
    assert values == {
        ("cpu", "work"): 420,
        ("cpu", "io"): 280,
        ("cpu", "[gc]"): 300,
        ("wall", "idle"): 1000,  # another thread: untouched
        ("wall", "[gc]"): 300,
    }


def test_gc_frames_reach_the_exported_cpu_and_wall_profiles():
    with capture_profiles(
        sampling_rate_hz=200, precise_window_seconds=0, memory_window_seconds=0
    ) as captured:
        collect_explicitly(5)
    assert captured.requests
    for request in captured.requests:
        assert check_request(request) == []
    records = [r for request in captured.requests for r in decode_request(request)]
    for sample_type in ("cpu", "wall"):
        gc_callers = {
            sample.stack[1].function
            for record in records
            if record.sample_type.type == sample_type
            for sample in record.samples
            if sample.stack[0].function == "[gc]"
        }
        assert "collect_explicitly" in gc_callers, sample_type


CHURN = """
import gc, sys, threading, time
from otelprof.samplers.gc import GCSampler
from otelprof.samplers.stack import StackSampler

gc.set_threshold(1)  # a collection on nearly every allocation, inside the sampler's walk too
sys.setswitchinterval(1e-6)  # and the GIL changing hands as often as it can
collector = GCSampler(period_nanos=1)
collector.start()
sampler = StackSampler(interval_seconds=0.0001)
sampler.start()
deadline = time.monotonic() + 2.0
while time.monotonic() < deadline:  # threads starting and exiting, as on a threaded server
    threads = [threading.Thread(target=lambda: [object() for _ in range(10)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
sampler.stop()
collector.stop()
print("finished")
"""


def test_gc_callbacks_never_deadlock_the_sampler_with_starting_threads():
    # sys._current_frames() holds the interpreter's thread-list lock; a collection inside it ran
    # this callback, which could hand the GIL to a thread waiting for that lock. Without the
    # sampler holding the GC off there, this hung within two seconds every time.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", CHURN], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout
