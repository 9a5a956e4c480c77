"""Runs a workload script under an in-process peer profiler (pyroscope-io, pyinstrument, yappi),
or under a part of otelprof (to see what each part costs).

Usage: ``python benchmarks/launch.py PEER [--mode cpu|wall] [--server URL] [--app NAME]
[--out PATH] -- workload.py [args...]``. The peer starts before the workload's ``__main__`` runs
and stops (flushing its data) after it, the way each peer's documentation starts it in a service.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys
import time
from typing import Any, Callable, Dict, Iterator


@contextlib.contextmanager
def _pyroscope(args: argparse.Namespace) -> Iterator[None]:
    import pyroscope

    wall = args.mode == "wall"
    # Defaults are pyroscope-io's own (100 Hz, on-CPU, GIL holder only); wall mode samples every
    # thread whether or not it runs, as its docs advise for wall-clock profiles.
    pyroscope.configure(
        application_name=args.app,
        server_address=args.server,
        sample_rate=args.rate,
        oncpu=not wall,
        gil_only=not wall,
    )
    try:
        yield
    finally:
        pyroscope.shutdown()


@contextlib.contextmanager
def _pyinstrument(args: argparse.Namespace) -> Iterator[None]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=1.0 / args.rate, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        if args.out:
            with open(args.out, "w") as f:
                f.write(profiler.output_text())


def _yappi(clock: str) -> Callable[[argparse.Namespace], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def run(args: argparse.Namespace) -> Iterator[None]:
        import yappi

        yappi.set_clock_type(clock)
        yappi.start(builtins=False, profile_threads=True)
        try:
            yield
        finally:
            yappi.stop()
            stats = yappi.get_func_stats()
            if args.out:
                stats.save(args.out, type="pstat")
            yappi.clear_stats()

    return run


@contextlib.contextmanager
def _ddtrace(args: argparse.Namespace) -> Iterator[None]:
    from ddtrace.profiling import Profiler

    profiler = Profiler()
    profiler.start()
    try:
        yield
    finally:
        profiler.stop(flush=False)


@contextlib.contextmanager
def _otelprof_spans(args: argparse.Namespace) -> Iterator[None]:
    # Span correlation alone: the context hook and the span processor, no sampler, no export
    # (the agent's settings from the environment, e.g. OTEL_PYTHON_PROFILER_NATIVE=false).
    from otelprof.config import resolve_config
    from otelprof.correlation import SpanCorrelator

    correlator = SpanCorrelator.from_config(resolve_config())
    correlator.start()
    try:
        yield
    finally:
        correlator.stop()


@contextlib.contextmanager
def _otelprof_context_hook(args: argparse.Namespace) -> Iterator[None]:
    # Half of span correlation: the context hook recording each thread's span, no processor.
    from otelprof.correlation import context_hook
    from otelprof.correlation.active import ActiveSpans

    hook = context_hook.install(ActiveSpans().record)
    try:
        yield
    finally:
        context_hook.uninstall(hook)


@contextlib.contextmanager
def _on_each_provider(setup: Callable[[Any], object]) -> Iterator[None]:
    # Calls ``setup`` on every SDK TracerProvider made meanwhile (the workload makes its own).
    from opentelemetry.sdk.trace import TracerProvider

    original = TracerProvider.__init__

    def init(self: TracerProvider, *a: object, **kw: object) -> None:
        original(self, *a, **kw)  # type: ignore[arg-type]
        setup(self)

    TracerProvider.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        TracerProvider.__init__ = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _otelprof_span_processor(args: argparse.Namespace) -> Iterator[None]:
    # The other half: the span processor (exact CPU per span), bound to each SDK provider made.
    from otelprof.spans import SpanAccounting, processor_for

    accounting = SpanAccounting()
    with _on_each_provider(lambda provider: processor_for(provider).bind(accounting)):
        yield


def _ticker(work: Callable[[], object]) -> Callable[[argparse.Namespace], Any]:
    # A daemon thread calling ``work`` at --rate Hz: what a Python sampler thread costs the
    # application before it records anything (``work`` a no-op: the wake-ups alone).
    @contextlib.contextmanager
    def run(args: argparse.Namespace) -> Iterator[None]:
        import threading

        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(1.0 / args.rate):
                work()

        thread = threading.Thread(target=loop, name="bench-ticker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    return run


def _hold_the_gil() -> None:
    # Python bytecode keeps the GIL: the sampler's tick without its work (HOLD_US, default 150:
    # about what a tick on the web workload takes).
    end = time.perf_counter() + float(os.environ.get("HOLD_US", "150")) * 1e-6
    while time.perf_counter() < end:
        pass


def _walk_all_frames() -> None:
    # The stack walk's effect on the application: every frame of every thread materialised.
    for top in sys._current_frames().values():
        frame: Any = top
        while frame is not None:
            frame = frame.f_back


@contextlib.contextmanager
def _otelprof_sampler(args: argparse.Namespace) -> Iterator[None]:
    # The stack sampler alone, at the agent's (adaptive) rate: no spans, no export, no windows,
    # no GC callback. Against otelprof-no-spans, what the rest of the agent costs.
    from otelprof.config import resolve_config
    from otelprof.profiler import _rate_controller
    from otelprof.samplers.stack import StackSampler

    config = resolve_config()
    sampler = StackSampler(
        interval_seconds=1.0 / config.sampling_rate_hz, rate=_rate_controller(config)
    )
    sampler.start()
    try:
        yield
    finally:
        sampler.stop()


# Iterations of _burn that add about 1 % to the web workload's CPU per request (instructions
# counted with callgrind: ~7.3 M per request bare, ~460 per iteration on CPython 3.11).
CALIBRATION_ITERATIONS = 160


def _burn(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i
    return total


@contextlib.contextmanager
def _calibrate(args: argparse.Namespace) -> Iterator[None]:
    # A known cost, to check the instrument: a span processor that does fixed work at each span
    # start, on the request thread as the agent's span path does (about +1 % of the web
    # workload's instructions; OTELPROF_BENCH_BURN overrides the iterations).
    from opentelemetry.sdk.trace import SpanProcessor

    iterations = int(os.environ.get("OTELPROF_BENCH_BURN", CALIBRATION_ITERATIONS))

    class Burner(SpanProcessor):
        def on_start(self, span: object, parent_context: object = None) -> None:
            _burn(iterations)

    with _on_each_provider(lambda provider: provider.add_span_processor(Burner())):
        yield


@contextlib.contextmanager
def _thread_clock(args: argparse.Namespace) -> Iterator[None]:
    # What the span processor's exact CPU time costs by itself: one read of the thread CPU clock
    # (a system call) at each span start and one at its end, nothing else.
    from opentelemetry.sdk.trace import SpanProcessor

    class ClockReader(SpanProcessor):
        def on_start(self, span: object, parent_context: object = None) -> None:
            time.thread_time_ns()

        def on_end(self, span: object) -> None:
            time.thread_time_ns()

    with _on_each_provider(lambda provider: provider.add_span_processor(ClockReader())):
        yield


@contextlib.contextmanager
def _gc_callback(args: argparse.Namespace) -> Iterator[None]:
    # A gc.callbacks entry that does nothing: what any callback costs the collections it sees.
    import gc

    def callback(phase: str, info: Dict[str, int]) -> None:
        pass

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


@contextlib.contextmanager
def _otelprof_gc(args: argparse.Namespace) -> Iterator[None]:
    # The agent's GC sampler alone ([gc] frames): its gc.callbacks entry, nothing else.
    from otelprof.samplers.gc import GCSampler

    sampler = GCSampler()
    sampler.start()
    try:
        yield
    finally:
        sampler.stop()


@contextlib.contextmanager
def _launch_only(args: argparse.Namespace) -> Iterator[None]:
    # What the in-process configs share (this launcher, runpy, otelprof's imports), nothing
    # started: their control, against bare.
    from otelprof.correlation import SpanCorrelator  # noqa: F401

    yield


@contextlib.contextmanager
def _otelprof_built(args: argparse.Namespace) -> Iterator[None]:
    # The agent built but not started: all its imports and objects in the heap, no thread, no
    # hook. Against launch-only (fewer imports) and otelprof-sampler: what being there costs.
    from otelprof.profiler import Profiler

    profiler = Profiler(output_dir=args.out)
    try:
        yield
    finally:
        del profiler


@contextlib.contextmanager
def _otelprof_api(args: argparse.Namespace) -> Iterator[None]:
    # The agent at its defaults, started from code (otelprof.start) instead of `otelprof run`.
    import otelprof

    profiler = otelprof.start(output_dir=args.out)
    try:
        yield
    finally:
        profiler.stop()


@contextlib.contextmanager
def _otelprof_no_spans(args: argparse.Namespace) -> Iterator[None]:
    # The agent at its defaults with span correlation taken out again: sampler, export, windows.
    import otelprof

    profiler = otelprof.start(output_dir=args.out)
    profiler.correlation.stop()
    try:
        yield
    finally:
        profiler.stop()


PEERS = {
    "otelprof-api": _otelprof_api,
    "otelprof-spans": _otelprof_spans,
    "otelprof-context-hook": _otelprof_context_hook,
    "otelprof-span-processor": _otelprof_span_processor,
    "launch-only": _launch_only,
    "otelprof-built": _otelprof_built,
    "gc-callback": _gc_callback,
    "otelprof-gc": _otelprof_gc,
    "wake-only": _ticker(lambda: None),
    "hold": _ticker(_hold_the_gil),
    "walk-only": _ticker(_walk_all_frames),
    "calibrate": _calibrate,
    "thread-clock": _thread_clock,
    "otelprof-sampler": _otelprof_sampler,
    "otelprof-no-spans": _otelprof_no_spans,
    "pyroscope": _pyroscope,
    "pyinstrument": _pyinstrument,
    "yappi-wall": _yappi("wall"),
    "yappi-cpu": _yappi("cpu"),
    "ddtrace": _ddtrace,
}


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--mode", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--server", default="http://127.0.0.1:9")
    parser.add_argument("--app", default="otelprof-bench")
    parser.add_argument("--out")
    args = parser.parse_args(argv[:split])
    script = argv[split + 1 :]
    if not script:
        parser.error("missing the workload script after --")
    # Make the workload see the world as `python script.py args` would show it.
    sys.argv = list(script)
    sys.path[0] = os.path.dirname(os.path.abspath(script[0]))
    with PEERS[args.peer](args):
        runpy.run_path(script[0], run_name="__main__")


if __name__ == "__main__":
    main()
