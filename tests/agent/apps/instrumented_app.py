"""An app using the OpenTelemetry API; run under opentelemetry-instrument by the test."""

import sys

from opentelemetry import trace

import otelprof


def traced_work() -> None:
    sum(i * i for i in range(20000))


def main() -> int:
    profiler = otelprof.get_profiler()
    if profiler is None:
        print("profiler not started", file=sys.stderr)
        return 3
    tracer = trace.get_tracer("instrumented_app")
    while profiler.sampler._interval.ticks < 30:
        with tracer.start_as_current_span("work"):
            traced_work()
    provider = trace.get_tracer_provider()
    print("provider", type(provider).__name__, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
