"""A program with one known hot function; runs until the profiler has sampled it enough."""

import os
import sys

import otelprof


def hot_function(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def main() -> int:
    profiler = otelprof.get_profiler()
    if profiler is None:
        print("no profiler", file=sys.stderr)
        return 99
    ticks = int(os.environ.get("BUSY_APP_TICKS", "30"))
    start = profiler.sampler._interval.ticks
    hot_function(20000)
    while profiler.sampler._interval.ticks < start + ticks:
        hot_function(20000)
    print("busy app done")
    return int(os.environ.get("BUSY_APP_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
