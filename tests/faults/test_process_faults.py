"""The agent inside hostile processes: fork storms, thread churn, deep recursion, the app's own
signal handlers and switch interval, and interpreter exit with threads still running.

Real processes under ``otelprof run``; each output is compared with a bare run of the same app.
"""

from __future__ import annotations

import pathlib
import re
import signal
from collections import defaultdict
from typing import Dict, List

import pytest
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from otelprof.conformance import check_request
from tests.agent.e2e import child_env, load_requests, resource_of, sampled_functions
from tests.export.servers import RecordingGrpcServer
from tests.faults.harness import (
    SHUTDOWN_TIMEOUT_SECONDS,
    AppRun,
    assert_exit_within_deadline,
    no_agent_traceback,
    run_bare,
    start_bare,
    start_profiled,
)

pytestmark = pytest.mark.timeout(120)

CHILDREN = 60


def _by_pid(requests: List[ExportProfilesServiceRequest]) -> Dict[int, list]:
    grouped: Dict[int, list] = defaultdict(list)
    for request in requests:
        grouped[int(resource_of(request)["process.pid"])].append(request)
    return grouped


def _cpu_nanos_in(requests: List[ExportProfilesServiceRequest], function: str) -> int:
    """CPU nanoseconds of the samples whose stack contains ``function``."""
    total = 0
    for request in requests:
        d = request.dictionary
        for resource_profiles in request.resource_profiles:
            for scope_profiles in resource_profiles.scope_profiles:
                for profile in scope_profiles.profiles:
                    if d.string_table[profile.sample_type.type_strindex] != "cpu":
                        continue
                    for sample in profile.samples:
                        names = {
                            d.string_table[d.function_table[line.function_index].name_strindex]
                            for index in d.stack_table[sample.stack_index].location_indices
                            for line in d.location_table[index].lines
                        }
                        if function in names:
                            total += sum(sample.values)
    return total


def _assert_unaffected(run: AppRun, bare: AppRun) -> None:
    assert run.stdout == bare.stdout, run.stderr
    assert run.returncode == bare.returncode, run.stderr
    assert no_agent_traceback(run.stderr), run.stderr
    assert_exit_within_deadline(run, SHUTDOWN_TIMEOUT_SECONDS)


@pytest.mark.parametrize("sink", ["files", "grpc"])
def test_fork_storm_children_exit_and_the_parent_keeps_profiling(
    sink: str, tmp_path: pathlib.Path
) -> None:
    storm = {"FORK_STORM_CHILDREN": str(CHILDREN), "FORK_STORM_AT_ONCE": "6"}
    bare = run_bare("fork_storm_app.py", child_env(**storm))
    assert "children failed 0" in bare.stdout
    out = tmp_path / "profiles"
    if sink == "files":
        app = start_profiled("fork_storm_app.py", tmp_path, ["--output", str(out)], env=storm)
        run = app.finish()
        requests = load_requests(out)
    else:
        with RecordingGrpcServer() as server:
            app = start_profiled(
                "fork_storm_app.py", tmp_path, ["--endpoint", server.endpoint], env=storm
            )
            run = app.finish()
            requests = server.requests
    _assert_unaffected(run, bare)  # includes "children failed 0": no child hung or crashed
    assert all(check_request(r) == [] for r in requests)
    grouped = _by_pid(requests)
    # The parent went on sampling after the storm; children report only their own work.
    assert "after_storm_work" in set().union(*(sampled_functions(r) for r in grouped[run.pid]))
    children = [pid for pid in grouped if pid != run.pid]
    assert children, "no child exported its profile at sys.exit"
    for pid in children:
        assert "after_storm_work" not in set().union(*(sampled_functions(r) for r in grouped[pid]))
    print(f"FIGURE fork storm {sink}: {CHILDREN} children, {len(children)} flushed at exit")


def _run_threads(tmp_path: pathlib.Path, threads: int, rounds: int) -> tuple:
    env = {
        "SHORT_THREADS": str(threads),
        "SHORT_THREADS_AT_ONCE": "16",
        "SHORT_THREADS_ROUNDS": str(rounds),
    }
    bare = run_bare("short_threads_app.py", child_env(**env))
    out = tmp_path / "profiles"
    run = start_profiled("short_threads_app.py", tmp_path, ["--output", str(out)], env).finish()
    _assert_unaffected(run, bare)
    used = int(run.stderr.split("thread cpu ns ")[1].split()[0])
    return run, used, _cpu_nanos_in(load_requests(out), "short_thread_work")


def test_thousands_of_short_threads_keep_sampler_state_bounded(tmp_path: pathlib.Path) -> None:
    run, used, charged = _run_threads(tmp_path, threads=2000, rounds=200)
    stats = run.stats
    # Per-thread state is pruned to the live threads: 16 workers + main, stdin and agent ones.
    assert stats["peak_thread_states"] <= 16 + 8, stats
    assert stats["peak_interval_threads"] <= 16 + 8, stats
    assert stats["sampler_thread_states"] <= 8, stats
    print(
        f"FIGURE short threads: 2000 threads, {used / 1e6:.0f} ms CPU used, "
        f"{charged / 1e6:.0f} ms charged, peak per-thread states "
        f"{stats['peak_thread_states']}, peak threads per interval "
        f"{stats['peak_interval_threads']}"
    )


def test_cpu_of_short_threads_reaches_the_profile(tmp_path: pathlib.Path) -> None:
    # Threads of a few sampling intervals each: first sight charges their CPU since they began.
    _, used, charged = _run_threads(tmp_path, threads=48, rounds=30000)
    assert charged > 0
    print(
        f"FIGURE short threads: 48 threads, {used / 1e6:.0f} ms CPU used, "
        f"{charged / 1e6:.0f} ms charged ({100 * charged / used:.0f}%)"
    )


def test_deep_recursion_is_truncated_and_leaves_the_recursion_budget_alone(
    tmp_path: pathlib.Path,
) -> None:
    bare_app = start_bare("deep_recursion_app.py")
    bare_app.wait_for_line("at depth 20000")
    bare = bare_app.finish()
    out = tmp_path / "profiles"
    app = start_profiled("deep_recursion_app.py", tmp_path, ["--output", str(out)])
    app.wait_for_line("at depth 20000")
    exported_before = sum(e["event"] == "export" for e in app.events())
    # Two exports after reaching the bottom: the sampler has walked the deep stack meanwhile.
    app.wait_for_events(lambda ev: sum(e["event"] == "export" for e in ev) >= exported_before + 2)
    run = app.finish()
    _assert_unaffected(run, bare)  # includes the RecursionError depth, before and after
    deepest = 0
    truncated = 0
    for request in load_requests(out):
        d = request.dictionary
        names = [d.string_table[f.name_strindex] for f in d.function_table]
        for stack in d.stack_table:
            if not stack.location_indices:
                continue
            leaf = d.location_table[stack.location_indices[0]]
            # A collection during the recursion puts the GC sampler's [gc] frame on top of the
            # truncated stack: one frame more, which the depth cap does not count.
            gc_on_top = names[leaf.lines[0].function_index] == "[gc]"
            deepest = max(deepest, len(stack.location_indices) - gc_on_top)
            last = d.location_table[stack.location_indices[-1]]
            if names[last.lines[0].function_index] == "[truncated]":
                truncated += 1
    assert truncated > 0
    assert deepest == 128 + 1  # max_stack_depth frames and the truncation marker


@pytest.mark.parametrize("window_signal", [None, "SIGUSR2"])
def test_the_apps_signal_handlers_and_switch_interval_win(
    window_signal: str, tmp_path: pathlib.Path
) -> None:
    bare_app = start_bare("signals_app.py")
    bare_app.wait_for_line("ready")
    bare = bare_app.finish(signal_number=signal.SIGTERM)
    assert bare.returncode == 42, bare.stderr
    env = {"OTEL_PYTHON_PROFILER_WINDOW_SIGNAL": window_signal} if window_signal else {}
    app = start_profiled("signals_app.py", tmp_path, ["--output", str(tmp_path / "out")], env)
    app.wait_for_line("ready")
    run = app.finish(signal_number=signal.SIGTERM)
    # Every counted signal, the app's SIGTERM handler, its switch interval: as in the bare run.
    _assert_unaffected(run, bare)
    assert load_requests(tmp_path / "out")


@pytest.mark.parametrize("collector", ["files", "hanging"])
def test_exit_with_threads_still_running_neither_hangs_nor_prints_tracebacks(
    collector: str, tmp_path: pathlib.Path
) -> None:
    bare = run_bare("exit_with_threads_app.py")
    assert bare.returncode == 0, bare.stderr
    if collector == "files":
        out = tmp_path / "profiles"
        run = start_profiled("exit_with_threads_app.py", tmp_path, ["--output", str(out)]).finish()
        assert load_requests(out)
        _assert_unaffected(run, bare)
        return
    with RecordingGrpcServer() as server:
        server.hang()
        app = start_profiled("exit_with_threads_app.py", tmp_path, ["--endpoint", server.endpoint])
        app.wait_for_events(lambda ev: server.attempts >= 1)
        run = app.finish()
    # The only thing it may say: the export it could not finish in time. (The exporter gets
    # what is left of the 1 s exit deadline once the sampler and windows have stopped.)
    assert re.search(r"did not finish within the (0\.\d|1\.0)s shutdown deadline", run.stderr)
    _assert_unaffected(run, bare)
