"""Correlation tests leave OpenTelemetry's runtime context and asyncio's create_task alone."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest
from opentelemetry import context as otel_context

from otelprof.correlation.context_hook import RecordingRuntimeContext

from .harness import Harness


@pytest.fixture(autouse=True)
def _hooks_are_removed() -> Iterator[None]:
    runtime = otel_context._RUNTIME_CONTEXT
    create_task = asyncio.BaseEventLoop.create_task
    yield
    assert otel_context._RUNTIME_CONTEXT is runtime, "the context hook outlived the test"
    assert not isinstance(otel_context._RUNTIME_CONTEXT, RecordingRuntimeContext)
    assert asyncio.BaseEventLoop.create_task is create_task, "create_task left patched"


@pytest.fixture(params=["thread_state", "hook"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Each test runs twice: contexts read from the threads' states (the optional C extension,
    what the agent uses where it is built) and recorded by the context hook (the fallback)."""
    with Harness(native=request.param == "thread_state") as running:
        assert running.correlator.active.reads_thread_state == (request.param == "thread_state")
        yield running
