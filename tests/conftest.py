"""Suite-wide fixtures: no agent thread, yappi session or tracemalloc trace outlives a test."""

from __future__ import annotations

import sys
import tracemalloc
from typing import Iterator

import pytest

from otelprof._threads import running_agent_threads


def _agent_threads() -> list:
    return running_agent_threads()


@pytest.fixture(autouse=True)
def _global_state_is_restored() -> Iterator[None]:
    before = set(_agent_threads())
    yield
    leftover = []
    for thread in _agent_threads():
        if thread not in before:
            thread.join(5.0)  # a stop() that returned may leave a thread finishing its last step
            if thread.is_alive():
                leftover.append(thread.name)
    assert not leftover, f"agent threads outlived the test: {leftover}"
    assert not tracemalloc.is_tracing(), "tracemalloc left running"
    yappi = sys.modules.get("yappi")
    if yappi is not None:
        assert not yappi.is_running(), "yappi left running"
