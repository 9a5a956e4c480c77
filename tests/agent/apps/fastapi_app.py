"""A FastAPI service whose concurrent requests take turns on one event loop (uvicorn).

Run by ``tests/agent/test_fastapi_e2e.py`` as a user would:
``opentelemetry-instrument uvicorn fastapi_app:app`` with ``OTEL_PYTHON_PROFILER_ENABLED=true``
(the FastAPI instrumentation makes the server spans).

``GET /items/{item_id}`` belongs to wave ``item_id // WAVE_SIZE``. It waits until every request
of its wave is inside the handler, then alternates CPU work in ``crunch_item_<item_id>`` (a
function of its own, so a sample's stack tells which request ran it) with awaits, so the wave's
requests take turns on the loop. It answers with the ids of the span it ran in (its server span)
and how many of its rounds followed another request's. It names its task after the item (one
name per request: what the agent's cap on task names is for). ``GET /health`` is cheap.
With ``SPANS_FILE`` set, every ended span is written there as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import types
from typing import Any, Callable, Dict, Optional, Sequence

from fastapi import FastAPI, HTTPException
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

WAVE_SIZE = 4
ROUNDS = 8
WORK = 50_000  # iterations per round: several milliseconds, longer than the GIL switch interval
GATE_TIMEOUT_SECONDS = 60.0  # a wave whose requests never all arrive fails instead of hanging


def crunch(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def crunch_for(item_id: int) -> Callable[[int], int]:
    """``crunch`` named ``crunch_item_<item_id>``: a sample's stack tells which request ran it."""
    name = f"crunch_item_{item_id}"
    code = crunch.__code__.replace(co_name=name)
    if sys.version_info >= (3, 11):
        code = code.replace(co_qualname=name)
    return types.FunctionType(code, crunch.__globals__, name)


class Wave:
    """The requests of one wave: how many arrived, and set once all did."""

    def __init__(self) -> None:
        self.arrived = 0
        self.all_in = asyncio.Event()


waves: Dict[int, Wave] = {}
last_runner: Optional[int] = None  # the item whose round ran last on the loop

app = FastAPI()


def span_ids() -> Dict[str, str]:
    context = trace.get_current_span().get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> Dict[str, Any]:
    global last_runner
    task = asyncio.current_task()
    assert task is not None
    task.set_name(f"item-{item_id}")
    wave = waves.setdefault(item_id // WAVE_SIZE, Wave())
    wave.arrived += 1
    if wave.arrived == WAVE_SIZE:
        wave.all_in.set()
    try:
        await asyncio.wait_for(wave.all_in.wait(), GATE_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        raise HTTPException(status_code=503, detail="the wave never filled") from None
    work = crunch_for(item_id)
    interleaved = 0
    for round_number in range(ROUNDS):
        if last_runner is not None and last_runner != item_id:
            interleaved += 1
        last_runner = item_id
        work(WORK)
        # Mostly a bare yield, sometimes a real (short) wait: the loop goes to its selector.
        await asyncio.sleep(0.001 if round_number % 4 == 3 else 0)
    return {"item_id": item_id, "interleaved": interleaved, **span_ids()}


@app.get("/health")
async def health() -> Dict[str, Any]:
    return {"ok": True, **span_ids()}


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span as one JSON line: name, ids, parent, attributes."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                context = span.get_span_context()
                assert context is not None
                record = {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": f"{context.trace_id:032x}",
                    "span_id": f"{context.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                    "parent_is_remote": bool(span.parent and span.parent.is_remote),
                    "attributes": {
                        k: list(v) if isinstance(v, tuple) else v
                        for k, v in (span.attributes or {}).items()
                    },
                }
                self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


_provider = trace.get_tracer_provider()
if os.environ.get("SPANS_FILE") and isinstance(_provider, TracerProvider):
    _provider.add_span_processor(
        SimpleSpanProcessor(JsonLinesSpanExporter(os.environ["SPANS_FILE"]))
    )
