"""Runs a test app under the profiler and records what the agent did, without touching its output.

``python -m tests.faults.probe APP.py [ARGS...]`` (inside ``otelprof run``) wraps the running
profiler before the app starts: every export attempt becomes a JSON line in the file named by
``FAULT_PROBE_FILE``, the export queue's high-water mark is kept, and when the processor has
shut down one ``stats`` line sums it all up. The app itself runs unchanged via ``runpy``.

The profiler starts before the probe does (``otelprof run``'s bootstrap), so an attempt in that
first instant goes unrecorded: count attempts at the server; the stats line is complete.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from typing import Any, Dict, Optional

PROBE_FILE_ENV = "FAULT_PROBE_FILE"


class _Recorder:
    """Appends JSON lines, one ``write`` each: no lock, so a fork can never inherit one held."""

    def __init__(self, path: str) -> None:
        self._path = path

    def write(self, event: Dict[str, Any]) -> None:
        line = json.dumps({"pid": os.getpid(), **event}) + "\n"
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())  # O_APPEND: concurrent lines do not interleave
        finally:
            os.close(fd)


class _RecordingExporter:
    """Delegates to the agent's exporter; one event per attempt (status and seconds taken)."""

    def __init__(self, inner: Any, recorder: _Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def export(self, request: Any, timeout_seconds: float) -> Any:
        start = time.monotonic()
        result = self._inner.export(request, timeout_seconds)
        self._recorder.write(
            {
                "event": "export",
                "status": result.status.name,
                "seconds": round(time.monotonic() - start, 4),
                "message": result.message,
            }
        )
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()


def _install(profiler: Any, recorder: _Recorder) -> None:
    processor = profiler.processor
    sampler = profiler.sampler
    # The sampler's per-interval and per-thread state, at its largest just before each drain.
    peaks = {"interval_keys": 0, "interval_threads": 0, "thread_states": 0}
    original_drain = sampler.drain

    def drain() -> Any:
        interval = sampler._interval
        peaks["interval_keys"] = max(peaks["interval_keys"], len(interval.counts))
        peaks["interval_threads"] = max(peaks["interval_threads"], len(interval.thread_labels))
        peaks["thread_states"] = max(peaks["thread_states"], len(sampler._cpu_state))
        return original_drain()

    sampler.drain = drain
    # The queue only grows in _collect_once: its length right after each call is every peak.
    # (Observed from outside, not by swapping the deque under the running worker thread.)
    queue_peak = [len(processor._queue)]
    original_collect_once = processor._collect_once

    def collect_once() -> None:
        original_collect_once()
        queue_peak[0] = max(queue_peak[0], len(processor._queue))

    processor._collect_once = collect_once
    processor.exporter = _RecordingExporter(processor.exporter, recorder)
    original_shutdown = processor.shutdown

    def shutdown(timeout_seconds: float) -> None:
        start = time.monotonic()
        try:
            original_shutdown(timeout_seconds)
        finally:
            recorder.write(
                {
                    "event": "stats",
                    "shutdown_seconds": round(time.monotonic() - start, 4),
                    "queue_size": processor._queue_size,
                    "queue_high_water": queue_peak[0],
                    "dropped_requests": processor.dropped_requests,
                    "exported_requests": processor.exported_requests,
                    "failed_requests": processor.failed_requests,
                    "sampler_thread_states": len(sampler._cpu_state),
                    "peak_interval_keys": peaks["interval_keys"],
                    "peak_interval_threads": peaks["interval_threads"],
                    "peak_thread_states": peaks["thread_states"],
                    "threads_alive": threading.active_count(),
                }
            )

    processor.shutdown = shutdown
    recorder.write({"event": "started", "pid": os.getpid()})


def main() -> None:
    app = sys.argv[1]
    path: Optional[str] = os.environ.get(PROBE_FILE_ENV)
    # Only look at a profiler ``otelprof run`` started: a bare run must not even import it.
    otelprof = sys.modules.get("otelprof")
    profiler = otelprof.get_profiler() if otelprof is not None else None
    if profiler is not None and path:
        _install(profiler, _Recorder(path))
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(app)))
    runpy.run_path(app, run_name="__main__")


if __name__ == "__main__":
    main()
