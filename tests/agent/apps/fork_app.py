"""Forks with os.fork and multiprocessing; parent and children each do known work."""

import multiprocessing
import os
import sys

import otelprof


def _ticks() -> int:
    profiler = otelprof.get_profiler()
    return profiler.sampler._interval.ticks if profiler is not None else 0


def work_in(label_function, n: int = 20) -> None:
    """Run ``label_function`` until the sampler has ticked ``n`` more times (at least once).

    Counting from entry matters under load: a starved process can see the sampler tick many
    times before this loop starts.
    """
    start = _ticks()
    label_function()
    while _ticks() < start + n:
        label_function()


def parent_work() -> None:
    sum(i * i for i in range(20000))


def forked_child_work() -> None:
    sum(i * i for i in range(20000))


def mp_child_work() -> None:
    sum(i * i for i in range(20000))


def mp_target() -> None:
    work_in(mp_child_work)


def main() -> int:
    work_in(parent_work)
    pid = os.fork()
    if pid == 0:
        work_in(forked_child_work)
        print(f"forked child {os.getpid()} done", flush=True)
        sys.exit(0)  # a normal exit: atexit runs and flushes the child's profile
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    context = multiprocessing.get_context("fork")
    process = context.Process(target=mp_target)
    process.start()
    process.join()
    assert process.exitcode == 0
    work_in(parent_work, 40)
    print(f"parent {os.getpid()} children {pid} {process.pid}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
