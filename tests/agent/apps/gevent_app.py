"""A gevent program: two greenlets, each inside its own span, interleaving on the main thread.

``gevent.monkey.patch_all()`` runs first, as gevent asks. With ``START_AFTER_PATCH=1`` the
program starts the profiler itself after patching (``otelprof.start()`` in code); otherwise it
runs under ``otelprof run``, whose agent started before the first line. The spans it ended are
written as JSON lines to ``argv[1]``.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from green_common import profiler_started, ticks  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

TICKS = 40  # sampler ticks each greenlet computes through, whatever the machine's speed


def _crunch() -> int:
    return sum(i * i for i in range(3000))


def work_alpha() -> None:
    until = ticks() + TICKS
    while ticks() < until:
        _crunch()
        gevent.sleep(0)  # let the other greenlet run: the two interleave on this thread


def work_beta() -> None:
    until = ticks() + TICKS
    while ticks() < until:
        _crunch()
        gevent.sleep(0)


def in_span(tracer: trace.Tracer, name: str, work) -> None:  # type: ignore[no-untyped-def]
    with tracer.start_as_current_span(name):
        work()


def main() -> int:
    if not profiler_started():
        return 3
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("gevent_app")
    with tracer.start_as_current_span("warm-up"):
        pass  # under otelprof run the agent attaches to the provider at its first span
    gevent.joinall(
        [
            gevent.spawn(in_span, tracer, "alpha", work_alpha),
            gevent.spawn(in_span, tracer, "beta", work_beta),
        ]
    )
    with open(sys.argv[1], "w") as spans:
        for span in exporter.get_finished_spans():
            record = {
                "name": span.name,
                "span_id": f"{span.context.span_id:016x}",
                "attributes": dict(span.attributes or {}),
            }
            spans.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
