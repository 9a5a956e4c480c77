"""The window runner: no overlap, scheduled windows, the governor, the signal, the profiler."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tracemalloc
from typing import Iterator, List

import pytest
import yappi

import otelprof
from otelprof.config import resolve_config
from otelprof.conformance import check_request
from otelprof.decode import decode_request
from otelprof.model import Profile
from otelprof.windows.manager import WindowManager
from tests.agent.helpers import wait_until
from tests.windows.helpers import start_without_scheduled_windows


def spin(n: int) -> int:
    return sum(i * i for i in range(n))


@pytest.fixture
def collected() -> List[Profile]:
    return []


def _drain(manager: WindowManager, into: List[Profile]) -> List[Profile]:
    into.extend(manager.contribute([], 10_000_000))
    return into


def _kinds(profiles: List[Profile]) -> set:
    return {dict(p.attributes).get("otelprof.window.kind") for p in profiles} - {None}


@pytest.fixture
def manager_factory() -> Iterator:
    managers: List[WindowManager] = []

    def make(**settings: object) -> WindowManager:
        settings.setdefault("gc_profiling", False)
        manager = WindowManager(resolve_config(**settings))
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.stop()


def test_windows_never_overlap(manager_factory):
    manager = manager_factory(precise_window_seconds=0, memory_window_seconds=0)
    manager.start()
    first = manager.request("precise", 0.3)
    second = manager.request("memory", 0.3)
    third = manager.request("precise", 0.3)
    assert first.wait_opened()
    assert not second.opened
    assert second.wait_opened()
    assert first.done  # the first had closed before the second opened
    assert not yappi.is_running()  # and no engine of the first is left running
    assert third.wait_opened()
    assert second.done and not tracemalloc.is_tracing()
    assert third.wait(30)


def test_scheduled_windows_open_and_their_profiles_are_exported(manager_factory, collected):
    manager = manager_factory(
        precise_window_seconds=0.2,
        precise_interval_seconds=1.0,
        memory_window_seconds=0.2,
        memory_interval_seconds=1.0,
        overhead_budget=1.0,
    )
    manager.governor.warm_up_seconds = 0.0
    manager.start()
    wait_until(lambda: _kinds(_drain(manager, collected)) == {"precise", "memory"})
    triggers = {dict(p.attributes).get("otelprof.window.trigger") for p in collected}
    assert triggers == {"scheduled"}
    counters = dict(collected[-1].attributes)
    assert counters["otelprof.windows.opened"] >= 2


def test_the_governor_skips_scheduled_windows_and_says_so(manager_factory, caplog, collected):
    manager = manager_factory(
        precise_window_seconds=0.2, precise_interval_seconds=1.0, overhead_budget=0.0
    )
    manager.governor.warm_up_seconds = 0.0
    manager.governor.cost_factors["precise:wall"] = 1.0
    with caplog.at_level(logging.INFO, logger="otelprof"):
        manager.start()
        # The application must be busy for a window to have a cost worth refusing.
        wait_until(lambda: spin(20_000) >= 0 and manager.governor.skipped["precise:wall"] >= 1)
    assert "precise window skipped to stay within the 0% CPU budget" in caplog.text
    profiles = _drain(manager, collected)
    assert not _kinds(profiles)
    # The counters reach every profile the export carries.
    stamped = manager.contribute([Profile(*_cpu_profile_args())], 10_000_000)
    assert dict(stamped[0].attributes)["otelprof.windows.skipped"] >= 1


def _cpu_profile_args() -> tuple:
    from otelprof.model import CPU_NANOS

    return (CPU_NANOS, CPU_NANOS, 10_000_000, 0, 1, ())


def test_the_signal_opens_a_precise_and_a_memory_window(manager_factory, collected):
    manager = manager_factory(window_signal="SIGUSR2", precise_window_seconds=0.2)
    previous = signal.getsignal(signal.SIGUSR2)
    manager.start()
    try:
        assert signal.getsignal(signal.SIGUSR2) is not previous
        os.kill(os.getpid(), signal.SIGUSR2)
        wait_until(lambda: _kinds(_drain(manager, collected)) == {"precise", "memory"})
        triggers = {dict(p.attributes).get("otelprof.window.trigger") for p in collected}
        assert triggers == {"signal"}
    finally:
        manager.stop()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_the_signal_is_not_taken_from_an_application_that_handles_it(manager_factory):
    received: List[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        manager = manager_factory(window_signal="SIGUSR2")
        manager.start()
        assert signal.getsignal(signal.SIGUSR2) is handler
        manager.stop()
        assert signal.getsignal(signal.SIGUSR2) is handler
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_on_demand_windows_go_out_with_the_running_profilers_exports():
    exporter = start_without_scheduled_windows()
    try:
        window = otelprof.precise(0.3)
        spin(50_000)
        assert window.wait(30) and window.error is None
        memory = otelprof.memory(0.2)
        assert memory.wait(30) and memory.error is None
    finally:
        otelprof.stop()
    requests = exporter.get_finished_requests()
    for request in requests:
        assert check_request(request) == []
    records = [r for request in requests for r in decode_request(request)]
    types = {r.sample_type.type for r in records}
    assert {"calls", "wall", "cpu", "alloc_space", "inuse_objects"} <= types
    calls = [r for r in records if r.sample_type.type == "calls"]
    assert calls[0].profile_attributes["otelprof.window.trigger"] == "on_demand"
    assert calls[0].profile_attributes["otelprof.windows.opened"] == 2
    assert "otelprof.overhead.cpu_ratio" in calls[0].profile_attributes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")  # pragma: no cover - Linux CI
def test_a_forked_child_does_not_inherit_a_running_window():
    start_without_scheduled_windows()
    try:
        window = otelprof.precise(None)
        assert window.wait_opened()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the fork hook ran before this line
            os.write(write, b"1" if yappi.is_running() else b"0")
            os._exit(0)
        os.close(write)
        child_yappi = os.read(read, 1)
        os.waitpid(pid, 0)
        assert child_yappi == b"0"
        assert yappi.is_running()  # the parent's window goes on
        window.close()
        assert window.wait(30)
    finally:
        otelprof.stop()
    assert sys.modules["yappi"].is_running() is False


@pytest.mark.parametrize("open_window", [otelprof.precise, otelprof.memory])
@pytest.mark.parametrize(
    ("seconds", "error", "message"),
    [
        (0, ValueError, "seconds must be greater than 0 and at most 86400, got 0"),
        (-1.5, ValueError, "seconds must be greater than 0 and at most 86400, got -1.5"),
        (86400.5, ValueError, "seconds must be greater than 0 and at most 86400, got 86400.5"),
        (float("nan"), ValueError, "seconds must be greater than 0 and at most 86400, got nan"),
        ("x", TypeError, r"seconds must be a number of seconds \(int or float\) or None, got 'x'"),
        (True, TypeError, r"seconds must be a number of seconds .* got True \(bool\)"),
        ([1], TypeError, r"seconds must be a number of seconds .* got \[1\] \(list\)"),
    ],
)
def test_a_bad_window_length_is_refused_with_a_message_that_names_it(
    open_window, seconds, error, message, manager_factory
):
    with pytest.raises(error, match=f"^{message}"):
        open_window(seconds=seconds)
    manager = manager_factory()  # the runner's own entry point checks the same way
    with pytest.raises(error, match=f"^{message}"):
        manager.request("precise", seconds)
    assert not manager.scheduler.has_demands  # nothing was queued


def test_a_handles_state_says_what_became_of_its_window(manager_factory):
    manager = manager_factory(precise_window_seconds=0, memory_window_seconds=0)
    manager.start()
    first = manager.request("precise", None)
    second = manager.request("memory", None)
    assert first.wait_opened() and first.state == "open"
    assert second.state == "pending"
    second.close()
    assert second.wait(30)
    assert repr(second) == "<WindowHandle memory failed: closed before it opened>"
    first.close()
    assert first.wait(30) and first.state == "done"
