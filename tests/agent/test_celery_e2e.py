"""Celery workers under ``otelprof run``: each prefork pool child profiles its own tasks."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from collections import defaultdict
from typing import Dict, List, NamedTuple, Set

from otelprof import Profiler
from otelprof._celery import _DISPATCH_UID
from otelprof.conformance import check_request
from otelprof.export.memory import InMemoryProfileExporter
from tests.agent.e2e import APPS, BIN, OTELPROF, child_env, load_requests, resource_of
from tests.agent.helpers import wait_until

SLOW_FUNCTION = "checksum_ledger"
EX_RECYCLE = 0x9B  # billiard's exit code for a child recycled by --max-tasks-per-child
TASK_SPAN = "run/ledger.slow"  # opentelemetry-instrumentation-celery's consumer span


class CpuSample(NamedTuple):
    trace_id: str
    span_id: str
    endpoint: str
    thread_id: int


def _app_env(base: pathlib.Path) -> Dict[str, str]:
    env = child_env(CELERY_APP_DIR=str(base), OTEL_PYTHON_PROFILER_ADAPTIVE_RATE="false")
    env["PYTHONPATH"] += os.pathsep + str(APPS)
    return env


def _slow_cpu_samples(request) -> List[CpuSample]:
    """The cpu samples (with a value) whose stack runs through the slow function."""
    d = request.dictionary
    strings = d.string_table

    def in_slow_function(sample) -> bool:
        for location_index in d.stack_table[sample.stack_index].location_indices:
            for line in d.location_table[location_index].lines:
                if strings[d.function_table[line.function_index].name_strindex] == SLOW_FUNCTION:
                    return True
        return False

    found = []
    for profile in request.resource_profiles[0].scope_profiles[0].profiles:
        if strings[profile.sample_type.type_strindex] != "cpu":
            continue
        for sample in profile.samples:
            if not any(sample.values) or not in_slow_function(sample):
                continue
            attributes = {}
            for index in sample.attribute_indices:
                attribute = d.attribute_table[index]
                value = attribute.value
                attributes[strings[attribute.key_strindex]] = (
                    value.string_value if value.HasField("string_value") else value.int_value
                )
            link = d.link_table[sample.link_index]
            found.append(
                CpuSample(
                    link.trace_id.hex(),
                    link.span_id.hex(),
                    str(attributes.get("otelprof.endpoint", "")),
                    int(attributes.get("thread.id", 0)),
                )
            )
    return found


def _profiled_pids(out: pathlib.Path) -> Set[str]:
    # Files are named <time>-<pid>-<n>.otlp.pb; the resource is the application's own here.
    return {path.name.split("-")[1] for path in out.glob("*.otlp.pb")}


def _requests_by_pid(out: pathlib.Path) -> Dict[str, list]:
    grouped: Dict[str, list] = defaultdict(list)
    for path, request in zip(sorted(out.glob("*.otlp.pb")), load_requests(out)):
        grouped[path.name.split("-")[1]].append(request)
    return grouped


def _spans(base: pathlib.Path, pid: str) -> List[dict]:
    path = base / f"spans-{pid}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prefork_pool_children_profile_their_tasks_with_span_links(tmp_path):
    """Each child (recycled after one task) flushes its task's profile, linked to its span.

    billiard's pool children leave through ``os._exit``, so without the agent's hook on
    Celery's ``worker_process_shutdown`` a recycled child's profile was lost, and so was the
    last interval of every child at a warm shutdown (the export interval is 60 s here: every
    file the children write is a shutdown flush).
    """
    base, out = tmp_path / "app", tmp_path / "profiles"
    base.mkdir()
    env = _app_env(base)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [
                *OTELPROF,
                "run",
                "--output",
                str(out),
                "--export-interval",
                "60",
                "--",
                str(BIN / "celery"),
                "-A",
                "celery_app",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
                "--max-tasks-per-child=1",
                "--loglevel=info",
            ],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: " ready." in log_path.read_text(), timeout_seconds=60)
        producer = subprocess.run(
            [sys.executable, str(APPS / "celery_app.py"), "produce", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        trace_id = producer.stdout.strip()
        wait_until(lambda: len(list(base.glob("done-*.json"))) == 2, timeout_seconds=60)
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
        worker.wait()
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, log_text
    done = [json.loads(path.read_text()) for path in base.glob("done-*.json")]
    task_pids = {str(record["pid"]) for record in done}
    assert len(task_pids) == 2, done  # one task per child: each child ran one and was recycled
    # Each child's only file is the flush it wrote on its way out.
    wait_until(lambda: task_pids <= _profiled_pids(out), timeout_seconds=30)

    grouped = _requests_by_pid(out)
    for record in done:
        pid = str(record["pid"])
        assert all(check_request(r) == [] for r in grouped[pid])
        samples = [s for r in grouped[pid] for s in _slow_cpu_samples(r)]
        assert samples, pid
        # The child's own thread, linked to the task's span in the producer's trace, under
        # the endpoint named by the task's local root span.
        (span,) = [s for s in _spans(base, pid) if s["name"] == TASK_SPAN]
        assert {s.thread_id for s in samples} == {record["thread_id"]}
        assert {(s.trace_id, s.span_id) for s in samples} == {(trace_id, span["span_id"])}
        assert {s.endpoint for s in samples} == {TASK_SPAN}
        assert span["trace_id"] == trace_id
        # The way back: the span carries its CPU time and hot function.
        assert span["attributes"]["otelprof.cpu_time_ns"] >= 300_000_000
        assert span["attributes"]["otelprof.hot_functions"][0].startswith(SLOW_FUNCTION)
        # Each child is an instance of its own.
        instance_ids = {resource_of(r)["service.instance.id"] for r in grouped[pid]}
        assert len(instance_ids) == 1
    all_instances = {resource_of(r)["service.instance.id"] for rs in grouped.values() for r in rs}
    assert len(all_instances) == len(grouped)


def test_a_profiler_started_after_celery_stops_on_the_pool_child_shutdown_signal():
    """``otelprof.start()`` in the app (e.g. in ``worker_process_init``) is flushed too."""
    from celery.signals import worker_process_shutdown

    profiler = Profiler(exporter=InMemoryProfileExporter(), export_interval_seconds=60)
    try:
        profiler.start()
        assert profiler.running
        # billiard's code for a child the pool is terminating (SIGTERM: hard time limit, cold
        # shutdown): it is killed outright moments later, so no flush races that kill.
        worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=-241)
        assert profiler.running
        worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=EX_RECYCLE)
        assert not profiler.running
    finally:
        profiler.stop()
        worker_process_shutdown.disconnect(dispatch_uid=_DISPATCH_UID)
