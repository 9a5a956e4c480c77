"""The span processor's opt-in task clock (OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK=task).

``otelprof._native.span_clock_ns`` reads the thread's CPU clock for a thread's first 64 reads,
then a perf task-clock event that continues the count; these tests hold it to that on a real
kernel: it follows the thread's CPU time and not its waits, it moves onto perf (unless the
process may not open perf events, which it then says), its readings never go back across the
move, and the event goes with its thread and in a fork child.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from typing import Callable, List

import pytest

from otelprof import _native

if not hasattr(_native, "span_clock_ns"):  # Linux only (elsewhere: the thread clock)
    assert not sys.platform.startswith("linux"), "otelprof._native lacks span_clock_ns on Linux"
    pytest.skip("span_clock_ns is Linux only", allow_module_level=True)

from otelprof._native import span_clock_ns, span_clock_source

MOVE_AFTER = 64  # SPAN_CLOCK_PERF_AFTER in the C source


def _in_a_new_thread(body: Callable[[], object]) -> object:
    result: List[object] = []
    thread = threading.Thread(target=lambda: result.append(body()))
    thread.start()
    thread.join(60)
    assert result, "the thread died"
    return result[0]


def _spin_cpu(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _follows_cpu_not_waits() -> tuple:
    before = span_clock_ns(), time.thread_time_ns()
    _spin_cpu(0.05)
    spun = span_clock_ns() - before[0], time.thread_time_ns() - before[1]
    before_wait = span_clock_ns()
    threading.Event().wait(0.05)
    waited = span_clock_ns() - before_wait
    return spun, waited


@pytest.mark.parametrize("moved", [False, True])
def test_it_counts_the_threads_cpu_time_and_not_its_waits(moved: bool) -> None:
    def body() -> tuple:
        if moved:
            for _ in range(MOVE_AFTER + 1):
                span_clock_ns()
        return span_clock_source(), _follows_cpu_not_waits()

    source, ((clock_spun, thread_spun), waited) = _in_a_new_thread(body)  # type: ignore[misc]
    assert source in (("perf", "refused") if moved else ("thread", "refused"))
    # The perf clock also counts interrupts served while the thread ran, never less.
    assert clock_spun >= 0.9 * thread_spun
    assert waited < 0.02 * 1e9  # 50 ms of waiting is not CPU time


def test_a_long_lived_thread_moves_to_perf_and_its_readings_go_on() -> None:
    def body() -> tuple:
        readings = [span_clock_ns() for _ in range(MOVE_AFTER + 10)]
        return span_clock_source(), readings, time.thread_time_ns(), span_clock_ns()

    source, readings, thread_now, clock_now = _in_a_new_thread(body)  # type: ignore[misc]
    # "refused": this process may not open perf events (seccomp, perf_event_paranoid 3); the
    # kernel said so, and the thread clock stays. Anything else must have moved.
    assert source in ("perf", "refused")
    assert all(b >= a for a, b in zip(readings, readings[1:]))
    # Continued from the thread clock: still on its scale (off by the interrupt time at most).
    assert abs(clock_now - thread_now) < 0.5 * thread_now + 5_000_000


def _perf_event_fds() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[perf_event]"
    return count


def test_each_threads_event_is_closed_when_the_thread_ends() -> None:
    def many_reads() -> None:
        for _ in range(MOVE_AFTER + 5):
            span_clock_ns()

    # Events of threads from earlier tests may still be closing (below): at most this many.
    before = _perf_event_fds()
    threads = [threading.Thread(target=many_reads) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # join() returns when the thread's Python state is done; its thread-local destructors
    # (which close the events) run as the OS thread ends, a moment later.
    deadline = time.monotonic() + 30
    while _perf_event_fds() > before:
        assert time.monotonic() < deadline, "events left open after their threads ended"
        time.sleep(0.001)


FORK_CHILD = """
import os, sys, time
from otelprof._native import span_clock_ns, span_clock_source
for _ in range(100):
    span_clock_ns()
parent_source = span_clock_source()
pid = os.fork()
if pid == 0:
    # The event counted the parent's thread: the child starts over on its own CPU clock.
    source = span_clock_source()
    start, thread_start = span_clock_ns(), time.thread_time_ns()
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass
    spun = span_clock_ns() - start
    os._exit(0 if source == "thread" and spun >= 0.9 * (time.thread_time_ns() - thread_start)
             else 3)
_, status = os.waitpid(pid, 0)
print(parent_source, os.waitstatus_to_exitcode(status))
"""


def test_a_fork_child_counts_its_own_time() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    parent_source, child_status = result.stdout.split()
    assert parent_source in ("perf", "refused")
    assert child_status == "0"
