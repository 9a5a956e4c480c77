"""FastAPI on uvicorn under ``opentelemetry-instrument``: a sample goes to the request that ran it.

An asyncio server runs every request as a task on one loop thread, and the loop switches
between them without any OpenTelemetry call. The app (``apps/fastapi_app.py``) makes waves of
requests interleave: each request computes in a function named after its item and yields to the
others between rounds, and tells the test which server span it ran in. So the test knows, for
every sample in those functions, the one span it must link to; a sample charged to the span that
last touched the thread (another request of the wave) or to a finished request's span counts as
wrong (with the agent made to charge the span last made current on the thread, 206 of 232 such
samples were). Both ways of reading contexts run: from the threads' states (the C extension, the
default) and through the context hook (Python 3.12+: ``Task.get_context()``; 3.10-3.11: spans
recorded per task).
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import requests

from otelprof.conformance import check_request
from otelprof.correlation import (
    ENDPOINT_ATTRIBUTE,
    LOCAL_ROOT_SPAN_ID_ATTRIBUTE,
    OTHER,
    TASK_NAME_ATTRIBUTE,
)
from otelprof.reader import load_profiles
from otelprof.records import DecodedSample
from otelprof.spans import CPU_TIME_SOURCE_ATTRIBUTE, HOT_FUNCTIONS_ATTRIBUTE
from tests.agent.e2e import APPS, BIN, child_env, load_requests

ITEMS = "GET /items/{item_id}"
HEALTH = "GET /health"
WAVE_SIZE = 4  # the app's: requests of one wave run together
MIN_HOT_SAMPLES = 100  # samples in the crunch functions before the server is stopped
MIN_REQUESTS_SAMPLED = 3 * WAVE_SIZE
MAX_TASK_NAMES = 4
DEADLINE_SECONDS = 150.0
CRUNCH = re.compile(r"crunch_item_(\d+)")
TASK_NAME = re.compile(r"item-(\d+)")
STARTED = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@contextmanager
def uvicorn(native: str, tmp_path: pathlib.Path) -> Iterator[str]:
    """``opentelemetry-instrument uvicorn fastapi_app:app`` on a free loopback port; its URL."""
    log = tmp_path / "server.log"
    env = child_env(
        OTEL_SERVICE_NAME="items",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_PROFILER_ENABLED="true",
        OTEL_PYTHON_PROFILER_OUTPUT_DIR=str(tmp_path / "profiles"),
        OTEL_PYTHON_PROFILER_SAMPLING_RATE="200",
        OTEL_PYTHON_PROFILER_ADAPTIVE_RATE="false",  # every request sampled at the full rate
        OTEL_PYTHON_PROFILER_EXPORT_INTERVAL="1",
        OTEL_PYTHON_PROFILER_MAX_TASK_NAMES=str(MAX_TASK_NAMES),
        OTEL_PYTHON_PROFILER_NATIVE=native,
        SPANS_FILE=str(tmp_path / "spans.jsonl"),
    )
    command = [
        str(BIN / "opentelemetry-instrument"),
        str(BIN / "uvicorn"),
        "fastapi_app:app",
        "--app-dir",
        str(APPS),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--loop",
        "asyncio",  # the stdlib loop even where uvloop is installed (not covered here)
        "--no-access-log",
    ]
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (started := STARTED.search(log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "uvicorn did not start: " + log.read_text()
            threading.Event().wait(0.05)  # polling the log for the port, bounded
        yield started.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    # uvicorn shuts down gracefully, then raises the signal again (its documented exit status);
    # the agent's handler flushes the last profiles first.
    assert code == -signal.SIGTERM, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()


def hot_item(sample: DecodedSample) -> Any:
    """The item whose crunch function the sample is in, or None."""
    for frame in sample.stack:
        match = CRUNCH.fullmatch(frame.function.rsplit(".", 1)[-1])
        if match:
            return int(match.group(1))
    return None


def count_hot_samples(out: pathlib.Path) -> int:
    records = load_profiles([str(out)]).records
    return sum(
        1
        for record in records
        if record.sample_type.type == "wall"
        for sample in record.samples
        if hot_item(sample) is not None
    )


def drive(base_url: str, out: pathlib.Path) -> Tuple[Dict[int, Any], List[Any]]:
    """Waves of concurrent requests until enough samples landed in the crunch functions."""
    local = threading.local()

    def get(path: str) -> Any:
        if not hasattr(local, "session"):
            local.session = requests.Session()  # keep-alive, one connection per client thread
        response = local.session.get(base_url + path, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    items: Dict[int, Any] = {}
    health: List[Any] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    with ThreadPoolExecutor(max_workers=WAVE_SIZE + 1) as pool:
        wave = 0
        while len(items) < MIN_REQUESTS_SAMPLED or count_hot_samples(out) < MIN_HOT_SAMPLES:
            assert time.monotonic() < deadline, "too few samples in the crunch functions"
            ids = range(wave * WAVE_SIZE, (wave + 1) * WAVE_SIZE)
            futures = [pool.submit(get, f"/items/{item_id}") for item_id in ids]
            cheap = pool.submit(get, "/health")  # a cheap request among them
            for item_id, future in zip(ids, futures):
                items[item_id] = future.result()
            health.append(cheap.result())
            wave += 1
    return items, health


def read_spans(path: pathlib.Path) -> Dict[str, Dict[str, Any]]:
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {span["span_id"]: span for span in spans}


def root_of(span: Dict[str, Any], spans: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    while span["parent_id"] and not span["parent_is_remote"]:
        span = spans[span["parent_id"]]
    return span


def is_idle(sample: DecodedSample) -> bool:
    """The loop waits in its selector: no task step runs."""
    leaf = sample.stack[0]
    return leaf.function.rsplit(".", 1)[-1] == "select" and leaf.filename.endswith("selectors.py")


class Tally:
    """What the samples say, checked against what the requests said about themselves."""

    def __init__(self, items: Dict[int, Any], spans: Dict[str, Dict[str, Any]]) -> None:
        self.items = items
        self.spans = spans
        self.owner = {answer["span_id"]: f"item {i}" for i, answer in items.items()}
        self.right = self.wrong = self.right_ns = self.wrong_ns = self.idle = 0
        self.mistakes: List[str] = []
        self.charged_idle: List[DecodedSample] = []
        self.sampled_items: Set[int] = set()
        self.endpoints: Set[Any] = set()
        self.task_names: Set[Any] = set()

    def add(self, sample_type: str, sample: DecodedSample) -> None:
        attributes = dict(sample.attributes)
        task_name = attributes.get(TASK_NAME_ATTRIBUTE)
        if task_name is not None:
            self.task_names.add(task_name)
        item_id = hot_item(sample)
        if item_id is not None:
            self.sampled_items.add(item_id)
            self._score(sample_type, item_id, sample, task_name)
        if is_idle(sample):
            self.idle += 1
            if sample.span_id is not None or task_name is not None:
                self.charged_idle.append(sample)  # no task runs: no request's span, no task
        if sample.span_id is None:
            assert ENDPOINT_ATTRIBUTE not in attributes, sample
            return
        # Every link points at a span the service ended, and names its request's route.
        root = root_of(self.spans[sample.span_id.hex()], self.spans)
        assert attributes[LOCAL_ROOT_SPAN_ID_ATTRIBUTE] == root["span_id"], sample
        assert attributes.get(ENDPOINT_ATTRIBUTE) == root["name"], sample
        self.endpoints.add(root["name"])

    def _score(self, sample_type: str, item_id: int, sample: DecodedSample, task: Any) -> None:
        """A sample in ``crunch_item_<item_id>`` is right with that request's link and task."""
        expected = self.items[item_id]
        span_id = sample.span_id.hex() if sample.span_id is not None else None
        trace_id = sample.trace_id.hex() if sample.trace_id is not None else None
        if (
            span_id == expected["span_id"]
            and trace_id == expected["trace_id"]
            and task in (OTHER, f"item-{item_id}")
        ):
            self.right += 1
            self.right_ns += sample.value
        else:
            self.wrong += 1
            self.wrong_ns += sample.value
            got = self.owner.get(span_id or "", span_id)
            self.mistakes.append(f"{sample_type} in item {item_id}: linked {got}, task {task}")


@pytest.mark.parametrize("native", ["true", "false"], ids=["thread_state", "hook"])
def test_each_sample_goes_to_the_request_whose_task_ran_it(
    native: str, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "profiles"
    with uvicorn(native, tmp_path) as base_url:
        items, health = drive(base_url, out)
    spans = read_spans(tmp_path / "spans.jsonl")
    for request in load_requests(out):
        assert check_request(request) == []
    loaded = load_profiles([str(out)])
    assert loaded.files and not loaded.errors

    # Ground truth: each request ran in its own server span, named after the route template,
    # and really took turns with the others on the loop.
    for item_id, answer in items.items():
        span = spans[answer["span_id"]]
        assert span["kind"] == "SERVER" and span["name"] == ITEMS, span
        assert span["parent_id"] is None and span["trace_id"] == answer["trace_id"]
        assert span["attributes"]["http.route"] == "/items/{item_id}"
        assert answer["item_id"] == item_id and answer["interleaved"] > 0, answer
    for answer in health:
        assert spans[answer["span_id"]]["name"] == HEALTH

    tally = Tally(items, spans)
    for record in loaded.records:
        for sample in record.samples:
            tally.add(record.sample_type.type, sample)

    hot = tally.right + tally.wrong
    assert hot >= MIN_HOT_SAMPLES
    assert len(tally.sampled_items) >= MIN_REQUESTS_SAMPLED
    # >= 99% to the right request (a context can change between the stack read and the span
    # read), by count and by wall/cpu time.
    assert tally.right >= 0.99 * hot, (tally.right, tally.wrong, tally.mistakes[:10])
    total_ns = tally.right_ns + tally.wrong_ns
    assert tally.right_ns >= 0.99 * total_ns, (tally.right_ns, total_ns, tally.mistakes[:10])
    assert tally.idle > 0  # the loop was seen waiting in its selector
    assert not tally.charged_idle, tally.charged_idle[:5]
    assert tally.endpoints <= {ITEMS, HEALTH}, tally.endpoints  # templates, never raw paths
    assert ITEMS in tally.endpoints
    # One task name per request, capped: the first few, then "other". uvicorn's own tasks
    # (Task-<n>) carry none.
    admitted = tally.task_names - {OTHER}
    assert all(TASK_NAME.fullmatch(name) for name in admitted), tally.task_names
    assert len(admitted) <= MAX_TASK_NAMES and OTHER in tally.task_names, tally.task_names

    # The spans' side: sampled CPU estimates (they started inside a running loop), and the
    # hottest function of a request is its own crunch function.
    item_spans = {item_id: spans[answer["span_id"]] for item_id, answer in items.items()}
    for span in item_spans.values():
        assert span["attributes"][CPU_TIME_SOURCE_ATTRIBUTE] == "sampled", span
    hottest = [
        (item_id, span["attributes"][HOT_FUNCTIONS_ATTRIBUTE][0])
        for item_id, span in item_spans.items()
        if HOT_FUNCTIONS_ATTRIBUTE in span["attributes"]
    ]
    in_crunch = [(item_id, first) for item_id, first in hottest if first.startswith("crunch_")]
    foreign = [(i, first) for i, first in in_crunch if not first.startswith(f"crunch_item_{i} ")]
    assert len(in_crunch) > len(foreign), hottest
    assert len(foreign) <= math.ceil(0.01 * len(in_crunch)), foreign
