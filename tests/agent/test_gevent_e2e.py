"""gevent, with real processes: the agent keeps real threads and charges each greenlet's span.

After ``gevent.monkey.patch_all()`` a ``threading.Thread`` is a greenlet and
``threading.get_ident()`` a greenlet's id. Before the fix the agent's threads ended with
tracebacks at exit, the main thread (re-keyed by gevent) lost its CPU clock, and its samples
were charged nothing; an agent started after patching would have run its sampler as a greenlet.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any, Dict, List

import pytest

from otelprof.conformance import check_request
from otelprof.reader import load_profiles
from otelprof.spans import CPU_TIME_ATTRIBUTE, CPU_TIME_SOURCE_ATTRIBUTE
from tests.agent.e2e import APPS, OTELPROF, child_env, load_requests, run
from tests.export.servers import ExportRequest, RecordingGrpcServer, RecordingHttpServer

APP = APPS / "gevent_app.py"


def _run_app(start: str, tmp_path: pathlib.Path, **settings: str) -> Dict[str, Any]:
    """Runs the app; returns its spans by name and the export requests ("requests")."""
    out = tmp_path / "profiles"
    spans_file = tmp_path / "spans.jsonl"
    settings = {
        "OTEL_PYTHON_PROFILER_SAMPLING_RATE": "200",
        "OTEL_PYTHON_PROFILER_EXPORT_INTERVAL": "60",  # one export, at exit
        **settings,
    }
    settings.setdefault("OTEL_PYTHON_PROFILER_OUTPUT_DIR", str(out))
    if start == "otelprof run":
        command = [*OTELPROF, "run", "--", sys.executable, str(APP), str(spans_file)]
    else:
        command = [sys.executable, str(APP), str(spans_file)]
        settings["START_AFTER_PATCH"] = "1"
    result = run(command, env=child_env(**settings))
    assert result.returncode == 0, result.stderr
    # No traceback from the agent's threads (they ended with a KeyError in threading's
    # bookkeeping when gevent had patched get_ident under them).
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, (
        result.stderr
    )
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    return {"requests": load_requests(out), **{span["name"]: span for span in spans}}


def _records(requests: List[ExportRequest], tmp_path: pathlib.Path) -> List[Any]:
    assert requests and all(check_request(r) == [] for r in requests)
    received = tmp_path / "received"
    received.mkdir(exist_ok=True)
    for number, request in enumerate(requests):
        (received / f"{number}.otlp.pb").write_bytes(request.SerializeToString())
    return load_profiles([str(received)]).records


@pytest.mark.parametrize("start", ["otelprof run", "otelprof.start() after patch_all()"])
def test_greenlets_are_sampled_on_real_threads_and_charged_to_their_spans(
    start: str, tmp_path: pathlib.Path
) -> None:
    found = _run_app(start, tmp_path)
    records = _records(found["requests"], tmp_path)
    cpu: Dict[str, int] = {"work_alpha": 0, "work_beta": 0}
    right = wrong = 0
    thread_names: List[str] = []
    for record in records:
        for sample in record.samples:
            thread_names.append(str(sample.attributes.get("thread.name")))
            functions = {frame.function for frame in sample.stack}
            for work, span_name in (("work_alpha", "alpha"), ("work_beta", "beta")):
                if work not in functions:
                    continue
                if record.sample_type.type == "cpu":
                    cpu[work] += sample.value
                linked = sample.span_id.hex() if sample.span_id is not None else None
                if linked == found[span_name]["span_id"]:
                    right += 1
                else:
                    wrong += 1
    # The main thread's CPU is read although gevent re-keyed it in threading's table.
    assert cpu["work_alpha"] > 0 and cpu["work_beta"] > 0, cpu
    # Each sample goes to the span of the greenlet that was running, not the last one started.
    assert right > 0 and wrong <= right // 100, (right, wrong)
    # The agent's threads ran as threads (a greenlet sampler would show in the main thread's
    # stacks) and are left out.
    assert not [name for name in thread_names if name.startswith("otelprof-")]
    for span_name in ("alpha", "beta"):
        attributes = found[span_name]["attributes"]
        # Greenlets interleave on one thread: its CPU clock would count the other's time too.
        assert attributes[CPU_TIME_SOURCE_ATTRIBUTE] == "sampled", attributes
        assert attributes[CPU_TIME_ATTRIBUTE] > 0, attributes


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("start", ["otelprof run", "otelprof.start() after patch_all()"])
def test_profiles_reach_an_otlp_server_from_a_gevent_program(
    start: str, protocol: str, tmp_path: pathlib.Path
) -> None:
    # The exporter thread sends with gevent's sockets patched (requests) or beside gevent's
    # patched threading (grpc's Python layer).
    server_class = RecordingGrpcServer if protocol == "grpc" else RecordingHttpServer
    with server_class() as server:
        found = _run_app(
            start,
            tmp_path,
            OTEL_PYTHON_PROFILER_OUTPUT_DIR="",
            OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT=server.endpoint,
            OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL=protocol,
        )
        assert not found["requests"]  # nothing went to files
        received = server.requests
    functions = {
        frame.function for r in _records(received, tmp_path) for s in r.samples for frame in s.stack
    }
    assert {"work_alpha", "work_beta"} <= functions


@pytest.mark.parametrize("start", ["otelprof run", "otelprof.start() after monkey_patch()"])
def test_an_eventlet_program_is_sampled_by_real_threads(start: str, tmp_path: pathlib.Path) -> None:
    # eventlet.monkey_patch() turns threads green as gevent does: started after it, the sampler
    # was a green thread on the main thread, sampling itself and nothing else.
    out = tmp_path / "profiles"
    app = APPS / "eventlet_app.py"
    settings = {"OTEL_PYTHON_PROFILER_OUTPUT_DIR": str(out)}
    if start == "otelprof run":
        command = [*OTELPROF, "run", "--", sys.executable, str(app)]
    else:
        command = [sys.executable, str(app)]
        settings["START_AFTER_PATCH"] = "1"
    result = run(command, env=child_env(**settings))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    cpu: Dict[str, int] = {}
    for record in _records(load_requests(out), tmp_path):
        if record.sample_type.type != "cpu":
            continue
        for sample in record.samples:
            for function in {frame.function for frame in sample.stack}:
                cpu[function] = cpu.get(function, 0) + sample.value
    assert cpu.get("green_work", 0) > 0, cpu
    assert not [name for name in cpu if "StackSampler" in name or "ExportProcessor" in name]
