"""Fork safety with real processes: os.fork, multiprocessing and gunicorn pre-fork workers."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from collections import defaultdict

import pytest

from otelprof.conformance import check_request
from tests.agent.e2e import APPS, BIN, OTELPROF, child_env, resource_of, run, sampled_functions
from tests.agent.helpers import wait_until


def _by_pid(directory):
    from tests.agent.e2e import load_requests

    grouped = defaultdict(list)
    for request in load_requests(directory):
        grouped[resource_of(request)["process.pid"]].append(request)
    return grouped


def _functions(requests, sample_type: str = "wall") -> set:
    names: set = set()
    for request in requests:
        names |= sampled_functions(request, sample_type)
    return names


def _cpu_thread_ids(requests) -> set:
    """The ``thread.id`` of every cpu sample with a value."""
    ids = set()
    for request in requests:
        d = request.dictionary
        for profile in request.resource_profiles[0].scope_profiles[0].profiles:
            if d.string_table[profile.sample_type.type_strindex] != "cpu":
                continue
            for sample in profile.samples:
                if not any(sample.values):
                    continue
                for index in sample.attribute_indices:
                    attribute = d.attribute_table[index]
                    if d.string_table[attribute.key_strindex] == "thread.id":
                        ids.add(attribute.value.int_value)
    return ids


def test_os_fork_and_multiprocessing_children_profile_themselves(tmp_path):
    result = run(
        [
            *OTELPROF,
            "run",
            "--output",
            str(tmp_path),
            "--export-interval",
            "60",
            "--",
            str(APPS / "fork_app.py"),
        ],
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"parent (\d+) children (\d+) (\d+)", result.stdout)
    assert match, result.stdout
    parent, forked, mp_child = match.groups()
    grouped = _by_pid(tmp_path)
    assert set(grouped) == {parent, forked, mp_child}
    for requests in grouped.values():
        assert all(check_request(r) == [] for r in requests)
    # Each process reports its own work, and the parent's pre-fork data is not duplicated.
    assert "forked_child_work" in _functions(grouped[forked])
    assert "mp_child_work" in _functions(grouped[mp_child])
    # CPU time too, on the child's own kernel thread id: the thread that forked keeps the
    # parent's native_id in CPython, and a CPU clock derived from it reads nothing.
    assert "forked_child_work" in _functions(grouped[forked], "cpu")
    assert _cpu_thread_ids(grouped[forked]) == {int(forked)}
    assert "mp_child_work" in _functions(grouped[mp_child], "cpu")
    assert "parent_work" not in _functions(grouped[forked])
    assert "parent_work" in _functions(grouped[parent])
    instance_ids = {resource_of(r[0])["service.instance.id"] for r in grouped.values()}
    assert len(instance_ids) == 3


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_gunicorn_prefork_workers_are_profiled(tmp_path, worker_class):
    # gevent's worker patches threading in each worker, after the fork restarted the agent's
    # threads there: they must stay threads, and the worker's main thread keep its CPU clock.
    out = tmp_path / "profiles"
    process = subprocess.Popen(
        [
            *OTELPROF,
            "run",
            "--output",
            str(out),
            "--export-interval",
            "60",
            "--",
            str(BIN / "gunicorn"),
            "--workers",
            "2",
            "--worker-class",
            worker_class,
            "--bind",
            "127.0.0.1:0",
            "--chdir",
            str(APPS),
            "wsgi_app:app",
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 60
        booted = 0
        lines = []
        while time.monotonic() < deadline and (port is None or booted < 2):
            line = process.stderr.readline()
            lines.append(line)
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
            if "Booting worker" in line:
                booted += 1
        assert port and booted == 2, "".join(lines)
        worker_pids = set()

        def hit() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                worker_pids.add(response.read().decode().split("pid=")[1])
            return len(worker_pids) == 2

        wait_until(hit, timeout_seconds=60)
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    stderr = "".join(lines) + rest
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    grouped = _by_pid(out)
    assert worker_pids <= set(grouped), (worker_pids, set(grouped))
    for pid in worker_pids:
        assert all(check_request(r) == [] for r in grouped[pid])
        assert "handle_request" in _functions(grouped[pid], "cpu"), pid
        assert int(pid) in _cpu_thread_ids(grouped[pid])
