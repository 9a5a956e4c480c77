"""uWSGI with a real uwsgi: its master forks workers from C, where Python's fork hooks never run."""

from __future__ import annotations

import pathlib
import re
import subprocess
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Sequence

import pytest
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from otelprof.conformance import check_request
from tests.agent.e2e import APPS, BIN, OTELPROF, child_env, sampled_functions
from tests.agent.helpers import wait_until

UWSGI = BIN / "uwsgi"
pytestmark = pytest.mark.skipif(not UWSGI.exists(), reason="uwsgi not installed (dev extra)")


def _profiles_by_pid(directory: pathlib.Path) -> Dict[str, list]:
    grouped = defaultdict(list)
    for path in sorted(directory.glob("*.otlp.pb")):
        request = ExportProfilesServiceRequest()
        request.ParseFromString(path.read_bytes())
        grouped[path.name.split("-")[1]].append(request)  # <unix_nanos>-<pid>-<seq>.otlp.pb
    return grouped


def _link_trace_ids(requests: list) -> set:
    return {link.trace_id.hex() for r in requests for link in r.dictionary.link_table[1:]}


def _serve_and_stop(
    tmp_path: pathlib.Path,
    prefix: Sequence[str],
    uwsgi_args: Sequence[str],
    parties: int,
    **env: str,
) -> tuple:
    """Start uWSGI, send ``parties`` concurrent /slow requests, shut it down gracefully.

    Graceful (the master FIFO's ``q``): a worker killed in the middle of a request (SIGINT,
    SIGQUIT) skips Python's exit handlers, so whether it flushes would depend on timing.
    """
    log_path, barrier, fifo = tmp_path / "uwsgi.log", tmp_path / "barrier", tmp_path / "fifo"
    barrier.mkdir()
    command = [*prefix, str(UWSGI), "--http-socket", "127.0.0.1:0", "--master", *uwsgi_args]
    command += ["--master-fifo", str(fifo)]
    command += ["--chdir", str(APPS), "--wsgi-file", str(APPS / "uwsgi_app.py")]
    env = child_env(BARRIER_DIR=str(barrier), BARRIER_PARTIES=str(parties), **env)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        port: List[int] = []

        def bound() -> bool:
            found = re.search(r"bound to TCP address 127\.0\.0\.1:(\d+)", log_path.read_text())
            port.extend([int(found.group(1))] if found else [])
            return bool(port) or process.poll() is not None

        wait_until(bound, timeout_seconds=60)
        assert port, log_path.read_text()

        def get(_: int) -> str:
            url = f"http://127.0.0.1:{port[0]}/slow"
            with urllib.request.urlopen(url, timeout=90) as response:
                return str(response.read().decode())

        with ThreadPoolExecutor(parties) as pool:
            answers = list(pool.map(get, range(parties)))
        fifo.write_text("q")
        returncode = process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
    output = log_path.read_text()
    assert returncode == 0, output
    assert "Traceback" not in output and "otelprof:" not in output, output
    return process.pid, answers, _profiles_by_pid(tmp_path / "profiles"), output


def _check_workers(master_pid: int, answers: List[str], by_pid: dict, output: str) -> None:
    workers: Dict[str, set] = defaultdict(set)
    for answer in answers:
        fields = dict(field.split("=") for field in answer.split())
        assert fields["ticked"] == "True", f"no sampling in worker {fields['pid']}:\n{output}"
        workers[fields["pid"]].add(fields["trace"])
    assert len(workers) == 2, answers  # both workers served (the barrier sees to it)
    for pid, trace_ids in workers.items():
        requests = by_pid.get(pid)
        assert requests, f"worker {pid} exported nothing:\n{output}"
        assert all(check_request(r) == [] for r in requests)
        cpu = set().union(*(sampled_functions(r, "cpu") for r in requests))
        assert "slow_checksum" in cpu, (pid, cpu)
        assert trace_ids <= _link_trace_ids(requests), pid  # samples link to the request spans
    # The master loads the app and forks: it runs none of the agent's threads, exports nothing.
    assert str(master_pid) not in by_pid, sorted(by_pid)


def test_otelprof_run_profiles_each_uwsgi_worker(tmp_path):
    # Single-threaded workers: requests run on the thread that survived uWSGI's fork, whose CPU
    # clock must be the worker's own (CPython keeps the master's id on it).
    prefix = [*OTELPROF, "run", "--output", str(tmp_path / "profiles"), "--"]
    _check_workers(*_serve_and_stop(tmp_path, prefix, ["--processes", "2"], parties=2))


def test_otelprof_run_with_uwsgi_lazy_apps_and_threads(tmp_path):
    prefix = [*OTELPROF, "run", "--output", str(tmp_path / "profiles"), "--"]
    args = ["--processes", "2", "--threads", "2", "--lazy-apps"]
    _check_workers(*_serve_and_stop(tmp_path, prefix, args, parties=4))


def test_otelprof_start_in_the_app_module_under_uwsgi(tmp_path):
    _check_workers(
        *_serve_and_stop(
            tmp_path,
            [],
            ["--processes", "2", "--threads", "2"],
            parties=4,
            UWSGI_APP_STARTS_OTELPROF="1",
            OTEL_PYTHON_PROFILER_OUTPUT_DIR=str(tmp_path / "profiles"),
        )
    )


def test_opentelemetry_instrument_profiles_each_uwsgi_worker(tmp_path):
    # The instrumentations import Flask before uWSGI loads the app: nothing the app imports is
    # new, and the agent still has to learn when uWSGI is ready.
    _check_workers(
        *_serve_and_stop(
            tmp_path,
            [str(BIN / "opentelemetry-instrument")],
            ["--processes", "2"],
            parties=2,
            OTEL_PYTHON_PROFILER_ENABLED="true",
            OTEL_PYTHON_PROFILER_OUTPUT_DIR=str(tmp_path / "profiles"),
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
    )
