"""Real processes: windows open at exit are closed and exported; whole-run `otelprof run`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

from otelprof.reader import load_profiles
from otelprof.records import ProfileRecord

EXIT_CHECK = """\
import atexit

def _report():  # registered before the profiler's own hook, so it runs after it
    import sys
    yappi = sys.modules.get("yappi")
    import tracemalloc
    print("at exit: yappi", bool(yappi and yappi.is_running()), "tracemalloc",
          tracemalloc.is_tracing(), flush=True)

atexit.register(_report)
"""


def _run(args: List[str], env: Dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("OTEL_PYTHON_PROFILER_WHOLE_RUN", None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.update(extra)
    return env


def _records(directory: Path) -> List[ProfileRecord]:
    loaded = load_profiles([directory])
    return list(loaded.records)


def _by_leaf(records: List[ProfileRecord], sample_type: str) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for record in records:
        if record.sample_type.type != sample_type:
            continue
        for sample in record.samples:
            name = sample.stack[0].function
            out[name] = out.get(name, 0) + sample.value
    return out


@pytest.mark.parametrize("kind", ["precise", "memory"])
def test_a_window_left_open_at_exit_is_closed_and_exported(tmp_path: Path, kind: str):
    script = tmp_path / "app.py"
    script.write_text(
        EXIT_CHECK
        + textwrap.dedent(
            f"""\
            import sys
            import otelprof

            KEPT = []

            def work(i):
                KEPT.append(bytearray(1000))
                return i * 2

            otelprof.start(output_dir=sys.argv[1], precise_window_seconds=0,
                           memory_window_seconds=0)
            window = otelprof.{kind}(None)
            assert window.wait_opened()
            for i in range(13):
                work(i)
            print("exiting with the window open", flush=True)
            """
        )
    )
    out = tmp_path / "out"
    result = _run([sys.executable, str(script), str(out)], _env())
    assert result.returncode == 0, result.stderr
    assert "at exit: yappi False tracemalloc False" in result.stdout
    records = _records(out)
    if kind == "precise":
        assert _by_leaf(records, "calls")["work"] == 13
    else:
        assert _by_leaf(records, "alloc_space")["work"] >= 13 * 1000


def test_a_standalone_window_open_at_exit_is_stopped(tmp_path: Path):
    script = tmp_path / "app.py"
    script.write_text(
        EXIT_CHECK
        + "import otelprof\n"
        + "window = otelprof.precise(None)\n"
        + "assert window.wait_opened()\n"
    )
    result = _run([sys.executable, str(script)], _env())
    assert result.returncode == 0, result.stderr
    assert "at exit: yappi False tracemalloc False" in result.stdout


def test_run_precise_profiles_the_whole_program_with_exact_counts(tmp_path: Path):
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            """\
            def leaf(i):
                return i + 1

            def branch(n):
                return sum(leaf(i) for i in range(n))

            for n in range(10):
                branch(n)
            """
        )
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "otelprof", "run", "--precise", "--output", str(out)]
    result = _run([*command, "--", str(script)], _env())
    assert result.returncode == 0, result.stderr
    records = _records(out)
    calls = _by_leaf(records, "calls")
    assert calls["branch"] == 10
    assert calls["leaf"] == 45
    program = [
        sample.value
        for record in records
        if record.sample_type.type == "calls"
        for sample in record.samples
        if sample.stack[0].function == "<module>" and sample.stack[0].filename == str(script)
    ]
    assert program == [1]  # the program was measured from its first line
    trigger = {r.profile_attributes.get("otelprof.window.trigger") for r in records}
    assert "whole_run" in trigger


def test_run_precise_keeps_the_programs_join_of_its_worker(tmp_path: Path):
    # The agent also joins threads in the main thread at exit, one join still running when the
    # window closes; the program's own join must stay, with its call and its wall time.
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            """\
            import threading

            def work():
                return sum(range(1000))

            def main():
                worker = threading.Thread(target=work)
                worker.start()
                worker.join()

            main()
            """
        )
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "otelprof", "run", "--precise", "--output", str(out)]
    result = _run([*command, "--", str(script)], _env())
    assert result.returncode == 0, result.stderr
    edges = {
        (sample.stack[0].function, sample.stack[1].function): sample.value
        for record in _records(out)
        if record.sample_type.type == "calls"
        for sample in record.samples
        if len(sample.stack) == 2
    }
    assert edges[("Thread.join", "main")] == 1


def test_run_memory_reports_the_leaking_function(tmp_path: Path):
    script = tmp_path / "leaky.py"
    script.write_text(
        textwrap.dedent(
            """\
            import logging
            import threading
            import time

            CACHE = []
            reported = threading.Event()

            class Watch(logging.Handler):
                def emit(self, record):
                    if "leak" in record.getMessage():
                        reported.set()

            logging.getLogger("otelprof").addHandler(Watch())

            def remember(request):
                CACHE.append(("request", request, bytearray(4096)))

            def handle(request):
                scratch = [str(i) for i in range(100)]  # garbage, freed at once
                remember(request)
                return len(scratch)

            # Serve until the agent has reported the leak (or give up after a minute).
            deadline = time.monotonic() + 60.0
            request = 0
            while not reported.is_set() and time.monotonic() < deadline:
                handle(request)
                request += 1
                reported.wait(0.001)
            """
        )
    )
    out = tmp_path / "out"
    env = _env(OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL="0.3")
    command = [sys.executable, "-m", "otelprof", "run", "--memory", "--output", str(out)]
    result = _run([*command, "--log-level", "warning", "--", str(script)], env)
    assert result.returncode == 0, result.stderr
    leak_lines = [line for line in result.stderr.splitlines() if "leak" in line]
    assert leak_lines, result.stderr
    lineno = script.read_text().splitlines().index("def remember(request):") + 2
    assert f"remember ({script}:{lineno})" in leak_lines[0]
    assert "/s" in leak_lines[0]
    assert not any("handle (" in line for line in leak_lines)
    records = _records(out)
    leaks = [
        r for r in records if r.profile_attributes.get("otelprof.profile") == "leak_candidates"
    ]
    assert leaks and "remember" in _by_leaf(leaks, "inuse_space")
