"""Precise windows: exact call counts, caller -> callee edges, spans, and yappi always restored."""

from __future__ import annotations

import asyncio
import threading

import pytest
import yappi
from opentelemetry.sdk.trace import TracerProvider

import otelprof
from otelprof._threads import start_agent_thread
from otelprof.config import resolve_config
from otelprof.export.memory import InMemoryProfileExporter
from otelprof.model import SampleTag, SpanLink
from otelprof.windows import precise as precise_module
from otelprof.windows.manager import WindowManager
from otelprof.windows.names import AGENT_DIR
from otelprof.windows.precise import PreciseEngine, SpanTags, WindowUnavailable, pits_to_profiles
from tests.windows.helpers import by_leaf, by_stack_names, profile_of


def leaf_work(n: int) -> int:
    return n * 2


def middle(n: int) -> int:
    return leaf_work(n) + leaf_work(n + 1) + leaf_work(n + 2)


def outer(rounds: int) -> int:
    return sum(middle(i) for i in range(rounds))


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def _run_workload() -> None:
    outer(7)  # outer 1, middle 7, leaf_work 21
    worker = threading.Thread(target=outer, args=(5,), name="worker")  # 1, 5, 15 more
    worker.start()
    worker.join()
    fib(10)  # 177 calls, 176 of them from fib itself


def test_exact_call_counts_and_edges_on_a_known_workload():
    with otelprof.precise(None) as window:
        _run_workload()
    assert window.wait(30) and window.error is None
    calls = profile_of(window.profiles, "calls")
    per_function = by_leaf(calls)
    assert per_function["outer"] == 2
    assert per_function["middle"] == 12
    assert per_function["leaf_work"] == 36
    assert per_function["fib"] == 177
    edges = by_stack_names(calls)
    assert edges[("leaf_work", "middle")] == 36
    assert edges[("middle", "<genexpr>")] == 12
    assert edges[("fib", "fib")] == 176
    assert all(len(stack) <= 2 for stack in edges)  # no invented deep stacks
    # The worker thread's calls are attributed to it.
    worker_calls = sum(
        s.value
        for s in calls.samples
        if s.stack[0].function == "leaf_work" and dict(s.attributes)["thread.name"] == "worker"
    )
    assert worker_calls == 15
    wall = profile_of(window.profiles, "wall")
    assert wall.period_type.type == "precise" and wall.period == 1
    assert by_leaf(wall)["fib"] > 0
    assert dict(wall.attributes)["otelprof.window.clock"] == "wall"


def test_cpu_clock_is_used_when_configured_and_the_previous_clock_restored():
    yappi.set_clock_type("cpu")
    manager = WindowManager(resolve_config(precise_clock="cpu"), standalone=True)
    try:
        with manager.request("precise", None) as window:
            fib(12)
        assert window.wait(30) and window.error is None
        assert profile_of(window.profiles, "cpu").sample_type.unit == "nanoseconds"
        yappi.set_clock_type("wall")
        with manager.request("precise", None) as window:
            fib(8)
        assert window.wait(30)
        assert profile_of(window.profiles, "cpu")
        assert yappi.get_clock_type() == "wall"  # the clock the application had chose
    finally:
        manager.stop()


def test_yappi_is_stopped_and_cleared_after_an_exception_in_the_block():
    with pytest.raises(ZeroDivisionError):
        with otelprof.precise(None) as window:
            fib(5)
            _ = 1 / 0
    assert window.wait(30)
    assert not yappi.is_running()
    assert len(yappi.get_func_stats()) == 0
    assert window.profiles  # the window still delivered what it measured


def test_yappi_is_restored_when_reading_its_statistics_fails(monkeypatch: pytest.MonkeyPatch):
    yappi.set_clock_type("cpu")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(precise_module, "pits_to_profiles", broken)
    with otelprof.precise(None) as window:
        fib(5)
    assert window.wait(30)
    assert window.error is not None and "conversion failed" in window.error
    assert not yappi.is_running()
    assert len(yappi.get_func_stats()) == 0
    assert yappi.get_clock_type() == "cpu"


def test_an_application_running_yappi_itself_is_left_alone():
    yappi.start()
    try:
        with otelprof.precise(None) as window:
            fib(5)
        assert window.wait(30)
        assert window.error == "the application is running yappi itself"
        assert yappi.is_running()
    finally:
        yappi.stop()
        yappi.clear_stats()


def test_the_engine_refuses_to_clobber_the_applications_statistics():
    yappi.start()
    fib(3)
    yappi.stop()
    engine = PreciseEngine()
    try:
        with pytest.raises(WindowUnavailable):
            engine.open()
        assert len(yappi.get_func_stats()) > 0
    finally:
        yappi.clear_stats()


def test_functions_are_split_by_the_span_they_were_called_in(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(SpanTags, "tracing_configured", staticmethod(lambda: True))
    tracer = TracerProvider().get_tracer("test")
    with otelprof.precise(None) as window:
        with tracer.start_as_current_span("request") as span:
            fib(6)
        fib(4)
    assert window.wait(30) and window.error is None
    context = span.get_span_context()
    expected = SpanLink.from_ints(context.trace_id, context.span_id)
    calls = profile_of(window.profiles, "calls")
    in_span = sum(s.value for s in calls.samples if s.stack[0].function == "fib" and s.link)
    outside = sum(s.value for s in calls.samples if s.stack[0].function == "fib" and not s.link)
    assert (in_span, outside) == (25, 9)
    assert {s.link for s in calls.samples if s.link} == {expected}


def _pit(name, index, ncall, tsub, children=(), ctx=1, tag=0, module="app.py"):
    return (name, module, 10, ncall, ncall, 0, tsub, tsub, index, list(children), ctx, "T", tag)


def test_calls_without_a_profiled_caller_keep_a_one_frame_stack():
    pits = [
        _pit("handler", 1, 2, 0.001, children=[(2, 3, 3, 0.003, 0.002)]),
        _pit("helper", 2, 5, 0.004),  # 3 calls from handler, 2 from somewhere unprofiled
        _pit("agent", 3, 9, 0.5, ctx=2),  # a context that is not the application's
    ]
    link = SpanLink(b"\x01" * 16, b"\x02" * 8)
    profiles = pits_to_profiles(
        pits,
        {1: (42, "main")},
        lambda tag: SampleTag(link=link),
        "wall",
        1_000,
        2_000,
    )
    calls = by_stack_names(profile_of(profiles, "calls"))
    assert calls == {("helper", "handler"): 3, ("helper",): 2, ("handler",): 2}
    wall = by_stack_names(profile_of(profiles, "wall"))
    assert wall == {
        ("helper", "handler"): 2_000_000,
        ("helper",): 2_000_000,
        ("handler",): 1_000_000,
    }


def test_the_agents_frames_and_what_only_they_call_are_left_out():
    agent = AGENT_DIR + "windows/handle.py"
    pits = [
        # The agent's wait, running before the window opened, calls Event.wait twice...
        _pit("WindowHandle.wait", 1, 1, 0.001, [(2, 2, 2, 0.003, 0.001)], module=agent),
        # ... which calls Condition.wait, and that recurses once (a function calling itself
        # does not make it the application's).
        _pit("Event.wait", 2, 2, 0.001, [(3, 2, 2, 0.002, 0.001)], module="threading.py"),
        _pit("Condition.wait", 3, 3, 0.001, [(3, 1, 1, 0.0, 0.0)], module="threading.py"),
        # Event.set: one call from the application's handler, one from the agent's close()...
        _pit("handler", 4, 1, 0.001, [(5, 1, 1, 0.002, 0.001)]),
        _pit("WindowHandle.close", 6, 1, 0.001, [(5, 1, 1, 0.002, 0.001)], module=agent),
        _pit("Event.set", 5, 3, 0.003, module="threading.py"),  # ... and one unprofiled caller
    ]
    profiles = pits_to_profiles(pits, {1: (42, "main")}, lambda tag: None, "wall", 0, 1)
    calls = by_stack_names(profile_of(profiles, "calls"))
    assert calls == {("Event.set", "handler"): 1, ("Event.set",): 1, ("handler",): 1}
    wall = by_stack_names(profile_of(profiles, "wall"))
    assert wall == {
        ("Event.set", "handler"): 1_000_000,
        ("Event.set",): 1_000_000,  # the agent's call's time is not left to the remainder
        ("handler",): 1_000_000,
    }


def test_an_agent_call_still_running_does_not_hide_the_applications_call():
    # As yappi recorded ``otelprof run --precise`` on a program that joins its worker: at exit
    # the agent's stop() joins the sampler (done) and the windows thread, whose join is still
    # running when the window closes. yappi counts that call on the caller -> callee edge but
    # not in Thread.join's own call count, so the agent's edges (2) equal that count (2).
    agent = AGENT_DIR + "windows/manager.py"
    pits = [
        _pit("main", 1, 1, 0.001, [(2, 1, 1, 0.5, 0.5)]),
        _pit("WindowManager.stop", 3, 0, 0.001, [(2, 1, 1, 0.0, 0.0)], module=agent),
        _pit("StackSampler.stop", 4, 1, 0.001, [(2, 1, 1, 0.002, 0.002)], module=agent),
        _pit("Thread.join", 2, 2, 0.502, module="threading.py"),
    ]
    profiles = pits_to_profiles(pits, {1: (42, "MainThread")}, lambda tag: None, "wall", 0, 1)
    calls = by_stack_names(profile_of(profiles, "calls"))
    assert calls == {("Thread.join", "main"): 1, ("main",): 1}
    wall = by_stack_names(profile_of(profiles, "wall"))
    assert wall[("Thread.join", "main")] == 500_000_000


def test_no_frame_of_the_agent_or_of_its_waiting_reaches_a_window():
    exporter = InMemoryProfileExporter()
    otelprof.start(exporter=exporter, export_interval_seconds=3600, precise_window_seconds=0)
    try:
        with otelprof.precise(None) as window:  # the agent waits in this thread, twice
            fib(6)
        assert window.wait(30) and window.error is None
    finally:
        otelprof.stop()
    for profile in window.profiles:
        files = {frame.filename for sample in profile.samples for frame in sample.stack}
        assert threading.__file__ not in files  # Event.wait, Condition.__enter__, ...
        assert not [f for f in files if f.startswith(AGENT_DIR)]
        threads = {dict(sample.attributes)["thread.name"] for sample in profile.samples}
        assert not [name for name in threads if name.startswith("otelprof-")]
    assert by_leaf(profile_of(window.profiles, "calls"))["fib"] == 25


def _window_beside_an_agent_thread(started_before_the_window: bool):
    """A precise window's calls profile; an agent thread computes fib(7) and ends inside it,
    the main thread fib(3). The thread starts before the window opens or inside it."""
    go = threading.Event()

    def start():
        return start_agent_thread("otelprof-test", lambda: go.wait(30) and fib(7) and None)

    thread = start() if started_before_the_window else None
    engine = PreciseEngine()
    engine.open()
    try:
        thread = thread or start()
        go.set()
        thread.join(30)
        assert not thread.is_alive()
        fib(3)
    finally:
        profiles = engine.close(0, 1)
    return profile_of(profiles, "calls")


def test_an_agent_thread_that_ended_before_the_window_closed_is_left_out():
    # Like the sampler under ``otelprof run --precise``: running when the whole-run window
    # opened, stopped at exit before the window is read.
    calls = _window_beside_an_agent_thread(started_before_the_window=True)
    assert {dict(s.attributes)["thread.name"] for s in calls.samples} == {"MainThread"}
    assert by_leaf(calls)["fib"] == 5


def test_an_agent_thread_started_and_ended_inside_the_window_is_left_out():
    # yappi sees the thread's first call (the agent's wrapper) before the thread has put its
    # ident among the agent's, and at the close it is gone from them again.
    calls = _window_beside_an_agent_thread(started_before_the_window=False)
    assert {dict(s.attributes)["thread.name"] for s in calls.samples} == {"MainThread"}
    assert by_leaf(calls)["fib"] == 5


async def nap() -> None:
    await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)


async def serve_three() -> None:
    await asyncio.gather(nap(), nap(), nap())


def test_coroutines_count_once_per_call_and_keep_their_awaited_wall_time():
    with otelprof.precise(None) as window:
        asyncio.run(serve_three())
    assert window.wait(30) and window.error is None
    calls = profile_of(window.profiles, "calls")
    assert by_leaf(calls)["nap"] == 3  # not once per resumption
    assert by_stack_names(calls)[("sleep", "nap")] == 6
    wall = by_stack_names(profile_of(window.profiles, "wall"))
    # Each coroutine's wall time includes its suspensions: 3 x 2 x 50 ms at least, though the
    # three ran concurrently in about 100 ms.
    assert wall[("sleep", "nap")] >= 3 * 2 * 50_000_000


def test_with_a_profiler_precise_samples_carry_the_span_correlations_tags(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(SpanTags, "tracing_configured", staticmethod(lambda: True))
    tracer = TracerProvider().get_tracer("test")
    exporter = InMemoryProfileExporter()
    otelprof.start(exporter=exporter, export_interval_seconds=3600, precise_window_seconds=0)
    try:
        with otelprof.precise(None) as window:
            with tracer.start_as_current_span("GET /root"):
                with tracer.start_as_current_span("child") as child:
                    fib(6)
        assert window.wait(30) and window.error is None
        profiler = otelprof.get_profiler()
        assert profiler is not None
        expected = profiler.correlation.active.tag_of_span(child)  # what the sampler would give
    finally:
        otelprof.stop()
    context = child.get_span_context()
    calls = profile_of(window.profiles, "calls")
    tagged = [s for s in calls.samples if s.stack[0].function == "fib"]
    assert sum(s.value for s in tagged) == 25
    assert {s.link for s in tagged} == {SpanLink.from_ints(context.trace_id, context.span_id)}
    assert expected is not None
    for sample in tagged:  # the correlation's attributes (e.g. the local root) come along
        assert set(expected.attributes) <= set(sample.attributes)
        assert sample.link == expected.link


def test_time_in_c_functions_stays_with_the_python_function_that_called_them():
    # yappi keeps C calls' time out of the caller's tsub and enumerates no record of the C
    # function (run without builtins): an edge to index 9 and nothing else.
    pits = [
        _pit("handler", 1, 1, 0.001, children=[(2, 1, 1, 0.010, 0.002)]),
        # helper: 0.002 s its own, 0.008 s in C (sum, len...), called by handler and once
        # from an unprofiled caller: 0.010 s of its 0.020 s total came through handler.
        (
            "helper", "app.py", 10, 2, 2, 0, 0.020, 0.004, 2,
            [(9, 1000, 1000, 0.016, 0.016)], 1, "T", 0,
        ),
    ]  # fmt: skip
    pits[0] = (*pits[0][:6], 0.011, *pits[0][7:])  # handler's total: 1 ms own + 10 ms helper
    profiles = pits_to_profiles(pits, {1: (42, "main")}, lambda tag: None, "wall", 0, 1)
    wall = by_stack_names(profile_of(profiles, "wall"))
    assert wall == {
        ("helper", "handler"): 10_000_000,  # 2 ms own + half the 16 ms in C
        ("helper",): 10_000_000,
        ("handler",): 1_000_000,
    }


def spin_in_c(seconds: float) -> float:
    """Mostly time inside C functions (sum, perf_counter); returns the wall time it took."""
    import time

    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sum(range(2000))
    return time.perf_counter() - start


def test_a_window_counts_the_wall_time_of_code_calling_c_functions():
    with otelprof.precise(None) as window:
        took = spin_in_c(0.2)
    assert window.wait(30) and window.error is None
    measured = by_leaf(profile_of(window.profiles, "wall"))["spin_in_c"] / 1e9
    # The same interval measured twice; before, yappi's own time of the loop was 5 % of it.
    assert 0.8 * took <= measured <= took * 1.05 + 0.01
