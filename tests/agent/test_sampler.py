"""The stack sampler charges measured deltas to the right thread, stack and line."""

from __future__ import annotations

import functools
import inspect
import os
import pathlib
import sys
import sysconfig
import threading
import time
import types

import pytest

from otelprof._threads import start_agent_thread
from otelprof.model import TRUNCATED_FRAME
from otelprof.samplers import stack as stack_module
from otelprof.samplers.stack import StackSampler, snapshot_to_profiles
from tests.agent.helpers import FakeClock, ParkedThread, function_names, wait_until


def parked_in_known_function(arrived: threading.Event, release: threading.Event) -> None:
    arrived.set()
    release.wait()  # PARK-LINE


PARK_LINE = (
    next(
        i
        for i, line in enumerate(inspect.getsourcelines(parked_in_known_function)[0])
        if "PARK-LINE" in line
    )
    + parked_in_known_function.__code__.co_firstlineno
)


# Qualified names (co_qualname) exist from 3.11; before, a function is named by co_name alone.
WAIT_FUNCTIONS = ("Event.wait", "Condition.wait") if sys.version_info >= (3, 11) else ("wait",)


def _samples_of(snapshot, thread_name):
    return [s for s in snapshot.samples if s.thread_name == thread_name]


def test_charges_measured_wall_time_to_each_threads_stack_and_line():
    clock = FakeClock()
    sampler = StackSampler(interval_seconds=0.01, clock_ns=clock)
    with ParkedThread("parked-worker", parked_in_known_function):
        sampler.sample_once()  # first tick: charged the nominal interval
        clock.advance(30_000_000)
        sampler.sample_once()
        clock.advance(5_000_000)
        sampler.sample_once()
        snapshot = sampler.drain()
    samples = _samples_of(snapshot, "parked-worker")
    assert sum(s.wall_nanos for s in samples) == 10_000_000 + 30_000_000 + 5_000_000
    assert sum(s.count for s in samples) == 3
    leaf_functions = {s.stack[0].function for s in samples}
    assert leaf_functions & set(WAIT_FUNCTIONS)
    frames = [f for s in samples for f in s.stack if f.function == "parked_in_known_function"]
    assert frames and all(f.line == PARK_LINE for f in frames)
    assert frames[0].filename == __file__
    assert all(s.thread_id == samples[0].thread_id for s in samples)
    assert snapshot.ticks == 3


def spin_until(release: threading.Event, progress: list) -> None:
    while not release.is_set():
        sum(range(1000))
        progress[0] += 1


def test_cpu_time_goes_to_the_spinning_thread_not_the_blocked_one():
    sampler = StackSampler(interval_seconds=0.01)
    release = threading.Event()
    progress = [0]
    spinner = threading.Thread(target=spin_until, args=(release, progress), name="spinner")
    with ParkedThread("sleeper", parked_in_known_function):
        spinner.start()
        try:
            sampler.sample_once()  # baseline for every thread's CPU clock
            start = progress[0]
            wait_until(lambda: progress[0] > start + 2000)
            sampler.sample_once()
        finally:
            release.set()
            spinner.join()
    snapshot = sampler.drain()
    spin_cpu = sum(s.cpu_nanos for s in _samples_of(snapshot, "spinner"))
    sleep_cpu = sum(s.cpu_nanos for s in _samples_of(snapshot, "sleeper"))
    assert spin_cpu > 0
    assert sleep_cpu < spin_cpu
    spin_stacks = [function_names(s.stack) for s in _samples_of(snapshot, "spinner")]
    assert any("spin_until" in names for names in spin_stacks)


def recurse(depth: int, arrived: threading.Event, release: threading.Event) -> None:
    if depth == 0:
        arrived.set()
        release.wait()
        return
    recurse(depth - 1, arrived, release)


def test_deep_stacks_keep_innermost_frames_and_mark_the_cut():
    sampler = StackSampler(interval_seconds=0.01, max_depth=20)
    with ParkedThread("deep", lambda a, r: recurse(200, a, r)):
        sampler.sample_once()
        snapshot = sampler.drain()
    (sample,) = _samples_of(snapshot, "deep")
    assert len(sample.stack) == 21
    assert sample.stack[-1] == TRUNCATED_FRAME
    assert sample.stack[0].function in WAIT_FUNCTIONS
    assert "recurse" in function_names(sample.stack)


def test_agent_threads_and_the_sampler_itself_are_not_sampled():
    sampler = StackSampler(interval_seconds=0.01)
    stop = threading.Event()
    agent = start_agent_thread("otelprof-test-agent", stop.wait)
    try:
        sampler.sample_once()
    finally:
        stop.set()
        agent.join(5)
    names = {s.thread_name for s in sampler.drain().samples}
    assert "otelprof-test-agent" not in names
    assert threading.current_thread().name in names


def test_the_thread_stopping_the_sampler_is_not_sampled_in_its_shutdown():
    # stop() waits for a tick that may still be running and walking every thread: the thread
    # waiting there is in the agent's shutdown, which is no part of the application's profile.
    sampler = StackSampler(interval_seconds=0.01)
    with ParkedThread("app-worker", parked_in_known_function):
        sampler.stop()  # no thread was started: only the stopping thread is noted
        sampler.sample_once()  # as a tick still running during stop() would
        names = {s.thread_name for s in sampler.drain().samples}
        assert threading.current_thread().name not in names
        assert "app-worker" in names
    sampler.start()  # started again, the thread that stopped it is the application's again
    try:
        assert sampler._stopping_ident is None
    finally:
        sampler.stop()


def test_drain_starts_a_new_interval_and_profiles_carry_thread_attributes():
    clock = FakeClock()
    unix = FakeClock(1_700_000_000_000_000_000)
    sampler = StackSampler(interval_seconds=0.01, clock_ns=clock, unix_clock_ns=unix)
    sampler.sample_once()
    unix.advance(2_000_000_000)
    first = sampler.drain()
    assert first.ticks == 1
    assert first.end_unix_nano - first.start_unix_nano == 2_000_000_000
    second = sampler.drain()
    assert second.ticks == 0 and not second.samples
    assert second.start_unix_nano == first.end_unix_nano
    cpu, wall = snapshot_to_profiles(first, 10_000_000)
    assert cpu.sample_type.type == "cpu" and wall.sample_type.type == "wall"
    assert cpu.period == wall.period == 10_000_000
    me = threading.current_thread()
    mine = [s for s in wall.samples if ("thread.name", me.name) in s.attributes]
    assert mine and ("thread.id", me.native_id) in mine[0].attributes


def test_thread_started_sampler_stops_at_once_even_between_slow_ticks_and_starts_again():
    sampler = StackSampler(interval_seconds=3600.0)  # it waits an hour before its first tick
    sampler.start()
    thread = sampler._thread
    sampler.stop(timeout_seconds=30.0)
    assert thread is not None and not thread.is_alive()  # the wait ended on the stop
    assert sampler.drain().ticks == 0
    sampler.interval_seconds = 0.005
    sampler.start()
    try:
        wait_until(lambda: sampler._interval.ticks >= 3)
    finally:
        sampler.stop()
    assert not sampler.running
    assert sampler.drain().ticks >= 3


def test_exited_threads_do_not_break_sampling():
    sampler = StackSampler(interval_seconds=0.01)
    for _ in range(20):
        t = threading.Thread(target=lambda: None)
        t.start()
        sampler.sample_once()
        t.join()
    sampler.sample_once()
    assert sampler.drain().ticks == 21
    assert len(sampler._cpu_state) <= len(sys._current_frames())


def burn_then_park(arrived: threading.Event, release: threading.Event) -> None:
    sum(i * i for i in range(200_000))
    parked_in_known_function(arrived, release)


def test_a_thread_born_between_ticks_is_charged_its_cpu_since_creation():
    # Thread-per-request servers: the request thread may be seen only once; its CPU since
    # creation must still be charged, not taken as a baseline.
    sampler = StackSampler(interval_seconds=0.01)
    sampler.sample_once()  # profiling starts: existing threads get a baseline
    with ParkedThread("born-later", burn_then_park):
        sampler.sample_once()
        snapshot = sampler.drain()
    (sample,) = _samples_of(snapshot, "born-later")
    assert sample.cpu_nanos > 0


def move_between(arrived: threading.Event, release: threading.Event, pipe: int, moved) -> None:
    """Blocks in first_stop (reading ``pipe``), then in second_stop: its stack changes."""

    def first_stop() -> None:
        arrived.set()
        os.read(pipe, 1)

    def second_stop() -> None:
        moved.set()
        release.wait()

    first_stop()
    second_stop()


def blocked_reading(thread: threading.Thread, fd: int) -> bool:
    """The thread sleeps in a system call on ``fd`` (its read): unlike "it set an event", this
    means it runs no more bytecode, so its CPU clock stands still until the read returns."""
    fields = pathlib.Path(f"/proc/self/task/{thread.native_id}/syscall").read_text().split()
    return len(fields) > 1 and fields[1] == hex(fd)


def _counting_walks(sampler: StackSampler, walks: list) -> StackSampler:
    """``sampler``, its walk appending the function names of each walked stack to ``walks``."""
    real_walk = sampler._walk

    def counting_walk(frame, max_depth):
        key, codes = real_walk(frame, max_depth)
        walks.append([code.co_name for code in codes])
        return key, codes

    sampler._walk = counting_walk
    return sampler


def test_a_thread_using_no_cpu_is_walked_once_and_a_moved_thread_again():
    walks = []
    tagged = []
    mover_ident = []

    def tagger(ident):
        # The tag of a thread that did not run stays its tag: asked once per walk.
        if mover_ident and ident == mover_ident[0]:
            tagged.append(_current_functions("mover"))
        return ("span-of", ident)

    sampler = _counting_walks(StackSampler(interval_seconds=0.01, tagger=tagger), walks)
    read_end, write_end = os.pipe()
    moved = threading.Event()
    try:
        with ParkedThread("mover", lambda a, r: move_between(a, r, read_end, moved)) as mover:
            mover_ident.append(mover.thread.ident)
            wait_until(lambda: blocked_reading(mover.thread, read_end))
            for _ in range(3):  # blocked in first_stop: its CPU clock does not move
                sampler.sample_once()
            os.write(write_end, b"x")
            assert moved.wait(10)
            wait_until(lambda: "second_stop" in _current_functions("mover"))
            sampler.sample_once()  # it ran (used CPU) since the last tick: walked again
            snapshot = sampler.drain()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert sum("first_stop" in names for names in walks) == 1
    assert sum("second_stop" in names for names in walks) == 1
    assert [("first_stop" in n, "second_stop" in n) for n in tagged] == [
        (True, False),
        (False, True),
    ]
    assert {s.tag for s in snapshot.samples if s.thread_name == "mover"} == {
        ("span-of", mover_ident[0])
    }
    stacks = {}
    for sample in _samples_of(snapshot, "mover"):
        names = tuple(function_names(sample.stack))
        stacks[names] = stacks.get(names, 0) + sample.count
    first = [n for n in stacks if any(f.endswith("first_stop") for f in n)]
    second = [n for n in stacks if any(f.endswith("second_stop") for f in n)]
    assert sum(stacks[n] for n in first) == 3
    assert sum(stacks[n] for n in second) == 1
    # No frame is held between ticks (only code objects): a returned frame's locals are freed.
    assert not any(
        isinstance(value, types.FrameType)
        for state in sampler._cpu_state.values()
        for value in (state.key, *state.codes)
    )


def _dead_native_id() -> int:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    assert thread.native_id is not None
    return thread.native_id


def test_a_thread_whose_cpu_clock_fails_is_walked_at_every_tick():
    # A clock that names no thread of this process (a stale kernel thread id) reads nothing;
    # trusting it would keep the thread's first stack for ever, as a thread "using no CPU".
    walks: list = []
    sampler = _counting_walks(StackSampler(interval_seconds=0.01), walks)
    read_end, write_end = os.pipe()
    moved = threading.Event()
    try:
        with ParkedThread("mover", lambda a, r: move_between(a, r, read_end, moved)) as mover:
            wait_until(lambda: blocked_reading(mover.thread, read_end))
            sampler.sample_once()
            state = sampler._cpu_state[mover.thread.ident]
            state.clock = stack_module._thread_cpu_clock(_dead_native_id())
            sampler.sample_once()
            os.write(write_end, b"x")
            assert moved.wait(10)
            wait_until(lambda: "second_stop" in _current_functions("mover"))
            sampler.sample_once()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert state.clock is None
    assert sum("second_stop" in names for names in walks) == 1


def test_the_thread_that_forked_has_its_own_kernel_id_in_the_child():
    from otelprof._threads import native_id_of

    pid = os.fork()
    if pid == 0:  # CPython leaves the parent's value in this thread's Thread.native_id
        try:
            native_id = native_id_of(threading.get_ident(), threading.current_thread())
            ok = native_id == threading.get_native_id()
            clock = stack_module._thread_cpu_clock(native_id)
            ok = ok and clock is not None and time.clock_gettime_ns(clock) > 0
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _current_functions(thread_name: str) -> list:
    thread = next(t for t in threading.enumerate() if t.name == thread_name)
    frame = sys._current_frames()[thread.ident]
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


FRAME_RACE = """
import gc, sys, threading
from otelprof.samplers.stack import StackSampler
from otelprof.samplers.stack import walk_named
walk = sys.argv[1]  # native: the sampler's choice; else walk_named's
walker = "_walk" if walk == "python" else "_sample_threads"  # a C walk has no frame of its own
sampler = StackSampler()
if walk != "native":
    sampler._handles, sampler._walk = walk_named(walk)

ready = threading.Event()
release = threading.Lock()
release.acquire()

def inner():
    ready.set()
    release.acquire()  # parked: of this thread's frames, only inner's has a frame object

def outer():
    inner()

worker = threading.Thread(target=outer)
worker.start()
ready.wait()
fired = []

def let_the_worker_return(phase, info):
    # A collection while the sampler walks the worker's stack (reading inner's f_back makes
    # outer's frame object): the callback lets the worker return from outer meanwhile.
    if phase == "start" and not fired and sys._getframe(1).f_code.co_name == walker:
        fired.append(True)
        release.release()
        worker.join()

gc.callbacks.append(let_the_worker_return)
gc.set_threshold(1)
sampler.sample_once()
gc.set_threshold(700)
gc.callbacks.remove(let_the_worker_return)
if not fired:
    release.release()
worker.join()
print("collections during the walk:", len(fired))
"""


@pytest.mark.parametrize("walk", ["native", "stack", "python"])
def test_no_collection_runs_while_other_threads_frames_are_read(walk):
    # Before Python 3.12 a collection could start inside the allocation of a frame object that
    # f_back makes; its callbacks hand the GIL to the thread being read, which returned from
    # that frame, and the walk read freed memory: a segfault every time without the GC held off.
    import subprocess

    if walk == "stack" and _c_walk_stack() is None:
        return
    result = subprocess.run(
        [sys.executable, "-c", FRAME_RACE, walk],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "collections during the walk: 0" in result.stdout


def test_profiles_merge_equal_stacks_of_one_thread_and_tag():
    from otelprof.model import Frame
    from otelprof.samplers.stack import StackSnapshot, ThreadSample

    stack = (Frame("leaf", "/a.py", 3, 1), Frame("main", "/a.py", 9, 8))
    same_stack = tuple(list(stack))  # equal, another object (two offsets on one line)
    samples = (
        ThreadSample(stack, 7, "worker", None, 10, 100, 1),
        ThreadSample(same_stack, 7, "worker", None, 5, 50, 1),
        ThreadSample(same_stack, 8, "other", None, 1, 1, 1),
    )
    cpu, wall = snapshot_to_profiles(StackSnapshot(0, 1, samples, 3), 10_000_000)
    by_thread = {dict(s.attributes)["thread.id"]: s.value for s in cpu.samples}
    assert by_thread == {7: 15, 8: 1}
    assert sorted(s.value for s in wall.samples) == [1, 150]


def test_gc_holds_nest_and_restore_what_was_there():
    import gc

    from otelprof._threads import application_gc_enabled, gc_held_off

    assert gc.isenabled()
    with gc_held_off():
        with gc_held_off():  # the sampler and the exporter at once
            assert not gc.isenabled()
            assert application_gc_enabled()  # what the application chose, seen through a hold
        assert not gc.isenabled()  # still held by the first
    assert gc.isenabled()
    gc.disable()  # the application's own choice is kept
    try:
        with gc_held_off():
            assert not application_gc_enabled()
        assert not gc.isenabled() and not application_gc_enabled()
    finally:
        gc.enable()


def test_a_fork_child_never_inherits_a_gc_hold():
    import gc
    import os

    from otelprof._threads import gc_held_off

    with gc_held_off():
        pid = os.fork()
        if pid == 0:  # the child: nobody here would ever release the hold
            os._exit(0 if gc.isenabled() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert gc.isenabled()


def _c_walk_stack():
    # `make test` installs the package with its C extension; a build that lost the walk would
    # otherwise pass every test on the Python one alone.
    if sys.version_info >= (3, 11) and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        from otelprof._native import walk_stack

        return walk_stack
    return None


def _c_walk_thread():
    # Built where the extension knows the interpreter frame layout: CPython 3.11-3.13.
    if (3, 11) <= sys.version_info[:2] <= (3, 13) and not sysconfig.get_config_var(
        "Py_GIL_DISABLED"
    ):
        from otelprof._native import walk_thread

        return walk_thread
    return None


def _recurse(depth, then):
    if depth == 0:
        return then(sys._getframe())
    return _recurse(depth - 1, then)


@pytest.mark.parametrize("max_depth", [0, 1, 5, 40, 41, 42, 200])
def test_the_c_walk_keys_a_stack_as_the_python_walk_does(max_depth):
    walk = _c_walk_stack()
    if walk is None:  # before 3.11 (or without a GIL) the Python walk is the only one
        return

    def both(frame, depth):
        # Both walks while every frame they read is suspended at the same instruction.
        return walk(frame, depth), stack_module._walk(frame, depth)

    # Cut above, at and below the stack's depth (this test's frames under 40 of _recurse).
    (c_key, c_codes), (python_key, python_codes) = _recurse(40, lambda f: both(f, max_depth))
    assert c_key == python_key
    assert c_codes == python_codes
    depth = len(_recurse(40, lambda f: stack_module._walk(f, 10_000)[1]))
    assert len(c_codes) == min(max_depth, depth)
    assert (c_key[-1:] == (-1,)) == (max_depth < depth)
    # Deeper than the C walk's fixed buffer (128 frames), where it allocates.
    deep_c, deep_python = _recurse(300, lambda f: both(f, 1000))
    assert deep_c == deep_python and len(deep_c[1]) > 300
    assert walk(None, 5) == ((), [])


def test_the_c_walks_reject_bad_arguments_with_a_clear_error():
    walk = _c_walk_stack()
    if walk is None:
        return
    with pytest.raises(TypeError, match="frame must be a frame or None"):
        walk("not a frame", 5)
    with pytest.raises(ValueError, match="walk_stack: max_depth must be >= 0"):
        walk(sys._getframe(), -1)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        walk(sys._getframe())
    walk_thread = _c_walk_thread()
    if walk_thread is None:
        return
    with pytest.raises(TypeError, match="integer"):
        walk_thread("not an ident", 5)
    with pytest.raises(ValueError, match="walk_thread: max_depth must be >= 0"):
        walk_thread(threading.get_ident(), -1)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        walk_thread(threading.get_ident())


def _park_deep(depth, arrived, release):
    if depth == 0:
        arrived.set()
        release.wait()
        return
    _park_deep(depth - 1, arrived, release)


@pytest.mark.parametrize("max_depth", [0, 1, 5, 40, 41, 200, 1000])
def test_the_thread_walk_keys_a_parked_thread_as_the_python_walk_does(max_depth):
    walk_thread = _c_walk_thread()
    if walk_thread is None:
        return
    # 300 deep: past the C walk's fixed buffer (128 frames), where it allocates.
    with ParkedThread("deep", functools.partial(_park_deep, 300)) as parked:
        ident = parked.thread.ident
        from_thread = walk_thread(ident, max_depth)
        frame = sys._current_frames()[ident]
        from_frames = stack_module._walk(frame, max_depth)
        depth = len(stack_module._walk(frame, 10_000)[1])
    assert from_thread == from_frames
    assert depth > 300
    assert len(from_thread[1]) == min(max_depth, depth)
    assert (from_thread[0][-1:] == (-1,)) == (max_depth < depth)


def test_the_thread_walk_makes_no_frame_objects():
    walk_thread = _c_walk_thread()
    if walk_thread is None:
        return
    with ParkedThread("deep", functools.partial(_park_deep, 200)) as parked:
        ident = parked.thread.ident
        before = sys.getallocatedblocks()
        walk_thread(ident, 1000)
        after_thread_walk = sys.getallocatedblocks()
        stack_module._walk(sys._current_frames()[ident], 1000)
        after_frame_walk = sys.getallocatedblocks()
    # Walking frame objects leaves one behind for each frame: the running frames keep them
    # until they return. The thread walk leaves nothing of its own (a little slack for the
    # interpreter's free lists).
    assert after_frame_walk - after_thread_walk >= 200
    assert after_thread_walk - before < 50


def test_thread_handles_name_every_thread_running_python_code():
    walk_thread = _c_walk_thread()
    if walk_thread is None:
        return
    from otelprof._native import thread_handles

    with ParkedThread("parked", parked_in_known_function) as parked:
        handles = thread_handles()
        assert {parked.thread.ident, threading.get_ident()} <= set(handles)
        assert all(ident == handle for ident, handle in handles.items())
    assert walk_thread(_ended_thread_ident(), 5) is None


def _ended_thread_ident():
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    assert thread.ident is not None
    return thread.ident


def test_a_thread_that_ended_before_its_walk_is_left_out():
    # Between the tick's list of threads and a thread's walk the sampler runs Python, so other
    # threads run meanwhile and one may end.
    if _c_walk_thread() is None:
        return
    sampler = StackSampler()
    gone = _ended_thread_ident()
    sampler._sample_threads({gone: gone})
    assert sampler.drain().samples == ()


def test_the_sampler_walks_in_c_unless_told_not_to():
    walk = _c_walk_thread() or _c_walk_stack() or stack_module._walk
    assert StackSampler()._walk is walk
    assert StackSampler(native=False)._walk is stack_module._walk
    with pytest.raises(ValueError, match="no stack walk named 'frames'"):
        stack_module.walk_named("frames")


@pytest.mark.skipif(
    stack_module._native_thread_ids() is None,
    reason="thread_native_id is in the C extension for CPython 3.11+ only",
)
def test_a_thread_threading_did_not_start_is_charged_its_cpu_on_its_own_thread_id():
    # Threads started by C code or _thread (gevent's thread pool) have no Thread, so no
    # native_id: the sampler reads their kernel id from their thread state instead.
    import _thread

    sampler = StackSampler(interval_seconds=0.01)
    release = threading.Event()
    progress = [0]
    done = threading.Event()
    tids: list = []

    def raw() -> None:
        tids.append(threading.get_native_id())
        try:
            spin_until(release, progress)
        finally:
            done.set()

    _thread.start_new_thread(raw, ())
    try:
        wait_until(lambda: progress[0] > 0)
        sampler.sample_once()  # baseline
        start = progress[0]
        wait_until(lambda: progress[0] > start + 2000)
        sampler.sample_once()
    finally:
        release.set()
        done.wait(30)
    samples = [s for s in sampler.drain().samples if "spin_until" in function_names(s.stack)]
    assert samples and {s.thread_id for s in samples} == set(tids)
    assert sum(s.cpu_nanos for s in samples) > 0
