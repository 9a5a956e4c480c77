"""A correlator and a sampler driven tick by tick, with an SDK provider of its own; scoring."""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelprof.correlation import SpanCorrelator
from otelprof.model import SampleTag, SpanLink
from otelprof.samplers.stack import StackSampler, ThreadSample

TIMEOUT = 10.0


def link_of(span: Any) -> SpanLink:
    context = span.get_span_context()
    return SpanLink.from_ints(context.trace_id, context.span_id)


def hex_id(span: Any) -> str:
    return f"{span.get_span_context().span_id:016x}"


def functions(sample: ThreadSample) -> List[str]:
    return [frame.function for frame in sample.stack]


def link(sample: ThreadSample) -> Optional[SpanLink]:
    return sample.tag.link if isinstance(sample.tag, SampleTag) else None


def attrs(sample: ThreadSample) -> Dict[str, Any]:
    return dict(sample.tag.attributes) if isinstance(sample.tag, SampleTag) else {}


def python_calls(action: Callable[..., object], *args: Any) -> List[str]:
    """``module:function`` of every Python function called by ``action(*args)``, itself
    included: on an application's request path the agent's cost is mostly its Python calls,
    and unlike a timing, their number is the same on every machine."""
    calls: List[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "?")
            calls.append(f"{module}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        action(*args)
    finally:
        sys.setprofile(None)
    return calls


@dataclass
class Score:
    """Samples in span-bearing code that carried the expected link, and stray links elsewhere."""

    in_span: int = 0
    right: int = 0
    outside: int = 0
    stray: int = 0
    wrong: List[str] = field(default_factory=list)

    def expect(self, sample: ThreadSample, expected: Optional[SpanLink], where: str) -> None:
        got = link(sample)
        if expected is None:
            self.outside += 1
            if got is not None:
                self.stray += 1
                self.wrong.append(f"{where}: expected no link, got {got}")
            return
        self.in_span += 1
        if got == expected:
            self.right += 1
        else:
            self.wrong.append(f"{where}: expected {expected}, got {got}")

    @property
    def share_right(self) -> float:
        return self.right / self.in_span if self.in_span else 0.0

    def check(self, min_in_span: int, min_outside: int = 0) -> None:
        """The issue's bar: >= 99% right links in spans, no link at all outside."""
        assert self.in_span >= min_in_span, f"only {self.in_span} samples in spans"
        assert self.outside >= min_outside, f"only {self.outside} samples outside spans"
        assert self.share_right >= 0.99, (self.share_right, self.wrong[:5])
        assert self.stray == 0, self.wrong[:5]


class Harness:
    """An SDK provider (not the global one), a started correlator and a sampler without thread."""

    def __init__(self, **settings: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")
        self.correlator = SpanCorrelator(tracer_provider=self.provider, **settings)
        self.sampler = StackSampler(
            interval_seconds=0.005, tagger=self.correlator.tag, observer=self.correlator.observe
        )

    def __enter__(self) -> Harness:
        self.correlator.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.correlator.stop()
        self.provider.shutdown()

    def tick(self) -> List[ThreadSample]:
        """One sample of every thread, returned on its own (raw tags, no endpoint yet)."""
        self.sampler.sample_once()
        return list(self.sampler.drain().samples)

    def tick_thread(self, thread: threading.Thread) -> ThreadSample:
        samples = [s for s in self.tick() if s.thread_name == thread.name]
        assert len(samples) == 1, samples
        return samples[0]

    def collect(self) -> List[ThreadSample]:
        """Everything sampled since the last drain, with endpoints added (the export path)."""
        return list(self.correlator.collect(self.sampler.drain()).samples)

    def finished(self, name: str) -> Any:
        spans = [s for s in self.exporter.get_finished_spans() if s.name == name]
        assert len(spans) == 1, [s.name for s in self.exporter.get_finished_spans()]
        return spans[0]


class Parking:
    """Worker code parks at named places; the test thread waits for arrivals and releases them."""

    def __init__(self) -> None:
        self.arrivals: queue.Queue[str] = queue.Queue()
        self._release: Dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self, place: str) -> threading.Semaphore:
        with self._lock:
            return self._release.setdefault(place, threading.Semaphore(0))

    def park(self, place: str) -> None:
        """Called by the worker (blocks its thread, and its whole event loop if it has one)."""
        semaphore = self._semaphore(place)
        self.arrivals.put(place)
        if not semaphore.acquire(timeout=TIMEOUT):
            raise TimeoutError(f"never released from {place}")

    def arrived(self) -> str:
        return self.arrivals.get(timeout=TIMEOUT)

    def release(self, place: str) -> None:
        self._semaphore(place).release()


class LoopThread:
    """An asyncio loop running ``main`` on a thread of its own (sampled from outside)."""

    def __init__(self, main: Callable[[], Any], name: str = "loop") -> None:
        self.error: Optional[BaseException] = None
        self._main = main
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # surfaced by join()
            self.error = error

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the loop thread did not finish"
        if self.error is not None:
            raise self.error


def started_threads(targets: Sequence[Callable[[], None]], prefix: str) -> List[threading.Thread]:
    threads = [
        threading.Thread(target=target, name=f"{prefix}-{index}", daemon=True)
        for index, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), f"{thread.name} did not finish"
