"""The agent's cost to a running service, measured in one process by alternating blocks.

    python benchmarks/ab_blocks.py                      # 40 pairs of 600 requests, agent defaults
    python benchmarks/ab_blocks.py --pairs 20 --rate 50 # another (maximum) sampling rate
    python benchmarks/ab_blocks.py --fixed-rate         # no adaptive rate: always --rate
    python benchmarks/ab_blocks.py --part sampler       # only the stack sampler (no correlation)
    python benchmarks/ab_blocks.py --part wake          # a thread that only takes the GIL at 100 Hz

Whole-process CPU of separate runs (``run_all.py``) varies by several percent on a shared
machine (the same work took 24-34 s of CPU within one quarter of an hour), more than the budget
being checked. Here one process serves the web workload's Flask app
(benchmarks/workloads/web_service.py) and the same load generator sends a fixed number of
requests per block; blocks alternate profiler off and on (in random order within each pair), so
drift hits both sides of a pair alike. An "on" block measures the process CPU from just after
the agent started to just after it stopped, so its threads, the work it makes the application's
threads do (span hooks, GIL hand-offs) and its last export all count (an export per block of
~1.5 s, where a service exports every 10 s: the fixed part of an export counts several times).
The report is the median over pairs of the on/off ratio of process CPU, with a bootstrap 95 %
interval of that median, and the agent threads' own share for orientation (read before the
stop).

The adaptive rate starts each block where the previous block's controller left it (blocks are
too short to settle from the maximum rate each time): what a service running for minutes sees.
Start-up of the interpreter and imports are not measured here; ``run_all.py`` includes them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads"
sys.path.insert(0, str(WORKLOADS))
sys.path.insert(0, str(ROOT))

from _common import _rusage_cpu, task_cpu_seconds  # noqa: E402

PARTS = ("agent", "sampler", "correlation", "wake", "busy-tick")


class Part:
    """Starts and stops the agent (or one of its parts) between blocks."""

    def __init__(self, kind: str, rate: float, out_dir: str, adaptive: bool = True) -> None:
        self.kind = kind
        self.adaptive = adaptive
        self.rate = rate
        self.out_dir = out_dir
        self._stop: Optional[Any] = None
        self._learned: Optional[Tuple[float, Optional[float]]] = None  # (interval, share)
        self.rates_hz: List[float] = []  # the adaptive rate at the end of each on-block

    def start(self) -> None:
        if self.kind == "agent":
            import otelprof

            profiler = otelprof.start(
                output_dir=self.out_dir, sampling_rate_hz=self.rate, adaptive_rate=self.adaptive
            )
            controller = profiler.sampler.rate
            if controller is not None and self._learned is not None:
                controller.interval, controller.share = self._learned

            def stop() -> None:
                if controller is not None:
                    self._learned = (controller.interval, controller.share)
                    self.rates_hz.append(controller.rate_hz)
                profiler.stop()

            self._stop = stop
        elif self.kind == "sampler":
            from otelprof.samplers.stack import StackSampler

            sampler = StackSampler(interval_seconds=1.0 / self.rate)
            sampler.start()
            self._stop = sampler.stop
        elif self.kind == "correlation":
            from otelprof.correlation import SpanCorrelator

            correlator = SpanCorrelator()
            correlator.start()
            self._stop = correlator.stop
        elif self.kind in ("wake", "busy-tick"):
            self._stop = _ticker(self.rate, self.kind == "busy-tick")
        else:
            raise SystemExit(f"unknown part {self.kind!r}")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def _ticker(rate: float, busy: bool) -> Any:
    """A thread that only takes the GIL at the sampling rate (``busy``: and holds it for about
    as long as a sampler tick, computing without touching other threads' frames)."""
    from otelprof._threads import start_agent_thread

    stop = threading.Event()

    def run() -> None:
        while not stop.wait(1.0 / rate):
            if busy:
                sum(range(6000))

    thread = start_agent_thread("ticker", run)

    def halt() -> None:
        stop.set()
        thread.join()

    return halt


def agent_tids() -> List[int]:
    from otelprof._threads import AGENT_THREAD_IDENTS

    return [
        t.native_id
        for t in threading.enumerate()
        if t.ident in AGENT_THREAD_IDENTS and t.native_id is not None
    ]


def block(port: int, requests: int, part: Optional[Part]) -> Tuple[float, float]:
    """(process CPU s, agent-thread CPU s) over one block of requests; with ``part`` running,
    its stop (the last export) inside the measurement."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTHON"))}
    if part is not None:
        part.start()  # once per service lifetime: not part of the steady state measured here
    cpu0 = _rusage_cpu(0)  # RUSAGE_SELF: every thread, those that exited included
    tids = agent_tids()
    before = task_cpu_seconds()
    try:
        subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                str(WORKLOADS / "loadgen.py"),
                "--port",
                str(port),
                "--requests",
                str(requests),
                "--concurrency",
                "4",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        after = task_cpu_seconds()
    finally:
        if part is not None:
            part.stop()
    cpu = _rusage_cpu(0) - cpu0
    agent = sum(max(0.0, after.get(t, 0.0) - before.get(t, 0.0)) for t in tids)
    return cpu, agent


def median_interval(values: List[float], rng: random.Random) -> Tuple[float, float]:
    """A bootstrap 95 % interval of the median of ``values``."""
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(2000))
    return medians[50], medians[1949]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--requests", type=int, default=600, help="per block")
    parser.add_argument("--rate", type=float, default=100.0, help="(maximum) sampling rate, Hz")
    parser.add_argument(
        "--fixed-rate", action="store_true", help="agent part: no adaptive rate, always --rate"
    )
    parser.add_argument(
        "--part", default="agent", choices=("agent", "sampler", "correlation", "wake", "busy-tick")
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import logging

    from web_service import create_app, instrument, seed_database
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(seed_database())
    instrument(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="server", daemon=True).start()
    part = Part(
        args.part, args.rate, tempfile.mkdtemp(prefix="ab-blocks-"), adaptive=not args.fixed_rate
    )
    rng = random.Random(args.seed)
    block(server.server_port, args.requests, None)  # warm up: imports, caches, database pages
    part.start()  # and the agent's own imports, outside any measured block
    part.stop()
    ratios: List[float] = []
    shares: List[float] = []
    for index in range(args.pairs):
        measured: Dict[bool, Tuple[float, float]] = {}
        for on in rng.sample([False, True], 2):
            measured[on] = block(server.server_port, args.requests, part if on else None)
        (cpu_off, _), (cpu_on, agent_on) = measured[False], measured[True]
        ratios.append(cpu_on / cpu_off)
        shares.append(agent_on / cpu_on)
        print(
            f"pair {index + 1}/{args.pairs}: process CPU off {cpu_off:.3f}s on {cpu_on:.3f}s"
            f" ({(cpu_on / cpu_off - 1) * 100:+.1f}%), agent threads {agent_on * 1000:.0f} ms"
            f" ({agent_on / cpu_on * 100:.2f}%)",
            flush=True,
        )
    server.shutdown()
    ratio = statistics.median(ratios)
    low, high = median_interval(ratios, rng)
    rates = part.rates_hz
    rate = (
        f"adaptive, {min(rates):.0f}-{max(rates):.0f} Hz at the ends of blocks (max {args.rate:g})"
        if rates
        else f"{args.rate:g} Hz"
    )
    print(
        f"\n{args.part} ({rate}), {args.pairs} pairs of {args.requests} requests:\n"
        f"  process CPU: {(ratio - 1) * 100:+.2f}% (median of pairs;"
        f" 95% interval {(low - 1) * 100:+.2f}% .. {(high - 1) * 100:+.2f}%)\n"
        f"  of which the agent's threads: {statistics.median(shares) * 100:.2f}% (median)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
