"""A small traced program that the end-to-end tests run under `otelprof run`.

It burns CPU in `interop_hot_loop` inside five spans (main thread) and in a named worker
thread, then writes the trace and span ids it used to the JSON file named by argv[1].
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

SPANS = 5
SECONDS_PER_SPAN = 0.4


def interop_hot_loop(seconds: float) -> int:
    total = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for i in range(2000):
            total += i * i
    return total


def interop_worker() -> None:
    interop_hot_loop(SPANS * SECONDS_PER_SPAN)


def main() -> None:
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("interop")
    worker = threading.Thread(target=interop_worker, name="interop-worker")
    worker.start()
    spans: List[Dict[str, str]] = []
    for n in range(SPANS):
        with tracer.start_as_current_span(f"GET /interop/{n}") as span:
            context = span.get_span_context()
            spans.append(
                {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
            )
            interop_hot_loop(SECONDS_PER_SPAN)
    worker.join()
    Path(sys.argv[1]).write_text(json.dumps(spans))


if __name__ == "__main__":
    main()
