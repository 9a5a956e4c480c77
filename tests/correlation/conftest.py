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


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as running:
        yield running
