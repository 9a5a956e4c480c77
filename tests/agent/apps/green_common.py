"""What the gevent and eventlet test programs share (imported after they patched)."""

import os
import sys

import otelprof


def profiler_started() -> bool:
    """Starts the profiler when asked (``START_AFTER_PATCH=1``: in code, after the patch);
    False, with a line on stderr, when none runs (under ``otelprof run`` one already does)."""
    if os.environ.get("START_AFTER_PATCH") == "1":
        otelprof.start()
    if otelprof.get_profiler() is None:
        print("profiler not started", file=sys.stderr)
        return False
    return True


def ticks() -> int:
    """The sampler's ticks so far: work runs through a number of them, whatever the speed."""
    profiler = otelprof.get_profiler()
    return profiler.sampler._interval.ticks if profiler is not None else 0
