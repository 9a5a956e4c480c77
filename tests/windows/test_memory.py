"""Memory windows: allocations by named stack, the memory cap, tracemalloc left as it was."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path
from typing import List

import pytest

import otelprof
from otelprof.config import resolve_config
from otelprof.windows import handle as handle_module
from otelprof.windows.manager import WindowManager
from otelprof.windows.memory import MemoryEngine
from otelprof.windows.names import MODULE_LEVEL, FunctionNames
from tests.windows.helpers import by_leaf, profile_of, start_without_scheduled_windows

KEPT: List[bytearray] = []


def keep_blocks(count: int, size: int) -> None:
    for _ in range(count):
        KEPT.append(bytearray(size))


def churn(count: int) -> int:
    total = 0
    for i in range(count):
        total += len([i] * 50)  # allocated and freed inside the window
    return total


@pytest.fixture(autouse=True)
def _release_kept() -> None:
    KEPT.clear()


def test_surviving_allocations_are_charged_to_the_function_that_made_them():
    with otelprof.memory(None) as window:
        keep_blocks(50, 10_000)
        churn(2_000)
    assert window.wait(30) and window.error is None
    alloc = by_leaf(profile_of(window.profiles, "alloc_space"))
    assert alloc["keep_blocks"] >= 50 * 10_000
    assert alloc.get("churn", 0) < 10_000  # freed before the window closed
    objects = by_leaf(profile_of(window.profiles, "alloc_objects"))
    assert objects["keep_blocks"] >= 50
    inuse = by_leaf(profile_of(window.profiles, "inuse_space"))
    assert inuse["keep_blocks"] == alloc["keep_blocks"]  # tracing began with the window
    sample = next(
        s
        for s in profile_of(window.profiles, "alloc_space").samples
        if s.stack[0].function == "keep_blocks"
    )
    leaf = sample.stack[0]
    assert leaf.filename == __file__ and leaf.start_line == keep_blocks.__code__.co_firstlineno
    assert (
        sample.stack[1].function
        == "test_surviving_allocations_are_charged_to_the_function_that_made_them"
    )
    assert not tracemalloc.is_tracing()


@pytest.mark.parametrize("profiler_running", [True, False], ids=["profiler", "standalone"])
def test_memory_returns_once_tracing_is_on_or_pending_after_a_bounded_wait(
    profiler_running: bool, monkeypatch: pytest.MonkeyPatch
):
    if profiler_running:
        start_without_scheduled_windows()
    try:
        window = otelprof.memory(seconds=60)
        assert tracemalloc.is_tracing() and repr(window) == "<WindowHandle memory open>"
        keep_blocks(8, 4096)  # right after the call: nothing in between to give the GIL away
        window.close()
        assert window.wait(30) and window.error is None
        assert by_leaf(profile_of(window.profiles, "alloc_space"))["keep_blocks"] >= 8 * 4096
        assert repr(window) == "<WindowHandle memory done>"

        # A window that cannot open yet (another is open) does not hold the caller longer
        # than the bound; its handle says so, and it opens when it can.
        with otelprof.precise(None) as precise:
            assert precise.state == "open"
            monkeypatch.setattr(handle_module, "OPEN_TIMEOUT_SECONDS", 0.01)
            queued = otelprof.memory(seconds=60)
            assert queued.state == "pending" and not tracemalloc.is_tracing()
        assert queued.wait_opened(30)
        queued.close()
        assert queued.wait(30) and queued.error is None
    finally:
        if profiler_running:
            otelprof.stop()


def test_tracemalloc_is_stopped_after_an_exception_in_the_block():
    with pytest.raises(KeyError):
        with otelprof.memory(None) as window:
            keep_blocks(3, 100)
            raise KeyError("boom")
    assert window.wait(30)
    assert not tracemalloc.is_tracing()


def test_an_application_that_traces_keeps_tracing_at_its_own_depth():
    tracemalloc.start(3)
    try:
        keep_blocks(5, 1000)  # already live when the window opens: not growth
        with otelprof.memory(None) as window:
            keep_blocks(20, 5000)
        assert window.wait(30) and window.error is None
        assert tracemalloc.is_tracing()
        assert tracemalloc.get_traceback_limit() == 3
        inuse = by_leaf(profile_of(window.profiles, "inuse_space"))
        assert 20 * 5000 <= inuse["keep_blocks"] < 25 * 5000
    finally:
        tracemalloc.stop()


def test_a_window_past_the_memory_cap_closes_early_and_stops_tracing():
    manager = WindowManager(resolve_config(memory_overhead_cap_mib=1.0), standalone=True)
    try:
        window = manager.request("memory", 60.0)
        assert window.wait_opened()
        keep_blocks(40_000, 8)  # tens of thousands of traces: past 1 MiB of tracemalloc tables
        assert window.wait(30)
        assert window.closed_early is not None and "cap 1 MiB" in window.closed_early
        assert not tracemalloc.is_tracing()
        assert by_leaf(profile_of(window.profiles, "alloc_objects"))["keep_blocks"] > 1000
    finally:
        manager.stop()


def test_the_engine_restores_tracing_state_even_when_never_closed():
    engine = MemoryEngine(traceback_depth=4)
    engine.open()
    assert tracemalloc.is_tracing()
    engine.restore()
    engine.restore()  # idempotent
    assert not tracemalloc.is_tracing()


def test_function_names_come_from_the_source(tmp_path: Path):
    source = tmp_path / "mod.py"
    source.write_text(
        textwrap.dedent(
            """\
            import functools
            X = [1]

            class Cache:
                @functools.lru_cache
                def get(self, key):
                    def inner():
                        return [key]
                    return inner()

            async def handler():
                f = lambda: [2]
                return f()
            """
        )
    )
    names = FunctionNames()
    path = str(source)
    assert names.frame(path, 2).function == MODULE_LEVEL
    get = names.frame(path, 9)
    assert (get.function, get.start_line) == ("Cache.get", 5)
    assert names.frame(path, 8).function == "Cache.get.<locals>.inner"
    assert names.frame(path, 13).function == "handler"
    assert names.frame(path, 12).function == "handler.<locals>.<lambda>"
    assert names.frame("/no/such/file.py", 3).function == "<unknown>"
