"""Leaves SIGTERM at its default: the agent must still flush before the process dies of it."""

import os
import threading

import otelprof

profiler = otelprof.get_profiler()
idle = threading.Event()
while profiler is not None and profiler.sampler._interval.ticks < 5:
    idle.wait(0.01)
print(f"ready {os.getpid()}", flush=True)
idle.wait(60)
