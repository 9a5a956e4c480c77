"""What span correlation costs the application's spans: start/end with the profiler on vs off.

    python benchmarks/span_overhead.py                 # 10 interleaved runs per mode
    python benchmarks/span_overhead.py --runs 20 --iterations 20000

Each run is a fresh process with an SDK ``TracerProvider`` and a ``BatchSpanProcessor`` (spans
go to an exporter that drops them), as a service under ``opentelemetry-instrument`` has; in
``on`` runs the profiler is started after the SDK, at its defaults (100 Hz, correlation, span
attributes), exactly as the ``opentelemetry_post_instrument`` hook starts it; ``uncorrelated``
runs start it too and then remove the correlation hooks, to separate their cost from the rest
of the agent's. Runs rotate through the modes so drift on a shared machine hits all of them.
Per run, the calling thread's CPU time per operation (time.thread_time_ns: the work done in
the span path, not time lost waiting for the GIL) is the median of its batches; the report
gives the median over runs and the on/off ratio.

Operations: ``request`` is a root span with one child, both made current (two starts, two
attaches, two detaches, two ends: what an instrumented request with one inner span does);
``span`` is start and end of a span never made current (the span processor's share);
``attach`` is attach and detach of a context holding a span (the context hook's share).
``clock`` is one ``time.thread_time_ns()`` call, the same in both modes: the exact CPU time of a
span takes two, and their price is the machine's syscall price. ``flask`` is a whole request to
a Flask app under the OpenTelemetry Flask instrumentation (one server span and one inner span,
a little JSON work), through Werkzeug's test client: the cost in proportion to a small request.
The report ends with the Python calls per ``flask`` request in each mode (``sys.setprofile``):
a count that, unlike the timings, does not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODES = ("off", "uncorrelated", "on")
OPERATIONS = ("request", "span", "attach", "clock", "flask")
BATCHES = 7


def _measure(operation: Callable[[], object], iterations: int) -> float:
    """Median thread CPU ns per operation over BATCHES batches."""
    per_batch = max(1, iterations // BATCHES)
    results = []
    for _ in range(BATCHES):
        start = time.thread_time_ns()
        for _ in range(per_batch):
            operation()
        results.append((time.thread_time_ns() - start) / per_batch)
    return statistics.median(results)


def child(mode: str, iterations: int) -> Dict[str, float]:
    """One run: set up the SDK (and the profiler when ``on``), then time the operations."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")
    profiler = None
    if mode != "off":
        import otelprof

        profiler = otelprof.start(
            output_dir=tempfile.mkdtemp(prefix="span-overhead-"), export_interval_seconds=3600
        )
        if mode == "uncorrelated":
            # The rest of the agent (sampler, export thread, GC hooks) without correlation:
            # on minus uncorrelated is what correlation itself costs.
            profiler.correlation.stop()

    def request() -> None:
        with tracer.start_as_current_span("GET /items"), tracer.start_as_current_span("query"):
            pass

    def span() -> None:
        tracer.start_span("detached").end()

    from opentelemetry import context

    with tracer.start_as_current_span("holder"):
        holding = context.get_current()

    def attach() -> None:
        context.detach(context.attach(holding))

    flask_request = _flask_request(tracer)
    for _ in range(2000):  # warm caches and the batch processor's queue
        request()
        flask_request()
    result: Dict[str, float] = {
        "request": _measure(request, iterations),
        "span": _measure(span, iterations),
        "attach": _measure(attach, iterations),
        "clock": _measure(time.thread_time_ns, iterations),
        "flask": _measure(flask_request, max(BATCHES, iterations // 10)),
    }
    result["flask_calls"] = _python_calls_per(flask_request, 20)
    if profiler is not None:
        result["write_failures"] = profiler.correlation.accounting.write_failures
        profiler.stop()
    provider.shutdown()
    return result


def _python_calls_per(operation: Callable[[], object], count: int) -> float:
    """Python function calls per operation on this thread: unlike a timing, the same on every
    machine (a garbage collection's callbacks may add a fraction)."""
    calls = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1

    sys.setprofile(profile)
    try:
        for _ in range(count):
            operation()
    finally:
        sys.setprofile(None)
    return calls[0] / count


def _flask_request(tracer: Any) -> Callable[[], object]:
    """A GET through an instrumented Flask app (test client: no sockets, no other threads)."""
    from flask import Flask, jsonify
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = Flask("bench")
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    items: List[Dict[str, Any]] = [
        {"id": i, "name": f"item {i}", "price": i * 1.5} for i in range(20)
    ]

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        with tracer.start_as_current_span("load item"):
            found = [i for i in items if i["id"] <= item_id]
        return jsonify(items=found)

    client = app.test_client()
    return lambda: client.get("/items/10")


def run(runs: int, iterations: int) -> Dict[str, Dict[str, List[float]]]:
    results: Dict[str, Dict[str, List[float]]] = {m: {o: [] for o in OPERATIONS} for m in MODES}
    for index in range(runs):
        order = MODES[index % len(MODES) :] + MODES[: index % len(MODES)]
        for mode in order:
            output = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--iterations", str(iterations)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            measured = json.loads(output.strip().splitlines()[-1])
            assert not measured.get("write_failures"), measured
            for operation in (*OPERATIONS, "flask_calls"):
                results[mode].setdefault(operation, []).append(measured[operation])
        print(f"run {index + 1}/{runs} done", file=sys.stderr)
    return results


def report(results: Dict[str, Dict[str, List[float]]], runs: int, iterations: int) -> str:
    lines = [
        f"span_overhead: {runs} interleaved runs per mode, {iterations} operations per run,"
        f" Python {sys.version.split()[0]}",
        "",
        "| operation | off (µs) | agent without correlation (µs) | on (µs) | added by"
        " correlation (µs) | ratio on/off |",
        "|---|---|---|---|---|---|",
    ]
    for operation in OPERATIONS:
        off, uncorrelated, on = (
            statistics.median(results[mode][operation]) / 1000 for mode in MODES
        )
        lines.append(
            f"| {operation} | {off:.2f} | {uncorrelated:.2f} | {on:.2f}"
            f" | {on - uncorrelated:+.2f} | {on / off:.2f} |"
        )
    off, uncorrelated, on = (statistics.median(results[mode]["flask_calls"]) for mode in MODES)
    lines += [
        "",
        f"Python calls per `flask` request: off {off:.1f}, agent without correlation"
        f" {uncorrelated:.1f}, on {on:.1f} ({on - off:+.1f} over off)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per mode (default 10)")
    parser.add_argument("--iterations", type=int, default=20000, help="operations per run")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv) or None)
    if args.child:
        print(json.dumps(child(args.child, args.iterations)))
        return 0
    results = run(args.runs, args.iterations)
    print(report(results, args.runs, args.iterations))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
