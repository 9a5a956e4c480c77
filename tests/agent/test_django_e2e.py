"""Django, as a user runs it: gunicorn under ``opentelemetry-instrument``, the profiler enabled.

A minimal Django project (``apps/django_shop``) served by a real gunicorn (the sync worker and
the threaded one) on a free loopback port, started the zero-code way: the distro configures the
SDK, the Django instrumentation makes one server span per request, ``OTEL_TRACES_EXPORTER=console``
prints the spans (what the test compares against) and the agent writes ``.otlp.pb`` files. What
a user expects: the samples in the slow view's hot function link to that request's server span,
samples outside requests link to nothing, the endpoint is Django's route, not the URL, and the
server spans carry the agent's CPU time and hot functions.
"""

from __future__ import annotations

import json
import pathlib
import re
import signal
import subprocess
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import pytest

from otelprof.correlation import ENDPOINT_ATTRIBUTE, LOCAL_ROOT_SPAN_ID_ATTRIBUTE
from otelprof.reader import load_profiles
from otelprof.records import ProfileRecord
from otelprof.spans import CPU_TIME_ATTRIBUTE, CPU_TIME_SOURCE_ATTRIBUTE, HOT_FUNCTIONS_ATTRIBUTE
from otelprof.top import format_top
from tests.agent.e2e import APPS, BIN, child_env
from tests.agent.helpers import wait_until

ORDERS_ROUTE = "orders/<int:order_id>/"  # what the Django instrumentation puts in http.route
HEALTH_ROUTE = "health/"
SLOW_FUNCTION = "crunch_order_totals"
NESTING_FUNCTION = "walk_order_lines"  # nested order_id times above the slow function
REQUEST_HANDLER = "WSGIHandler.__call__"  # Django's entry point: every request runs inside it
ORDER_IDS = range(1, 9)  # distinct: a slow sample's stack depth names its request
HEALTH_CHECKS = 2 * len(ORDER_IDS)


def _serve(worker: str, native: bool, tmp_path: pathlib.Path) -> Dict[str, Any]:
    """Starts the project under gunicorn, sends the requests, stops it; returns what it wrote."""
    out = tmp_path / "profiles"
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    threads = "4" if worker == "gthread" else "1"
    command = [
        str(BIN / "opentelemetry-instrument"),
        str(BIN / "gunicorn"),
        *("--worker-class", worker, "--workers", "1", "--threads", threads),
        *("--bind", "127.0.0.1:0"),
        "django_shop.wsgi",
    ]
    env = child_env(
        # The Django instrumentation reads the settings when opentelemetry-instrument starts,
        # before gunicorn imports wsgi.py: they must be named in the environment.
        DJANGO_SETTINGS_MODULE="django_shop.settings",
        OTEL_SERVICE_NAME="django-shop",
        OTEL_TRACES_EXPORTER="console",  # the spans, as JSON on stdout
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_PROFILER_ENABLED="true",
        OTEL_PYTHON_PROFILER_OUTPUT_DIR=str(out),
        OTEL_PYTHON_PROFILER_EXPORT_INTERVAL="1",  # requests straddle exports too
        OTEL_PYTHON_PROFILER_NATIVE="true" if native else "false",
    )
    # Run from the project's directory, as users do: opentelemetry-instrument puts the working
    # directory on the path, so the settings import before gunicorn has started.
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, cwd=APPS, env=env, stdout=stdout, stderr=stderr)
    try:
        port = _wait_for_worker(process, stderr_path)
        paths = [
            path
            for order_id in ORDER_IDS
            for path in (f"/orders/{order_id}/", f"/{HEALTH_ROUTE}", f"/{HEALTH_ROUTE}")
        ]
        with ThreadPoolExecutor(max_workers=4) as clients:
            statuses = list(clients.map(lambda p: _get(port, p), paths))
        assert statuses == [200] * len(paths)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr_text = stderr_path.read_text()
    assert code == 0, stderr_text
    assert "Traceback" not in stderr_text and "Exception ignored" not in stderr_text, stderr_text
    result = load_profiles([str(out)])
    assert result.files and not result.errors, result.errors
    return {"spans": _console_spans(stdout_path.read_text()), "records": result.records}


def _wait_for_worker(process: subprocess.Popen, stderr_path: pathlib.Path) -> int:
    def booted() -> bool:
        assert process.poll() is None, stderr_path.read_text()
        return "Booting worker" in stderr_path.read_text()

    wait_until(booted, timeout_seconds=120)
    found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", stderr_path.read_text())
    assert found, stderr_path.read_text()
    return int(found.group(1))


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as response:
        response.read()
        return int(response.status)


def _console_spans(text: str) -> Dict[str, Dict[str, Any]]:
    """The console exporter's spans (indented JSON objects, one after another), by span id."""
    decoder = json.JSONDecoder()
    spans: Dict[str, Dict[str, Any]] = {}
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return spans
        span, position = decoder.raw_decode(text, position)
        spans[_hex(span["context"]["span_id"])] = span


def _hex(console_id: Optional[str]) -> Optional[str]:
    return console_id[2:] if console_id else None  # the console prints ids as 0x...


def _samples(records: List[ProfileRecord], sample_type: str) -> List[Any]:
    return [s for r in records if r.sample_type.type == sample_type for s in r.samples]


@pytest.mark.parametrize(
    ("worker", "native"),
    [("sync", True), ("gthread", True), ("gthread", False)],
    ids=["sync", "gthread", "gthread-context-hook"],
)
def test_a_django_project_under_gunicorn_and_opentelemetry_instrument(
    worker: str, native: bool, tmp_path: pathlib.Path
) -> None:
    served = _serve(worker, native, tmp_path)
    spans, records = served["spans"], served["records"]

    # One server span per request, named by the instrumentation from Django's route.
    servers = [s for s in spans.values() if s["kind"] == "SpanKind.SERVER"]
    assert len(servers) == len(ORDER_IDS) + HEALTH_CHECKS, [s["name"] for s in spans.values()]
    assert all(s["parent_id"] is None for s in servers)  # no traceparent sent: roots
    orders = [s for s in servers if s["attributes"]["http.route"] == ORDERS_ROUTE]
    by_target = {s["attributes"]["http.target"]: s for s in orders}
    assert sorted(by_target) == sorted(f"/orders/{order_id}/" for order_id in ORDER_IDS)
    for span in servers:
        route = span["attributes"]["http.route"]
        assert route in (ORDERS_ROUTE, HEALTH_ROUTE)
        assert span["name"] == f"GET {route}"

    for sample_type in ("cpu", "wall"):
        right = wrong = 0  # ns of the slow function's samples
        outside = 0
        endpoints: Counter[Any] = Counter()
        for sample in _samples(records, sample_type):
            functions = [frame.function for frame in sample.stack]
            endpoint = sample.attributes.get(ENDPOINT_ATTRIBUTE)
            if REQUEST_HANDLER not in functions:
                # gunicorn's accept loop, idle pool threads, the master: no request, no link.
                assert sample.span_id is None and sample.trace_id is None, functions
                assert endpoint is None and LOCAL_ROOT_SPAN_ID_ATTRIBUTE not in sample.attributes
                outside += sample.value
                continue
            if sample.span_id is not None:
                span = spans[sample.span_id.hex()]  # every link points at an exported span
                assert sample.trace_id is not None
                assert _hex(span["context"]["trace_id"]) == sample.trace_id.hex()
                assert sample.attributes[LOCAL_ROOT_SPAN_ID_ATTRIBUTE] == sample.span_id.hex()
                # The endpoint is Django's route, never the URL with the order's number.
                assert endpoint == f"GET {span['attributes']['http.route']}", sample
                endpoints[endpoint] += sample.value
            if SLOW_FUNCTION not in functions:
                continue
            order_id = functions.count(NESTING_FUNCTION)
            expected = by_target[f"/orders/{order_id}/"]
            linked = sample.span_id.hex() if sample.span_id is not None else None
            if linked == _hex(expected["context"]["span_id"]):
                right += sample.value
            else:
                wrong += sample.value
        assert right > 0, sample_type
        assert wrong * 100 <= right + wrong, (sample_type, right, wrong)  # >= 99% right
        assert outside > 0, sample_type
        assert set(endpoints) <= {f"GET {ORDERS_ROUTE}", f"GET {HEALTH_ROUTE}"}, endpoints
        assert endpoints[f"GET {ORDERS_ROUTE}"] > 0, endpoints

    # The worker's profiles carry its traces' resource (the master's have an instance of their
    # own: it serves no request).
    assert {r.resource["service.name"] for r in records} == {"django-shop"}
    serving = {r.source for r in records for s in r.samples if s.span_id is not None}
    assert {r.resource["service.instance.id"] for r in records if r.source in serving} == {
        s["resource"]["attributes"]["service.instance.id"] for s in spans.values()
    }

    # The server spans carry the way back to the profile.
    for span in servers:
        attributes = span["attributes"]
        assert attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "thread_clock", span
        assert attributes[CPU_TIME_ATTRIBUTE] > 0, span
    for span in by_target.values():
        hot = span["attributes"][HOT_FUNCTIONS_ATTRIBUTE]  # sampled at least twice in there
        assert any(f.startswith(f"{SLOW_FUNCTION} (django_shop/views.py:") for f in hot), span

    # And a user's way from the endpoint, or from one slow span's trace id, to the function.
    one_order = by_target[f"/orders/{ORDER_IDS[-1]}/"]
    for report in (
        format_top(records, endpoint=f"GET {ORDERS_ROUTE}", limit=1),
        format_top(records, trace_id=one_order["context"]["trace_id"], limit=1),  # as printed
    ):
        assert SLOW_FUNCTION in report.rstrip().splitlines()[-1], report
