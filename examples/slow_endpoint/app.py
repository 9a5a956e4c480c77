"""A small shop service whose ``GET /slow`` is slow because of one function: ``checksum_inventory``.

Run it under ``opentelemetry-instrument`` (the Flask instrumentation makes the spans) or under
``otelprof run`` / plain ``python`` (it then sets up the OpenTelemetry SDK itself); see README.md.
It prints ``listening on http://127.0.0.1:PORT`` once it serves. With ``SPANS_FILE`` set, every
ended span is also written there as one JSON object per line (what the README and tests read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Dict, Sequence

from flask import Flask, jsonify
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from werkzeug.serving import make_server

ROUNDS = int(os.environ.get("SLOW_ROUNDS", "60000"))

app = Flask(__name__)
tracer = trace.get_tracer("shop")
INVENTORY = {item: (item * 37) % 100 + 0.99 for item in range(1000)}


def lookup_price(item_id: int) -> float:
    return INVENTORY.get(item_id, 0.0)


def checksum_inventory(rounds: int) -> str:
    """The culprit: re-hashes the inventory on every request instead of caching the digest."""
    digest = b""
    for position in range(rounds):
        digest = hashlib.sha256(digest + str(position).encode()).digest()
    return digest.hex()


def render_report(prices: Dict[int, float]) -> str:
    return json.dumps({"items": len(prices), "total": round(sum(prices.values()), 2)})


@app.route("/fast/<int:item_id>")
def fast(item_id: int) -> Any:
    return jsonify(item=item_id, price=lookup_price(item_id))


@app.route("/slow")
def slow() -> Any:
    # A child span, so the trace shows the request's parts; the checksum runs inside it.
    with tracer.start_as_current_span("verify inventory"):
        checksum = checksum_inventory(ROUNDS)
    return jsonify(checksum=checksum, report=render_report(INVENTORY))


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span as one JSON line: name, ids, parent, attributes, duration."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                context = span.get_span_context()
                assert context is not None
                record = {
                    "name": span.name,
                    "trace_id": f"{context.trace_id:032x}",
                    "span_id": f"{context.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                    "parent_is_remote": bool(span.parent and span.parent.is_remote),
                    "duration_ns": (span.end_time or 0) - (span.start_time or 0),
                    "attributes": {
                        k: list(v) if isinstance(v, tuple) else v
                        for k, v in (span.attributes or {}).items()
                    },
                }
                self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def setup_tracing() -> None:
    """Use the SDK that ``opentelemetry-instrument`` configured, or configure one here."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        FlaskInstrumentor().instrument_app(app)
    spans_file = os.environ.get("SPANS_FILE")
    if spans_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(spans_file)))


def main(argv: Sequence[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 0
    setup_tracing()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", port, app, threaded=True)
    # SIGTERM and Ctrl-C end the process the normal way: the SDK and the profiler flush at exit.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
