"""The benchmark harness's pieces that decide what a co-scheduled pair compares."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.configs import RunContext, with_settings
from benchmarks.harness import BARRIER_ENV

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "workloads"))
import _common  # the workloads import it as a sibling module, so do the same


def _context(tmp_path: Path) -> RunContext:
    return RunContext(sys.executable, ["workload.py"], tmp_path, "cpu", "run", None)


def test_settings_are_added_to_a_config_and_its_rate(tmp_path: Path) -> None:
    config = with_settings("otelprof@2+OTEL_PYTHON_PROFILER_GC=false+EXTRA=a=b")
    assert config is not None
    env = config.env(_context(tmp_path))
    assert env["OTEL_PYTHON_PROFILER_SAMPLING_RATE"] == "2"
    assert env["OTEL_PYTHON_PROFILER_GC"] == "false"
    assert env["EXTRA"] == "a=b"  # only the first "=" separates name and value
    assert config.name == "otelprof@2+OTEL_PYTHON_PROFILER_GC=false+EXTRA=a=b"


@pytest.mark.parametrize("name", ["otelprof", "nosuch+A=b", "otelprof+A", "otelprof+"])
def test_names_without_valid_settings_are_not_configs(name: str) -> None:
    assert with_settings(name) is None


def test_a_work_phase_waits_at_the_barrier_until_told_to_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BARRIER_ENV, str(tmp_path))
    assert _common.BARRIER_ENV == BARRIER_ENV  # the harness and the workloads agree on it
    passed = threading.Event()

    def phase() -> None:
        _common._meet_at_barrier()
        passed.set()

    thread = threading.Thread(target=phase, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("*.ready")):
        assert time.monotonic() < deadline, "the work phase never said it was ready"
        time.sleep(0.001)
    assert not passed.is_set()  # ready, but still waiting
    (tmp_path / "go").touch()
    thread.join(30)
    assert passed.is_set()


def test_without_a_barrier_a_work_phase_starts_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BARRIER_ENV, raising=False)
    with _common.WorkPhase() as phase:
        pass
    assert set(phase.parts) == {
        "user",
        "system",
        "voluntary_switches",
        "involuntary_switches",
        "page_faults",
    }
    assert phase.cpu_seconds == phase.parts["user"] + phase.parts["system"]


def test_the_workloads_own_threads_do_not_count_as_a_profilers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A traced service's span exporter thread starts before the work phase, as a profiler's
    # threads do; only the profiler's count as its own CPU.
    monkeypatch.delenv(BARRIER_ENV, raising=False)
    stop = threading.Event()
    threads = [
        threading.Thread(target=stop.wait, name=name, daemon=True)
        for name in ("span-exporter", "profiler-sampler")
    ]
    for thread in threads:
        thread.start()
    try:
        with _common.WorkPhase(own_threads=("span-exporter",)) as phase:
            pass
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert "profiler-sampler" in phase.background_by_thread
    assert "span-exporter" not in phase.background_by_thread


def test_paced_load_sends_each_request_when_it_is_due() -> None:
    import loadgen

    now = [100.0]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    schedule = loadgen._Schedule(rate=50.0, clients=2, clock=lambda: now[0], sleep=sleep)
    schedule.wait_for(0)  # due at the start: no wait
    schedule.wait_for(1)  # request 1 is due 1/50 s after the start
    now[0] += 0.5  # a slow response: request 2 (due at +0.04 s) is late
    schedule.wait_for(2)
    assert slept == [0.02]  # a late request goes at once, with no burst of waiting


def test_load_generator_rejects_a_negative_rate() -> None:
    import subprocess

    loadgen = Path(__file__).resolve().parents[2] / "benchmarks" / "workloads" / "loadgen.py"
    done = subprocess.run(
        [sys.executable, str(loadgen), "--port", "1", "--requests", "1", "--rate", "-5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--rate must be 0 (no pacing) or a positive number, not -5.0" in done.stderr


def test_the_median_interval_is_deterministic_and_holds_the_median() -> None:
    from benchmarks.corun import median_interval

    ratios = [1.031, 1.045, 1.012, 1.058, 1.040, 1.036, 1.072]
    low, high = median_interval(ratios)
    assert min(ratios) <= low <= 1.040 <= high <= max(ratios)
    assert (low, high) == median_interval(ratios)  # seeded: the same table every time
    assert median_interval([1.02] * 5) == (1.02, 1.02)
    # More pairs of the same spread narrow it.
    wide = median_interval(ratios)
    narrow = median_interval(ratios * 4)
    assert narrow[1] - narrow[0] <= wide[1] - wide[0]
