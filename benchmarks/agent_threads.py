"""Where the agent's own CPU goes: each agent thread's CPU, and each export's, on a workload.

    python benchmarks/agent_threads.py                                   # web workload
    python benchmarks/agent_threads.py --export-interval 2 -- \
        benchmarks/workloads/web_service.py --scale 0.4

Runs the workload in this process under ``otelprof.start()`` (the workload's ``__main__`` as
``otelprof run`` would), then prints the CPU of the sampler, exporter and window threads (their
thread CPU clocks) as a share of the process's CPU, and the thread CPU of each collection (the
exporter's turning samples into an OTLP request). The first collection decodes every frame seen
for the first time, the last runs at exit: the ones between are the steady state. A tuning aid
for one machine at a time; the overhead the application sees is ``corun.py``'s business.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_WORKLOAD = [
    str(Path(__file__).resolve().parent / "workloads" / "web_service.py"),
    "--scale",
    "0.2",
]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-interval", type=float, default=10.0, help="seconds")
    parser.add_argument("workload", nargs="*", help="script and its arguments (after --)")
    args = parser.parse_args(argv)
    workload = args.workload or DEFAULT_WORKLOAD

    import otelprof
    from otelprof._threads import running_agent_threads
    from otelprof.profiler import Profiler

    collections: List[float] = []
    collect = Profiler.collect

    def timed_collect(self: Profiler) -> Any:
        started = time.thread_time()
        try:
            return collect(self)
        finally:
            collections.append(time.thread_time() - started)

    Profiler.collect = timed_collect  # type: ignore[method-assign]
    threads_cpu = {}
    with tempfile.TemporaryDirectory() as out:
        otelprof.start(output_dir=out, export_interval_seconds=args.export_interval)
        sys.argv = list(workload)
        with contextlib.suppress(SystemExit):  # the workload's exit code is not ours
            runpy.run_path(workload[0], run_name="__main__")
        # Read before stop(): the threads' clocks go with them.
        for thread in running_agent_threads():
            if thread.ident is not None:
                clock = time.pthread_getcpuclockid(thread.ident)
                threads_cpu[thread.name] = time.clock_gettime(clock)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        otelprof.stop()
    process = usage.ru_utime + usage.ru_stime
    print(f"process CPU {process:.2f} s")
    for name, seconds in sorted(threads_cpu.items()):
        print(f"  {name:22s} {seconds:7.3f} s  {100 * seconds / process:5.2f} % of the process")
    steady = collections[1:-1]
    print(
        "collections (ms of thread CPU): "
        + ", ".join(f"{1000 * seconds:.1f}" for seconds in collections)
    )
    if steady:
        median_ms = 1000 * statistics.median(steady)
        print(f"  steady state (between first and last): median {median_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
