"""Overhead workload: a Flask service on a real loopback server, driven by a fixed request count.

Four endpoints do the work a small service does: SQL queries on an in-memory SQLite database,
JSON encoding and decoding, and Jinja2 templates. Requests come from a separate load-generator
process, so the profiled process only serves. werkzeug's threaded server closes every connection
after one response, so each request gets a fresh thread: thread churn the sampler must handle.
``--server waitress`` serves it the production way instead: a pool of 4 threads, keep-alive.
Spans are created through the OpenTelemetry Flask instrumentation when it is installed, as in
the services the agent is made for.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WorkPhase, report, scaled
from flask import Flask, jsonify, render_template_string, request
from werkzeug.serving import make_server

# Calibrated so a bare run takes about 20 s on the benchmark machine.
REQUESTS = 11000
PAGE = """<html><body><h1>Category {{ category }}</h1><table>
{% for item in items %}<tr><td>{{ item.id }}</td><td>{{ item.name|title }}</td>
<td>{{ "%.2f"|format(item.price) }}</td><td>{{ item.tags|join(", ") }}</td></tr>{% endfor %}
</table><p>{{ items|length }} items, total {{ "%.2f"|format(total) }}</p></body></html>"""


class Database:
    """One in-memory SQLite connection shared by the request threads, like a pool of one."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.Lock()

    def query(self, sql: str, params: Tuple[Any, ...]) -> List[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def insert(self, sql: str, params: Tuple[Any, ...]) -> None:
        with self.lock:
            self.conn.execute(sql, params)
            self.conn.commit()


def seed_database() -> Database:
    database = Database()
    conn = database.conn
    conn.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, category INTEGER, price REAL,"
        " tags TEXT); CREATE INDEX items_category ON items(category);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL, digest TEXT);"
    )
    conn.executemany(
        "INSERT INTO items (name, category, price, tags) VALUES (?, ?, ?, ?)",
        [
            (f"item number {i}", i % 7, (i * 37 % 1000) / 10, f"t{i % 5},t{i % 11}")
            for i in range(2000)
        ],
    )
    conn.commit()
    return database


def create_app(database: Database) -> Flask:
    app = Flask("bench")

    @app.get("/items")
    def list_items() -> Any:
        limit = int(request.args.get("limit", 20))
        rows = database.query(
            "SELECT id, name, price, tags FROM items WHERE price > ? ORDER BY price DESC LIMIT ?",
            (limit, limit),
        )
        return jsonify(items=[dict(row) for row in rows], count=len(rows))

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int) -> Any:
        rows = database.query("SELECT * FROM items WHERE id = ?", (item_id,))
        return jsonify(dict(rows[0]))

    @app.get("/page")
    def page() -> Any:
        category = int(request.args.get("category", 0))
        rows = database.query(
            "SELECT id, name, price, tags FROM items WHERE category = ? LIMIT 60", (category,)
        )
        items = [dict(row, tags=row["tags"].split(",")) for row in rows]
        return render_template_string(
            PAGE, category=category, items=items, total=sum(i["price"] for i in items)
        )

    @app.post("/orders")
    def create_order() -> Any:
        order: Dict[str, Any] = request.get_json()
        skus = [line["sku"] for line in order["lines"]]
        prices = {
            row["name"]: row["price"]
            for row in database.query("SELECT name, price FROM items WHERE id <= ?", (len(skus),))
        }
        total = sum(line["qty"] * (prices.get(line["sku"], 9.99)) for line in order["lines"])
        digest = hashlib.sha256(repr(sorted(skus)).encode()).hexdigest()
        database.insert(
            "INSERT INTO orders (customer, total, digest) VALUES (?, ?, ?)",
            (order["customer"], total, digest),
        )
        return jsonify(total=round(total, 2), digest=digest, lines=len(skus))

    return app


SPAN_EXPORT_THREAD = "OtelBatchSpanRecordProcessor"
"""The SDK's batch span processor thread: the service's own, not a profiler's."""


def instrument(app: Flask, export_spans: bool = False) -> bool:
    """Trace requests with the OpenTelemetry SDK when the packages are present.

    The provider is the global one, as ``opentelemetry-instrument`` sets it up: an in-process
    profiler attaches its span processor to it, so span accounting is part of what is measured.
    ``export_spans``: a batch span processor encodes every span as OTLP protobuf, as an OTLP
    exporter does before it sends, and drops the bytes (what a service exporting its traces
    spends on them, network aside; the attributes a profiler adds to spans are encoded too).
    """
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return False
    provider = TracerProvider()
    if export_spans:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(_encoding_exporter()))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    return True


def _encoding_exporter() -> Any:
    """A span exporter that encodes each batch as OTLP protobuf and drops the bytes."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class EncodingExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    return EncodingExporter()


class Server:
    """The service on a loopback port, in a background thread, served the way ``kind`` says."""

    def __init__(self, kind: str, app: Flask) -> None:
        self.kind = kind
        if kind == "waitress":
            import waitress.server

            self._waitress = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4)
            self.port = int(self._waitress.effective_port)  # type: ignore[union-attr]
            target = self._waitress.run
        else:
            self._werkzeug = make_server("127.0.0.1", 0, app, threaded=True)
            self.port = self._werkzeug.server_port
            target = self._werkzeug.serve_forever
        self._thread = threading.Thread(target=target, name="bench-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.kind == "waitress":
            self._waitress.close()
        else:
            self._werkzeug.shutdown()
            self._werkzeug.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests per second (paced, the service has headroom); 0: as fast as served",
    )
    parser.add_argument("--no-otel", action="store_true", help="serve without span creation")
    parser.add_argument(
        "--export-spans",
        action="store_true",
        help="encode every span as OTLP protobuf in a batch span processor (then drop it)",
    )
    parser.add_argument(
        "--server",
        choices=("werkzeug", "waitress"),
        default="werkzeug",
        help="werkzeug: a new thread per request; waitress: a pool of 4 threads, keep-alive",
    )
    args = parser.parse_args()
    for noisy in ("werkzeug", "waitress"):  # per-request lines would be measured too
        logging.getLogger(noisy).setLevel(logging.ERROR)
    requests = scaled(REQUESTS, args.scale) // args.concurrency * args.concurrency
    database = seed_database()
    app = create_app(database)
    traced = False if args.no_otel else instrument(app, args.export_spans)
    loadgen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loadgen.py")
    # No OTEL_*/PYTHON* variables and no site hooks: no profiler follows into the client.
    client_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTHON"))}
    with WorkPhase(own_threads=(SPAN_EXPORT_THREAD,)) as phase:
        server = Server(args.server, app)
        done = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                loadgen,
                "--port",
                str(server.port),
                "--requests",
                str(requests),
                "--concurrency",
                str(args.concurrency),
                "--rate",
                str(args.rate),
            ],
            env=client_env,
            capture_output=True,
            text=True,
            check=False,
        )
        server.stop()
        if args.export_spans:
            from opentelemetry import trace

            trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    database.conn.close()
    if done.returncode != 0:
        sys.exit(f"web_service: load generator failed: {done.stderr.strip()}")
    report(phase, extra={"requests": requests, "traced": traced, "rate": args.rate})


if __name__ == "__main__":
    main()
