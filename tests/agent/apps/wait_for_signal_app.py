"""Blocks until SIGTERM; prints its pid so the test can check exec kept it."""

import os
import signal
import sys
import threading

import otelprof

done = threading.Event()


def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    done.set()


signal.signal(signal.SIGTERM, on_term)
profiler = otelprof.get_profiler()
while profiler is not None and profiler.sampler._interval.ticks < 5:
    done.wait(0.01)  # let the profiler record something before we announce readiness
print(f"ready {os.getpid()}", flush=True)
done.wait(60)
sys.exit(42)
