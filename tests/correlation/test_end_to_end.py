"""End to end: the slow_endpoint Flask service in a subprocess, real requests, real spans.

Under ``opentelemetry-instrument`` (the Flask instrumentation makes the spans, the distro the
SDK) and under ``otelprof run`` (the application sets up its SDK after the profiler started),
the profile files' links, local roots and endpoints must match the spans the service wrote, and
the spans must carry the profile summaries.
"""

from __future__ import annotations

import json
import pathlib
import selectors
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import pytest

from otelprof.correlation import ENDPOINT_ATTRIBUTE, LOCAL_ROOT_SPAN_ID_ATTRIBUTE
from otelprof.reader import load_profiles
from otelprof.records import DecodedSample
from otelprof.spans import CPU_TIME_ATTRIBUTE, CPU_TIME_SOURCE_ATTRIBUTE, HOT_FUNCTIONS_ATTRIBUTE
from otelprof.top import format_top
from tests.agent.e2e import BIN, child_env

APP = pathlib.Path(__file__).resolve().parents[2] / "examples" / "slow_endpoint" / "app.py"
WARM_UP = "/fast/999"  # under otelprof run the span processor attaches during the first request
SLOW = "GET /slow"
FAST = "GET /fast/<int:item_id>"


def launch(launcher: str, out: pathlib.Path) -> List[str]:
    python = [sys.executable, str(APP)]
    if launcher == "opentelemetry-instrument":
        return [str(BIN / "opentelemetry-instrument"), *python]
    return [sys.executable, "-m", "otelprof", "run", "--output", str(out), "--", *python]


def serve_and_load(launcher: str, tmp_path: pathlib.Path) -> Tuple[pathlib.Path, pathlib.Path]:
    out = tmp_path / "profiles"
    spans_file = tmp_path / "spans.jsonl"
    env = child_env(
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_PROFILER_ENABLED="true",
        OTEL_PYTHON_PROFILER_OUTPUT_DIR=str(out),
        OTEL_PYTHON_PROFILER_SAMPLING_RATE="200",
        OTEL_PYTHON_PROFILER_EXPORT_INTERVAL="1",
        SPANS_FILE=str(spans_file),
        SLOW_ROUNDS="100000",
    )
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            launch(launcher, out), env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            base_url = _wait_for_port(process)
            for path in [WARM_UP] * 3 + [
                "/slow" if n % 3 == 0 else f"/fast/{n}" for n in range(24)
            ]:
                with urllib.request.urlopen(base_url + path, timeout=60) as response:
                    assert response.status == 200
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
    assert code == 0, (tmp_path / "stderr.txt").read_text()
    return out, spans_file


def _wait_for_port(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), "the service did not start"
    line = process.stdout.readline()
    assert line.startswith("listening on "), line
    return line.split()[-1]


def read_spans(path: pathlib.Path) -> Dict[str, Dict[str, Any]]:
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {span["span_id"]: span for span in spans}


def linked_samples(out: pathlib.Path) -> List[DecodedSample]:
    result = load_profiles([str(out)])
    assert result.files and not result.errors
    return [s for r in result.records if r.sample_type.type == "wall" for s in r.samples]


def is_root(span: Dict[str, Any]) -> bool:
    return not span["parent_id"] or span["parent_is_remote"]


def root_of(span: Dict[str, Any], spans: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    while not is_root(span):
        span = spans[span["parent_id"]]
    return span


@pytest.mark.parametrize("launcher", ["opentelemetry-instrument", "otelprof run"])
def test_profiles_and_spans_agree(launcher: str, tmp_path: pathlib.Path) -> None:
    out, spans_file = serve_and_load(launcher, tmp_path)
    spans = read_spans(spans_file)
    samples = linked_samples(out)

    hot_in_span = idle = 0
    endpoints: Counter[Optional[Any]] = Counter()
    for sample in samples:
        functions = [frame.function for frame in sample.stack]
        short = {name.rsplit(".", 1)[-1] for name in functions}
        if "serve_forever" in short and "process_request_thread" not in short:
            assert sample.span_id is None  # the accept loop serves no request
            idle += 1
        if sample.span_id is None:
            assert "checksum_inventory" not in functions  # only ever runs inside a span
            assert ENDPOINT_ATTRIBUTE not in sample.attributes
            continue
        span = spans[sample.span_id.hex()]  # every link points at a span the service ended
        assert sample.trace_id is not None and sample.trace_id.hex() == span["trace_id"]
        root = root_of(span, spans)
        assert sample.attributes[LOCAL_ROOT_SPAN_ID_ATTRIBUTE] == root["span_id"]
        endpoint = sample.attributes.get(ENDPOINT_ATTRIBUTE)
        endpoints[endpoint] += 1
        assert endpoint == root["name"], sample  # [gc] samples and ended roots included
        if "checksum_inventory" in functions:
            assert span["name"] == "verify inventory" and root["name"] == SLOW
            hot_in_span += 1
    assert hot_in_span >= 8  # at least one sample per slow request, as a floor
    assert idle > 0
    assert set(endpoints) <= {SLOW, FAST}
    assert endpoints[SLOW] > 0

    slow_roots = [s for s in spans.values() if is_root(s) and s["name"] == SLOW]
    served = [s for s in spans.values() if s["attributes"].get("http.target") != WARM_UP]
    assert len(slow_roots) == 8
    for span in served:
        assert span["attributes"][CPU_TIME_SOURCE_ATTRIBUTE] == "thread_clock", span
        assert span["attributes"][CPU_TIME_ATTRIBUTE] > 0
    with_hot = [s for s in slow_roots if HOT_FUNCTIONS_ATTRIBUTE in s["attributes"]]
    assert with_hot
    for span in with_hot:
        assert any(
            f.startswith("checksum_inventory (slow_endpoint/app.py:")
            for f in span["attributes"][HOT_FUNCTIONS_ATTRIBUTE]
        )

    # The README's way from the slow span to the function, through `otelprof top`.
    records = load_profiles([str(out)]).records
    slowest = max(slow_roots, key=lambda s: s["duration_ns"])
    for report in (
        format_top(records, endpoint=SLOW, limit=1),
        format_top(records, trace_id=slowest["trace_id"], limit=1),
    ):
        first_row = report.rstrip().splitlines()[-1]  # limit=1: the hottest function
        assert "checksum_inventory" in first_row, report
