"""A Celery app as its users write it: a filesystem broker, tracing set up per pool child.

``celery -A celery_app worker`` runs it; ``python celery_app.py produce N`` sends N slow tasks
from inside one span and prints its trace id. Everything lives under ``$CELERY_APP_DIR``: the
broker's folders, ``spans-<pid>.jsonl`` (every span a child ended) and ``done-<pid>-<n>.json``
(written by a task when its work is done).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time

from celery import Celery
from celery.signals import worker_process_init

BASE = os.environ["CELERY_APP_DIR"]
BROKER = os.path.join(BASE, "broker")
CONTROL = os.path.join(BASE, "control")
for folder in (BROKER, CONTROL):
    os.makedirs(folder, exist_ok=True)

app = Celery("celery_app", broker="filesystem://")
app.conf.broker_transport_options = {
    "data_folder_in": BROKER,
    "data_folder_out": BROKER,
    "control_folder": CONTROL,
    "store_processed": False,
}
app.conf.worker_hijack_root_logger = False
_tasks_run = itertools.count()


class JsonLinesSpanExporter:
    """Writes each ended span as one JSON line, synchronously (a child may die right after)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        with open(self.path, "a") as f:
            for span in spans:
                record = {
                    "name": span.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "span_id": format(span.context.span_id, "016x"),
                    "attributes": dict(span.attributes),
                }
                f.write(json.dumps(record) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


def setup_tracing(spans_path: str = "") -> None:
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    if spans_path:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(spans_path)))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument()


@worker_process_init.connect(weak=False)
def _trace_this_pool_child(**_: object) -> None:
    # What opentelemetry-instrumentation-celery documents for the prefork pool.
    setup_tracing(os.path.join(BASE, f"spans-{os.getpid()}.jsonl"))


def checksum_ledger(cpu_seconds: float) -> int:
    """The known slow function: a fixed amount of this thread's CPU, however busy the box is."""
    total = 0
    start = time.thread_time()
    while time.thread_time() - start < cpu_seconds:
        for i in range(10_000):
            total = (total * 31 + i) % 1000003
    return total


@app.task(name="ledger.slow")
def slow(cpu_seconds: float) -> int:
    result = checksum_ledger(cpu_seconds)
    done = {"pid": os.getpid(), "thread_id": threading.get_native_id()}
    path = os.path.join(BASE, f"done-{os.getpid()}-{next(_tasks_run)}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(done, f)
    os.replace(path + ".tmp", path)  # the test never reads a half-written file
    return result


def produce(count: int) -> None:
    from opentelemetry import trace

    setup_tracing()
    with trace.get_tracer("producer").start_as_current_span("produce") as span:
        for _ in range(count):
            slow.delay(0.3)
        print(format(span.get_span_context().trace_id, "032x"), flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["produce"]:
    produce(int(sys.argv[2]))
