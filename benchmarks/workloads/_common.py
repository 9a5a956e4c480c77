"""Shared by the benchmark workloads: the work-phase measurement and the result file."""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from typing import Any, Dict, Optional, Tuple

# The harness names the file each workload writes its measurements to.
RESULT_ENV = "OTELPROF_BENCH_RESULT"
# benchmarks/corun.py names a directory where the two runs of a pair meet before their work
# phases: each writes a ``<pid>.ready`` file there and waits for a ``go`` file.
BARRIER_ENV = "OTELPROF_BENCH_BARRIER"
BARRIER_TIMEOUT_SECONDS = 300.0


def _rusage_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _rusage_parts() -> Dict[str, float]:
    """This process's user and system CPU, context switches and page faults, for telling apart
    where an overhead is paid: in the program's own instructions (user), in the kernel
    (system), in threads handing the CPU (and the GIL) to each other (switches), or in memory
    touched for the first time (page faults)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "user": usage.ru_utime,
        "system": usage.ru_stime,
        "voluntary_switches": usage.ru_nvcsw,
        "involuntary_switches": usage.ru_nivcsw,
        "page_faults": usage.ru_minflt + usage.ru_majflt,
    }


def task_cpu_seconds() -> Dict[int, float]:
    """CPU time of every OS thread of this process (Python or native), by thread id.

    schedstat gives nanoseconds; the stat fallback has clock-tick resolution.
    """
    out: Dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        try:
            with open(f"/proc/self/task/{name}/schedstat") as f:
                out[tid] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            try:
                with open(f"/proc/self/task/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[tid] = (int(fields[11]) + int(fields[12])) / ticks
            except (OSError, ValueError, IndexError):
                continue
    return out


class WorkPhase:
    """Measures the work phase: process CPU, wall, and the CPU of threads that predate it.

    Threads that exist when the phase starts (other than the caller) belong to whatever
    was loaded before the workload: a profiler's sampler and exporter threads. Their CPU
    over the phase is the profiler's own in-process cost, measured directly. ``own_threads``
    names the workload's own threads started before the phase (a span exporter's), left out.
    """

    def __init__(self, own_threads: Tuple[str, ...] = ()) -> None:
        self.own_threads = own_threads

    def __enter__(self) -> WorkPhase:
        _meet_at_barrier()
        self._caller = threading.get_native_id()
        own = {t.native_id for t in threading.enumerate() if t.name in self.own_threads}
        self._before = {
            t: c for t, c in task_cpu_seconds().items() if t != self._caller and t not in own
        }
        self._parts0 = _rusage_parts()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_seconds = time.perf_counter() - self._wall0
        parts = _rusage_parts()
        self.parts = {name: parts[name] - self._parts0[name] for name in parts}
        # The total from the same reading as its parts, so user + system is the CPU reported.
        self.cpu_seconds = self.parts["user"] + self.parts["system"]
        after = task_cpu_seconds()
        names = {t.native_id: t.name for t in threading.enumerate()}
        self.background_by_thread: Dict[str, float] = {}
        for tid, cpu in self._before.items():
            if tid in after:
                name = names.get(tid) or _comm(tid)
                spent = max(0.0, after[tid] - cpu)
                self.background_by_thread[name] = self.background_by_thread.get(name, 0.0) + spent
        self.background_cpu_seconds = sum(self.background_by_thread.values())
        self.background_threads = len(self._before)


def _meet_at_barrier() -> None:
    """Under ``corun.py``: start the work phase together with the other run of the pair.

    Without this the run with the longer start-up (a profiler's imports and threads) began its
    work later, so the two work phases overlapped only in part and the machine each one saw
    differed: one run had the other's start-up as its neighbour, the other ran its end alone.
    (Polling: this is before the measured phase, and a file is all both sides can see.)
    """
    path = os.environ.get(BARRIER_ENV)
    if not path:
        return
    with open(os.path.join(path, f"{os.getpid()}.ready"), "w"):
        pass
    go = os.path.join(path, "go")
    deadline = time.monotonic() + BARRIER_TIMEOUT_SECONDS
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(f"benchmark: no start signal in {path} after {BARRIER_TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.001)


def _comm(tid: int) -> str:
    """The kernel's name for a native (non-Python) thread, e.g. a Rust sampler's."""
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip() or str(tid)
    except OSError:
        return str(tid)


def report(
    phase: WorkPhase,
    truth: Optional[Dict[str, Dict[str, float]]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> None:
    """Write the measurements as JSON to the harness's file (or stdout when run by hand)."""
    result = {
        "work_cpu_seconds": phase.cpu_seconds,
        "work_wall_seconds": phase.wall_seconds,
        "work_parts": phase.parts,
        "background_cpu_seconds": phase.background_cpu_seconds,
        "background_threads": phase.background_threads,
        "background_by_thread": phase.background_by_thread,
        "process_cpu_seconds": _rusage_cpu(resource.RUSAGE_SELF),
        "children_cpu_seconds": _rusage_cpu(resource.RUSAGE_CHILDREN),
        "truth": truth or {},
        "extra": extra or {},
    }
    path = os.environ.get(RESULT_ENV)
    if path:
        with open(path, "w") as f:
            json.dump(result, f)
    else:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")


def scaled(count: int, scale: float) -> int:
    """A fixed amount of work, scaled for quick runs (never below one unit)."""
    return max(1, round(count * scale))
